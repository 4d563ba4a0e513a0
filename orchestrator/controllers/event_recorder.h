// Records core/v1 Events about objects ("Scheduled", "SuccessfulCreate",
// "ScalingReplicaSet", ...), as Kubernetes components do. Implementations
// must not block the caller on the API server: controllers call this from
// their workers.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace kelpie::controllers {

enum class EventType { kNormal, kWarning };

class EventRecorder {
 public:
  virtual ~EventRecorder() = default;
  // `involved` is the object the event is about (its apiVersion, kind and
  // metadata name/namespace/uid/resourceVersion become involvedObject).
  virtual void Event(const nlohmann::json& involved, EventType type, const std::string& reason,
                     const std::string& message) = 0;
};

}  // namespace kelpie::controllers
