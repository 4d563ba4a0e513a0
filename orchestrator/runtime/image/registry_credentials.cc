#include "orchestrator/runtime/image/registry_credentials.h"

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base64.h"

namespace kelpie::image {
namespace {

// "https://index.docker.io/v1/" -> "index.docker.io"; "host:5000/path" -> "host:5000".
std::string HostOfKey(absl::string_view key) {
  absl::ConsumePrefix(&key, "https://");
  absl::ConsumePrefix(&key, "http://");
  if (auto slash = key.find('/'); slash != absl::string_view::npos) key = key.substr(0, slash);
  std::string host(key);
  if (host == "index.docker.io" || host == "registry-1.docker.io") host = "docker.io";
  return host;
}

}  // namespace

absl::StatusOr<std::optional<RegistryCredentials>> FindDockerConfigCredentials(absl::string_view docker_config_json,
                                                                              absl::string_view registry) {
  nlohmann::json doc = nlohmann::json::parse(docker_config_json.begin(), docker_config_json.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("the docker config is not a JSON object");
  }
  // .dockerconfigjson has {"auths": {...}}; the older .dockercfg is the map itself.
  const nlohmann::json auths = doc.contains("auths") ? doc["auths"] : doc;
  if (!auths.is_object()) return absl::InvalidArgumentError("the docker config's \"auths\" is not an object");
  for (const auto& [key, entry] : auths.items()) {
    if (HostOfKey(key) != registry || !entry.is_object()) continue;
    RegistryCredentials creds;
    creds.username = entry.value("username", "");
    creds.password = entry.value("password", "");
    creds.identity_token = entry.value("identitytoken", "");
    if (std::string auth = entry.value("auth", ""); !auth.empty()) {
      std::optional<std::string> decoded = Base64Decode(auth);
      if (!decoded) return absl::InvalidArgumentError(absl::StrCat("the \"auth\" of ", key, " is not base64"));
      auto colon = decoded->find(':');
      if (colon == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("the \"auth\" of ", key, " is not user:password"));
      }
      creds.username = decoded->substr(0, colon);
      creds.password = decoded->substr(colon + 1);
    }
    return std::optional<RegistryCredentials>(creds);
  }
  return std::optional<RegistryCredentials>();
}

}  // namespace kelpie::image
