#include "orchestrator/apiserver/inflight_limiter.h"

#include "orchestrator/apiserver/request_info.h"

namespace kelpie::apiserver {

InflightLimiter::InflightLimiter(int max_read_only, int max_mutating)
    : max_read_only_(max_read_only < 0 ? 0 : max_read_only), max_mutating_(max_mutating < 0 ? 0 : max_mutating) {}

bool InflightLimiter::TryAcquire(Kind kind) {
  std::atomic<int>& c = Counter(kind);
  const int max = limit(kind);
  int cur = c.load();
  while (true) {
    if (max > 0 && cur >= max) return false;
    if (c.compare_exchange_weak(cur, cur + 1)) return true;
  }
}

void InflightLimiter::Release(Kind kind) { Counter(kind).fetch_sub(1); }

int InflightLimiter::current(Kind kind) const {
  return kind == Kind::kReadOnly ? read_only_.load() : mutating_.load();
}

bool IsLongRunning(const RequestInfo& info) {
  if (info.verb == "watch" || info.verb == "proxy") return true;
  const std::string& s = info.subresource;
  return s == "attach" || s == "exec" || s == "log" || s == "portforward" || s == "proxy";
}

InflightLimiter::Kind KindOf(const std::string& verb) {
  return verb == "get" || verb == "list" || verb == "watch" || verb == "head" ? InflightLimiter::Kind::kReadOnly
                                                                              : InflightLimiter::Kind::kMutating;
}

const char* KindLabel(InflightLimiter::Kind kind) {
  return kind == InflightLimiter::Kind::kReadOnly ? "readOnly" : "mutating";
}

}  // namespace kelpie::apiserver
