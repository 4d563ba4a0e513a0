// Caps on requests being served at once (kube-apiserver's
// --max-requests-inflight and --max-mutating-requests-inflight): read-only
// and mutating requests have separate budgets; a request beyond its budget
// is refused (429 with Retry-After) rather than queued. Long-running
// requests (watches, logs, exec, port-forward, proxy) are not counted.
#pragma once

#include <atomic>
#include <string>

namespace kelpie::apiserver {

struct RequestInfo;

class InflightLimiter {
 public:
  enum class Kind { kReadOnly, kMutating };

  // A limit of 0 means unlimited.
  InflightLimiter(int max_read_only, int max_mutating);

  // Takes a slot of `kind`; false when the budget is used up.
  bool TryAcquire(Kind kind);
  void Release(Kind kind);
  int current(Kind kind) const;
  int limit(Kind kind) const { return kind == Kind::kReadOnly ? max_read_only_ : max_mutating_; }

 private:
  std::atomic<int>& Counter(Kind kind) { return kind == Kind::kReadOnly ? read_only_ : mutating_; }
  const int max_read_only_;
  const int max_mutating_;
  std::atomic<int> read_only_{0};
  std::atomic<int> mutating_{0};
};

// kube-apiserver's long-running check: watch and proxy verbs, and the
// attach, exec, log, portforward and proxy subresources.
bool IsLongRunning(const RequestInfo& info);
// get, list, watch (and non-resource GET/HEAD) are read-only.
InflightLimiter::Kind KindOf(const std::string& verb);
// "readOnly" / "mutating", the request_kind label kube-apiserver uses.
const char* KindLabel(InflightLimiter::Kind kind);

}  // namespace kelpie::apiserver
