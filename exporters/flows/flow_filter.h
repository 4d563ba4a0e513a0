// Flow filters in the style of Hubble's FlowFilter: the fields of one filter
// are ANDed, a list of filters is ORed; namespace, pod, label, service and
// port match when one end has them all; source_pods and destination_pods
// name a direction.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "exporters/flows/flow.h"

namespace kelpie::flows {

struct FlowFilter {
  std::vector<std::string> namespaces;
  // "namespace/name" or "name" (any namespace); a trailing '*' matches a prefix.
  std::vector<std::string> pods;
  std::vector<std::string> source_pods;
  std::vector<std::string> destination_pods;
  std::map<std::string, std::string> labels;  // all must be present
  std::vector<std::string> services;          // "namespace/name" or "name"
  std::vector<Verdict> verdicts;
  std::vector<std::string> protocols;  // "TCP", "UDP" (case-insensitive)
  std::vector<uint16_t> ports;
  std::vector<std::string> drop_reasons;

  bool Matches(const Flow& flow) const;
  bool empty() const;
};

// True when `flow` passes: matches one of `allow` (or `allow` is empty) and
// none of `deny`.
bool PassesFilters(const Flow& flow, const std::vector<FlowFilter>& allow, const std::vector<FlowFilter>& deny);

absl::StatusOr<Verdict> ParseVerdict(const std::string& text);
// "k=v,k2=v2" -> labels; errors name the bad pair.
absl::StatusOr<std::map<std::string, std::string>> ParseLabelSelector(const std::string& text);

}  // namespace kelpie::flows
