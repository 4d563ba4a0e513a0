// Pure helpers shared by the workload controllers: pod states, owner
// references, template hashing, deletion ranking, time stamps, and the
// slow-start batch creation Kubernetes controllers use. No I/O here, so
// everything is unit-testable.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include <nlohmann/json.hpp>

namespace kelpie::controllers::workloads {

using WallTime = std::chrono::system_clock::time_point;

inline constexpr char kPodTemplateHashLabel[] = "pod-template-hash";

// Integer field at a JSON pointer, or `fallback` when absent or not a number.
int64_t IntAt(const nlohmann::json& obj, const char* pointer, int64_t fallback = 0);
std::string StringAt(const nlohmann::json& obj, const char* pointer, const std::string& fallback = "");

// metav1.Time: RFC 3339 UTC with second precision, and back (nullopt when it
// does not parse).
std::string FormatTime(WallTime t);
std::optional<WallTime> ParseTime(const std::string& text);

// Pod states as Kubernetes' controller utilities define them.
bool IsPodTerminal(const nlohmann::json& pod);  // phase Succeeded or Failed
bool IsPodDeleting(const nlohmann::json& pod);  // has deletionTimestamp
// Not terminal and not being deleted (controller.FilterActivePods).
bool IsPodActive(const nlohmann::json& pod);
bool IsPodReady(const nlohmann::json& pod);
// When the Ready condition last turned True (nullopt when not ready).
std::optional<WallTime> PodReadySince(const nlohmann::json& pod);
// Ready for at least `min_ready_seconds` at `now`.
bool IsPodAvailable(const nlohmann::json& pod, int64_t min_ready_seconds, WallTime now);

// The ownerReference with controller=true, or null.
nlohmann::json ControllerRefOf(const nlohmann::json& obj);
// An ownerReference naming `owner` as controller (blockOwnerDeletion too).
nlohmann::json MakeControllerRef(const nlohmann::json& owner, const std::string& api_version,
                                 const std::string& kind);
bool IsDeleting(const nlohmann::json& obj);

// True when every label of `subset` is in `labels` with the same value.
bool LabelsContain(const nlohmann::json& labels, const nlohmann::json& subset);

// The pod template without the pod-template-hash label and without null or
// empty members (as Go decoding sees them), so templates that differ only
// in the hash compare equal
// (deploymentutil.EqualIgnoreHash).
nlohmann::json TemplateWithoutHash(const nlohmann::json& pod_template);
bool EqualIgnoreHash(const nlohmann::json& a, const nlohmann::json& b);

// FNV-1a 32-bit, the hash Kubernetes' ComputeHash uses.
uint32_t Fnv32a(const std::string& data);
// Kubernetes' rand.SafeEncodeString: maps each character onto consonants and
// digits that cannot spell words.
std::string SafeEncodeString(const std::string& s);
// The pod-template-hash of a template: FNV-1a over the canonical JSON of the
// template (keys sorted, hash label and nulls dropped) followed by the
// collision count when set, then SafeEncodeString of the decimal value.
std::string ComputeTemplateHash(const nlohmann::json& pod_template, std::optional<int32_t> collision_count);

// Orders pods so the first ones are the best to delete, as Kubernetes'
// ActivePodsWithRanks does: unscheduled before scheduled; Pending before
// Unknown before Running; not ready before ready; more pods of the same
// owner on the node before fewer; ready for a shorter time before longer;
// more restarts before fewer; newer before older.
std::vector<size_t> RankPodsForDeletion(const std::vector<nlohmann::json>& pods);

// Kubernetes' slowStartBatch: calls `fn` `count` times in batches of 1, 2,
// 4, ... (each batch run concurrently on up to `max_parallel` threads),
// stopping after the first batch with an error. Returns how many calls
// succeeded and the first error.
struct BatchResult {
  int succeeded = 0;
  absl::Status first_error;
};
BatchResult SlowStartBatch(int count, int initial_batch_size, int max_parallel,
                           const std::function<absl::Status()>& fn);

}  // namespace kelpie::controllers::workloads
