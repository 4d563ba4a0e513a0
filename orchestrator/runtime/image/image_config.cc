#include "orchestrator/runtime/image/image_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "orchestrator/runtime/image/digest.h"

namespace kelpie::image {
namespace {

std::vector<std::string> StringList(const nlohmann::json& config, const char* key) {
  std::vector<std::string> out;
  auto it = config.find(key);
  if (it == config.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string String(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view json, absl::string_view digest) {
  nlohmann::json doc = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("image config ", digest, " is not a JSON object"));
  }
  ImageConfig out;
  out.created = String(doc, "created");
  out.os = String(doc, "os");
  out.architecture = String(doc, "architecture");
  auto config_it = doc.find("config");
  if (config_it != doc.end() && config_it->is_object()) {
    const nlohmann::json& c = *config_it;
    out.entrypoint = StringList(c, "Entrypoint");
    out.cmd = StringList(c, "Cmd");
    out.env = StringList(c, "Env");
    out.working_dir = String(c, "WorkingDir");
    out.user = String(c, "User");
    if (auto ports = c.find("ExposedPorts"); ports != c.end() && ports->is_object()) {
      for (const auto& [port, unused] : ports->items()) out.exposed_ports.push_back(port);
    }
    if (auto labels = c.find("Labels"); labels != c.end() && labels->is_object()) {
      for (const auto& [k, v] : labels->items()) {
        if (v.is_string()) out.labels[k] = v.get<std::string>();
      }
    }
  }
  auto rootfs = doc.find("rootfs");
  if (rootfs == doc.end() || !rootfs->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("image config ", digest, " has no rootfs"));
  }
  out.diff_ids = StringList(*rootfs, "diff_ids");
  for (const std::string& id : out.diff_ids) {
    if (absl::Status s = ValidateDigest(id); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("image config ", digest, ": rootfs.diff_ids: ", s.message()));
    }
  }
  return out;
}

std::string ImageConfig::ToJson() const {
  nlohmann::json j = {{"entrypoint", entrypoint},   {"cmd", cmd},
                      {"env", env},                 {"workingDir", working_dir},
                      {"user", user},               {"exposedPorts", exposed_ports},
                      {"labels", labels},           {"created", created},
                      {"os", os},                   {"architecture", architecture},
                      {"diffIds", diff_ids}};
  return j.dump(2);
}

}  // namespace kelpie::image
