// Flow output: JSON (one object per line, Hubble's field names where the
// meaning is the same) and a compact table for terminals.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "exporters/flows/flow.h"

namespace kelpie::flows {

nlohmann::json FlowToJson(const Flow& flow);
absl::StatusOr<Flow> FlowFromJson(const nlohmann::json& json);
// One line per flow under TableHeader(): time, source, destination, type,
// verdict and a summary (bytes, flags, drop reason).
std::string TableHeader();
std::string FlowToTableRow(const Flow& flow);
// "default/web-1", "service default/web", "world", "host" (with ip:port).
std::string DescribeEnd(const FlowEnd& end);

}  // namespace kelpie::flows
