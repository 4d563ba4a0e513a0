// The kubelet's image pull step, kept apart from the pod worker: before a
// container is created the worker asks EnsureImage, which applies the
// container's imagePullPolicy (Always / IfNotPresent / Never; unset means
// Always for ":latest" or no tag, IfNotPresent otherwise), pulls through
// the ImagePuller with the credentials of the pod's imagePullSecrets, and
// answers either "ready" or the waiting reason the container status shows:
// ErrImagePull after a failed pull (for half the backoff, at most 10 s:
// about one kubelet sync period, so status readers see it), then
// ImagePullBackOff until the exponential backoff (10 s doubling, capped at
// 5 min) allows the next try; plus
// ErrImageNeverPull and InvalidImageName. Pulling / Pulled / Failed /
// BackOff events go to the event recorder when there is one.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "orchestrator/kubelet/pod_api.h"

namespace kelpie::image {
class ImageStore;
class ImagePuller;
}  // namespace kelpie::image
namespace kelpie::controllers {
class EventRecorder;
}

namespace kelpie::kubelet {

// "Always", "IfNotPresent" or "Never": the container's imagePullPolicy, or
// the Kubernetes default for its image when unset.
std::string EffectivePullPolicy(const nlohmann::json& container);

// Per-container pull backoff, kept by the pod worker with the container.
struct ImagePullBackoff {
  std::string image;  // the image the failures were for
  int failures = 0;
  std::chrono::steady_clock::time_point failed_at{}, retry_at{};
  std::chrono::milliseconds delay{0};
  std::string last_error;
  bool backoff_reported = false;
};

struct ImageCheck {
  bool ready = false;
  std::string reason;   // waiting reason when not ready
  std::string message;
};

struct ImagePullManagerOptions {
  std::chrono::milliseconds backoff_initial{10000};
  std::chrono::milliseconds backoff_max{300000};
};

class ImagePullManager {
 public:
  using Clock = std::chrono::steady_clock;
  // `puller` null: no registry pulls (images must be in the store).
  // `events` may be null. All must outlive the manager.
  ImagePullManager(image::ImageStore& store, image::ImagePuller* puller, controllers::EventRecorder* events,
                   ImagePullManagerOptions options = {}, std::function<Clock::time_point()> now = Clock::now);

  // Makes the container's image present as its policy asks. Blocks while
  // pulling. `api` reads the pod's imagePullSecrets.
  ImageCheck EnsureImage(const nlohmann::json& pod, const nlohmann::json& container, ImagePullBackoff& backoff,
                         PodApi& api);

 private:
  void Event(const nlohmann::json& pod, const std::string& container, bool warning, const std::string& reason,
             const std::string& message);

  image::ImageStore& store_;
  image::ImagePuller* puller_;
  controllers::EventRecorder* events_;
  const ImagePullManagerOptions options_;
  std::function<Clock::time_point()> now_;
};

}  // namespace kelpie::kubelet
