#include "exporters/flows/flow_filter.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kelpie::flows {
namespace {

bool NameMatches(const std::string& pattern, const std::string& ns, const std::string& name) {
  if (name.empty()) return false;
  std::string want_ns;
  std::string want = pattern;
  if (size_t slash = pattern.find('/'); slash != std::string::npos) {
    want_ns = pattern.substr(0, slash);
    want = pattern.substr(slash + 1);
  }
  if (!want_ns.empty() && want_ns != ns) return false;
  if (!want.empty() && want.back() == '*') return absl::StartsWith(name, want.substr(0, want.size() - 1));
  return want == name;
}

bool PodIn(const std::vector<std::string>& patterns, const FlowEnd& end) {
  const identity::Endpoint& e = end.endpoint;
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
    return e.kind == identity::EndpointKind::kPod && NameMatches(p, e.namespace_name, e.pod_name);
  });
}

bool EndMatches(const FlowFilter& f, const FlowEnd& end, const std::string& service) {
  const identity::Endpoint& e = end.endpoint;
  if (!f.namespaces.empty() &&
      std::find(f.namespaces.begin(), f.namespaces.end(), e.namespace_name) == f.namespaces.end()) {
    return false;
  }
  if (!f.pods.empty() && !PodIn(f.pods, end)) return false;
  for (const auto& [k, v] : f.labels) {
    auto it = e.labels.find(k);
    if (it == e.labels.end() || it->second != v) return false;
  }
  if (!f.services.empty()) {
    size_t slash = service.find('/');
    std::string ns = slash == std::string::npos ? "" : service.substr(0, slash);
    std::string name = slash == std::string::npos ? service : service.substr(slash + 1);
    if (std::none_of(f.services.begin(), f.services.end(),
                     [&](const std::string& s) { return NameMatches(s, ns, name); })) {
      return false;
    }
  }
  if (!f.ports.empty() && std::find(f.ports.begin(), f.ports.end(), end.port) == f.ports.end()) return false;
  return true;
}

}  // namespace

bool FlowFilter::empty() const {
  return namespaces.empty() && pods.empty() && source_pods.empty() && destination_pods.empty() && labels.empty() && services.empty() && verdicts.empty() &&
         protocols.empty() && ports.empty() && drop_reasons.empty();
}

bool FlowFilter::Matches(const Flow& flow) const {
  if (!verdicts.empty() && std::find(verdicts.begin(), verdicts.end(), flow.verdict) == verdicts.end()) return false;
  if (!protocols.empty() && std::none_of(protocols.begin(), protocols.end(), [&](const std::string& p) {
        return absl::EqualsIgnoreCase(p, flow.protocol);
      })) {
    return false;
  }
  if (!drop_reasons.empty() &&
      std::find(drop_reasons.begin(), drop_reasons.end(), flow.drop_reason) == drop_reasons.end()) {
    return false;
  }
  if (!source_pods.empty() && !PodIn(source_pods, flow.source)) return false;
  if (!destination_pods.empty() && !PodIn(destination_pods, flow.destination)) return false;
  // The service belongs to the destination end.
  return EndMatches(*this, flow.source, "") || EndMatches(*this, flow.destination, flow.destination_service);
}

bool PassesFilters(const Flow& flow, const std::vector<FlowFilter>& allow, const std::vector<FlowFilter>& deny) {
  for (const FlowFilter& f : deny) {
    if (f.Matches(flow)) return false;
  }
  if (allow.empty()) return true;
  return std::any_of(allow.begin(), allow.end(), [&](const FlowFilter& f) { return f.Matches(flow); });
}

absl::StatusOr<Verdict> ParseVerdict(const std::string& text) {
  std::string v = absl::AsciiStrToUpper(text);
  if (v == "FORWARDED") return Verdict::kForwarded;
  if (v == "DROPPED") return Verdict::kDropped;
  return absl::InvalidArgumentError(absl::StrCat("unknown verdict \"", text, "\" (FORWARDED or DROPPED)"));
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabelSelector(const std::string& text) {
  std::map<std::string, std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("label \"", std::string(part), "\" is not key=value"));
    }
    out[kv[0]] = kv[1];
  }
  return out;
}

}  // namespace kelpie::flows
