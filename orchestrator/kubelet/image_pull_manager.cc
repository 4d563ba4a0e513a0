#include "orchestrator/kubelet/image_pull_manager.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base64.h"
#include "common/log.h"
#include "orchestrator/controllers/event_recorder.h"
#include "orchestrator/runtime/image/image_puller.h"
#include "orchestrator/runtime/image/image_store.h"
#include "orchestrator/runtime/image/registry_credentials.h"
#include "orchestrator/runtime/image/registry_reference.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_string()) return "";
  return obj[key].get<std::string>();
}

// Credentials for `registry` from the pod's imagePullSecrets
// (kubernetes.io/dockerconfigjson or the older kubernetes.io/dockercfg);
// the first secret with an entry for the registry wins. Unreadable secrets
// are logged and skipped, as the kubelet does.
std::optional<image::RegistryCredentials> PullSecretCredentials(const json& pod, const std::string& registry,
                                                                PodApi& api) {
  const json& meta = pod["metadata"];
  const std::string ns = Str(meta, "namespace");
  for (const auto& ref : pod["spec"].value("imagePullSecrets", json::array())) {
    std::string name = Str(ref, "name");
    if (name.empty()) continue;
    auto secret = api.GetSecret(ns, name);
    if (!secret.ok()) {
      spdlog::warn("kubelet: pod {}/{}: imagePullSecret {}: {}", ns, Str(meta, "name"), name,
                   secret.status().message());
      continue;
    }
    const json data = secret->value("data", json::object());
    std::string encoded = Str(data, ".dockerconfigjson");
    if (encoded.empty()) encoded = Str(data, ".dockercfg");
    if (encoded.empty()) continue;
    std::optional<std::string> text = Base64Decode(encoded);
    if (!text) continue;
    auto found = image::FindDockerConfigCredentials(*text, registry);
    if (!found.ok()) {
      spdlog::warn("kubelet: imagePullSecret {}/{}: {}", ns, name, found.status().message());
      continue;
    }
    if (*found) return *found;
  }
  return std::nullopt;
}

std::string Seconds(std::chrono::milliseconds d) {
  return absl::StrFormat("%.3gs", static_cast<double>(d.count()) / 1000.0);
}

}  // namespace

std::string EffectivePullPolicy(const json& container) {
  std::string policy = Str(container, "imagePullPolicy");
  if (policy == "Always" || policy == "IfNotPresent" || policy == "Never") return policy;
  // Kubernetes' defaulting: a ":latest" or untagged image (digests aside) is re-pulled.
  auto ref = image::ParseRegistryReference(Str(container, "image"));
  if (ref.ok() && !ref->digest.empty()) return "IfNotPresent";
  if (!ref.ok() || ref->tag == "latest") return "Always";
  return "IfNotPresent";
}

ImagePullManager::ImagePullManager(image::ImageStore& store, image::ImagePuller* puller,
                                   controllers::EventRecorder* events, ImagePullManagerOptions options,
                                   std::function<Clock::time_point()> now)
    : store_(store), puller_(puller), events_(events), options_(options), now_(std::move(now)) {}

void ImagePullManager::Event(const json& pod, const std::string& container, bool warning, const std::string& reason,
                             const std::string& message) {
  if (events_ == nullptr) return;
  const json& meta = pod["metadata"];
  json involved = {{"apiVersion", "v1"},
                   {"kind", "Pod"},
                   {"metadata",
                    {{"name", Str(meta, "name")},
                     {"namespace", Str(meta, "namespace")},
                     {"uid", Str(meta, "uid")},
                     {"resourceVersion", Str(meta, "resourceVersion")}}},
                   {"fieldPath", absl::StrCat("spec.containers{", container, "}")}};
  events_->Event(involved, warning ? controllers::EventType::kWarning : controllers::EventType::kNormal, reason,
                 message);
}

ImageCheck ImagePullManager::EnsureImage(const json& pod, const json& container, ImagePullBackoff& backoff,
                                         PodApi& api) {
  const std::string name = Str(container, "name");
  const std::string image = Str(container, "image");
  auto ref = image::ParseRegistryReference(image);
  if (!ref.ok()) {
    std::string message = absl::StrCat("Failed to apply default image tag \"", image, "\": ", ref.status().message());
    Event(pod, name, true, "InspectFailed", message);
    return {false, "InvalidImageName", message};
  }
  const std::string policy = EffectivePullPolicy(container);
  const bool present = store_.Get(image).ok();
  if (policy == "Never" || (policy == "IfNotPresent" && present)) {
    if (present) return {true, "", ""};
    std::string message = absl::StrCat("Container image \"", image,
                                       "\" is not present with pull policy of Never");
    Event(pod, name, true, "ErrImageNeverPull", message);
    return {false, "ErrImageNeverPull", message};
  }
  if (puller_ == nullptr) {
    if (present) return {true, "", ""};
    std::string message = absl::StrCat("Container image \"", image,
                                       "\" is not present and this kubelet pulls from no registry "
                                       "(--image-pulls=false; import it with kelpie image import)");
    return {false, "ErrImageNeverPull", message};
  }
  if (backoff.image != image) backoff = ImagePullBackoff{.image = image};
  const Clock::time_point now = now_();
  if (backoff.failures > 0 && now < backoff.retry_at) {
    const auto error_shown = std::min<std::chrono::milliseconds>(backoff.delay / 2, std::chrono::seconds(10));
    if (now < backoff.failed_at + error_shown) {
      return {false, "ErrImagePull", absl::StrCat("Failed to pull image \"", image, "\": ", backoff.last_error)};
    }
    std::string message = absl::StrCat("Back-off pulling image \"", image, "\": ", backoff.last_error);
    if (!backoff.backoff_reported) {
      backoff.backoff_reported = true;
      Event(pod, name, false, "BackOff", absl::StrCat("Back-off pulling image \"", image, "\""));
    }
    return {false, "ImagePullBackOff", message};
  }
  Event(pod, name, false, "Pulling", absl::StrCat("Pulling image \"", image, "\""));
  const Clock::time_point started = now_();
  auto record = puller_->Pull(image, PullSecretCredentials(pod, ref->registry, api));
  const Clock::time_point finished = now_();
  if (!record.ok()) {
    backoff.failures++;
    std::chrono::milliseconds delay = options_.backoff_initial;
    for (int i = 1; i < backoff.failures && delay < options_.backoff_max; ++i) delay *= 2;
    backoff.delay = std::min(delay, options_.backoff_max);
    backoff.failed_at = finished;
    backoff.retry_at = finished + backoff.delay;
    backoff.last_error = std::string(record.status().message());
    backoff.backoff_reported = false;
    std::string message = absl::StrCat("Failed to pull image \"", image, "\": ", record.status().message());
    spdlog::warn("kubelet: pod {}/{}: {} (next try in {})", Str(pod["metadata"], "namespace"),
                 Str(pod["metadata"], "name"), message, Seconds(backoff.delay));
    Event(pod, name, true, "Failed", message);
    Event(pod, name, true, "Failed", "Error: ErrImagePull");
    return {false, "ErrImagePull", message};
  }
  backoff = ImagePullBackoff{.image = image};
  Event(pod, name, false, "Pulled",
        absl::StrCat("Successfully pulled image \"", image, "\" in ",
                     Seconds(std::chrono::duration_cast<std::chrono::milliseconds>(finished - started)), ". Image size: ",
                     record->size, " bytes."));
  return {true, "", ""};
}

}  // namespace kelpie::kubelet
