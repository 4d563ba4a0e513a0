#include "orchestrator/controllers/workloads/workload_util.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "absl/time/time.h"

namespace kelpie::controllers::workloads {

using nlohmann::json;

int64_t IntAt(const json& obj, const char* pointer, int64_t fallback) {
  const json::json_pointer p(pointer);
  if (!obj.contains(p)) return fallback;
  const json& v = obj.at(p);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number()) return static_cast<int64_t>(v.get<double>());
  return fallback;
}

std::string StringAt(const json& obj, const char* pointer, const std::string& fallback) {
  const json::json_pointer p(pointer);
  if (!obj.contains(p)) return fallback;
  const json& v = obj.at(p);
  return v.is_string() ? v.get<std::string>() : fallback;
}

std::string FormatTime(WallTime t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromChrono(t), absl::UTCTimeZone());
}

std::optional<WallTime> ParseTime(const std::string& text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return std::nullopt;
  return absl::ToChronoTime(t);
}

bool IsPodTerminal(const json& pod) {
  const std::string phase = StringAt(pod, "/status/phase");
  return phase == "Succeeded" || phase == "Failed";
}

bool IsDeleting(const json& obj) {
  return obj.contains("metadata") && obj["metadata"].contains("deletionTimestamp") &&
         !obj["metadata"]["deletionTimestamp"].is_null();
}

bool IsPodDeleting(const json& pod) { return IsDeleting(pod); }

bool IsPodActive(const json& pod) { return !IsPodTerminal(pod) && !IsPodDeleting(pod); }

namespace {
const json* ReadyCondition(const json& pod) {
  const json::json_pointer p("/status/conditions");
  if (!pod.contains(p) || !pod.at(p).is_array()) return nullptr;
  for (const json& c : pod.at(p)) {
    if (c.is_object() && c.value("type", "") == "Ready") return &c;
  }
  return nullptr;
}
}  // namespace

bool IsPodReady(const json& pod) {
  const json* c = ReadyCondition(pod);
  return c != nullptr && c->value("status", "") == "True";
}

std::optional<WallTime> PodReadySince(const json& pod) {
  const json* c = ReadyCondition(pod);
  if (c == nullptr || c->value("status", "") != "True") return std::nullopt;
  auto t = ParseTime(c->value("lastTransitionTime", ""));
  // A ready pod without a transition time counts as ready since ever.
  return t ? *t : WallTime{};
}

bool IsPodAvailable(const json& pod, int64_t min_ready_seconds, WallTime now) {
  auto since = PodReadySince(pod);
  if (!since) return false;
  if (min_ready_seconds <= 0) return true;
  return *since + std::chrono::seconds(min_ready_seconds) <= now;
}

json ControllerRefOf(const json& obj) {
  const json::json_pointer p("/metadata/ownerReferences");
  if (!obj.contains(p) || !obj.at(p).is_array()) return nullptr;
  for (const json& ref : obj.at(p)) {
    if (ref.is_object() && ref.value("controller", false)) return ref;
  }
  return nullptr;
}

json MakeControllerRef(const json& owner, const std::string& api_version, const std::string& kind) {
  return {{"apiVersion", api_version},
          {"kind", kind},
          {"name", StringAt(owner, "/metadata/name")},
          {"uid", StringAt(owner, "/metadata/uid")},
          {"controller", true},
          {"blockOwnerDeletion", true}};
}

bool LabelsContain(const json& labels, const json& subset) {
  if (!subset.is_object()) return true;
  for (auto it = subset.begin(); it != subset.end(); ++it) {
    if (!labels.is_object() || !labels.contains(it.key()) || labels[it.key()] != it.value()) return false;
  }
  return true;
}

namespace {
// Drops what decoding into Kubernetes' Go structs makes indistinguishable
// from absent: nulls and empty objects and lists ("resources": {} as
// kubectl sends it, "creationTimestamp": null).
void DropEmpty(json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end();) {
      DropEmpty(*it);
      if (it->is_null() || ((it->is_object() || it->is_array()) && it->empty())) {
        it = j.erase(it);
      } else {
        ++it;
      }
    }
  } else if (j.is_array()) {
    for (auto& e : j) DropEmpty(e);
  }
}
}  // namespace

json TemplateWithoutHash(const json& pod_template) {
  json t = pod_template.is_object() ? pod_template : json::object();
  DropEmpty(t);
  if (t.contains("metadata") && t["metadata"].is_object()) {
    json& meta = t["metadata"];
    if (meta.contains("labels") && meta["labels"].is_object()) {
      meta["labels"].erase(kPodTemplateHashLabel);
      if (meta["labels"].empty()) meta.erase("labels");
    }
    // The API server stamps nothing else into a template, but clients send
    // "creationTimestamp": null (dropped above) or an empty metadata.
    if (meta.empty()) t.erase("metadata");
  }
  return t;
}

bool EqualIgnoreHash(const json& a, const json& b) { return TemplateWithoutHash(a) == TemplateWithoutHash(b); }

uint32_t Fnv32a(const std::string& data) {
  uint32_t h = 2166136261u;
  for (unsigned char c : data) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

std::string SafeEncodeString(const std::string& s) {
  static constexpr char kAlphanums[] = "bcdfghjklmnpqrstvwxz2456789";
  constexpr size_t n = sizeof(kAlphanums) - 1;
  std::string out(s.size(), ' ');
  for (size_t i = 0; i < s.size(); ++i) out[i] = kAlphanums[static_cast<unsigned char>(s[i]) % n];
  return out;
}

std::string ComputeTemplateHash(const json& pod_template, std::optional<int32_t> collision_count) {
  std::string data = TemplateWithoutHash(pod_template).dump();  // object keys are sorted
  if (collision_count) data += std::to_string(*collision_count);
  return SafeEncodeString(std::to_string(Fnv32a(data)));
}

namespace {
int PhaseRank(const json& pod) {
  const std::string phase = StringAt(pod, "/status/phase", "Pending");
  if (phase == "Pending") return 0;
  if (phase == "Unknown") return 1;
  if (phase == "Running") return 2;
  return 3;
}

int64_t Restarts(const json& pod) {
  int64_t max = 0;
  const json::json_pointer p("/status/containerStatuses");
  if (pod.contains(p) && pod.at(p).is_array()) {
    for (const json& cs : pod.at(p)) {
      if (cs.is_object()) max = std::max<int64_t>(max, cs.value("restartCount", int64_t{0}));
    }
  }
  return max;
}
}  // namespace

std::vector<size_t> RankPodsForDeletion(const std::vector<json>& pods) {
  std::map<std::string, int> per_node;
  for (const json& p : pods) {
    std::string node = StringAt(p, "/spec/nodeName");
    if (!node.empty()) ++per_node[node];
  }
  struct Key {
    bool assigned;
    int phase;
    bool ready;
    int colocated;
    WallTime ready_since;
    int64_t restarts;
    std::string created;
  };
  std::vector<Key> keys;
  keys.reserve(pods.size());
  for (const json& p : pods) {
    std::string node = StringAt(p, "/spec/nodeName");
    auto since = PodReadySince(p);
    keys.push_back({!node.empty(), PhaseRank(p), since.has_value(), node.empty() ? 0 : per_node[node],
                    since.value_or(WallTime{}), Restarts(p), StringAt(p, "/metadata/creationTimestamp")});
  }
  std::vector<size_t> order(pods.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t ia, size_t ib) {
    const Key& a = keys[ia];
    const Key& b = keys[ib];
    if (a.assigned != b.assigned) return !a.assigned;
    if (a.phase != b.phase) return a.phase < b.phase;
    if (a.ready != b.ready) return !a.ready;
    if (a.colocated != b.colocated) return a.colocated > b.colocated;
    if (a.ready && a.ready_since != b.ready_since) return a.ready_since > b.ready_since;
    if (a.restarts != b.restarts) return a.restarts > b.restarts;
    return a.created > b.created;  // RFC 3339 UTC strings order by time
  });
  return order;
}

BatchResult SlowStartBatch(int count, int initial_batch_size, int max_parallel,
                           const std::function<absl::Status()>& fn) {
  BatchResult result;
  int remaining = count;
  int batch = std::min(remaining, std::max(1, initial_batch_size));
  max_parallel = std::max(1, max_parallel);
  while (batch > 0) {
    std::mutex mu;
    int ok = 0;
    absl::Status first;
    std::atomic<int> next{0};
    auto work = [&] {
      while (next.fetch_add(1) < batch) {
        absl::Status s = fn();
        std::lock_guard<std::mutex> lock(mu);
        if (s.ok()) {
          ++ok;
        } else if (first.ok()) {
          first = s;
        }
      }
    };
    const int threads = std::min(batch, max_parallel);
    if (threads == 1) {
      work();
    } else {
      std::vector<std::thread> pool;
      for (int i = 0; i < threads; ++i) pool.emplace_back(work);
      for (auto& t : pool) t.join();
    }
    result.succeeded += ok;
    if (!first.ok()) {
      result.first_error = first;
      return result;
    }
    remaining -= batch;
    batch = std::min(remaining, 2 * batch);
  }
  return result;
}

}  // namespace kelpie::controllers::workloads
