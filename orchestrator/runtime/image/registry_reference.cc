#include "orchestrator/runtime/image/registry_reference.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "orchestrator/runtime/image/image_reference.h"

namespace kelpie::image {

std::string RegistryReference::ApiHost() const {
  return registry == "docker.io" ? "registry-1.docker.io" : registry;
}

absl::StatusOr<RegistryReference> ParseRegistryReference(absl::string_view reference) {
  RegistryReference ref;
  KELPIE_ASSIGN_OR_RETURN(ref.normalized, NormalizeReference(reference));
  absl::string_view rest = ref.normalized;
  if (auto at = rest.find('@'); at != absl::string_view::npos) {
    ref.digest = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
  }
  auto slash = rest.find('/');  // normalized references always name their registry
  ref.registry = std::string(rest.substr(0, slash));
  rest = rest.substr(slash + 1);
  if (auto colon = rest.rfind(':'); colon != absl::string_view::npos) {
    ref.tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
  }
  ref.repository = std::string(rest);
  return ref;
}

}  // namespace kelpie::image
