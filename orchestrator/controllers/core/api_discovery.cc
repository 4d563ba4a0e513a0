#include "orchestrator/controllers/core/api_discovery.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace kelpie::controllers {

using nlohmann::json;

bool DiscoveredResource::Has(const std::string& verb) const {
  return std::find(verbs.begin(), verbs.end(), verb) != verbs.end();
}

namespace {
absl::Status AddGroupVersion(client::RestClient& client, const std::string& group, const std::string& version,
                             std::vector<DiscoveredResource>* out) {
  std::string path = group.empty() ? absl::StrCat("/api/", version) : absl::StrCat("/apis/", group, "/", version);
  auto list = client.Request("GET", path, "", "");
  if (!list.ok()) return list.status();
  for (const auto& r : list->value("resources", json::array())) {
    std::string name = r.value("name", "");
    if (name.empty() || name.find('/') != std::string::npos) continue;
    DiscoveredResource d;
    d.ref = client::ResourceRef{group, version, name, r.value("namespaced", false)};
    d.kind = r.value("kind", "");
    for (const auto& v : r.value("verbs", json::array())) {
      if (v.is_string()) d.verbs.push_back(v);
    }
    out->push_back(std::move(d));
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::vector<DiscoveredResource>> DiscoverResources(client::RestClient& client) {
  std::vector<DiscoveredResource> out;
  if (absl::Status st = AddGroupVersion(client, "", "v1", &out); !st.ok()) return st;
  auto groups = client.Request("GET", "/apis", "", "");
  if (!groups.ok()) return groups.status();
  for (const auto& g : groups->value("groups", json::array())) {
    std::string name = g.value("name", "");
    std::string version = g.value("preferredVersion", json::object()).value("version", "");
    if (version.empty() && g.contains("versions") && !g["versions"].empty()) {
      version = g["versions"][0].value("version", "");
    }
    if (name.empty() || version.empty()) continue;
    if (absl::Status st = AddGroupVersion(client, name, version, &out); !st.ok()) return st;
  }
  return out;
}

}  // namespace kelpie::controllers
