// Turns kernel flow events into Flows: orients them (source is whoever
// sent the first packet), converts monotonic kernel times to wall clock,
// names the drop reason and both ends through an IdentityLookup.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "control/identity/identity_cache.h"
#include "exporters/flows/flow.h"
#include "kelpie/flow_abi.h"

namespace kelpie::flows {

struct FlowDecoderOptions {
  std::string node_name;
  // Kernel drop reason number -> name (DropReasonNames::Name).
  std::function<std::string(uint32_t)> drop_reason_name;
  // Wall clock minus CLOCK_MONOTONIC, in ns (MonotonicToWallOffsetNs()).
  int64_t monotonic_to_wall_ns = 0;
};

int64_t MonotonicToWallOffsetNs();

class FlowDecoder {
 public:
  FlowDecoder(const identity::IdentityLookup& identities, FlowDecoderOptions options)
      : identities_(identities), options_(std::move(options)) {}
  Flow Decode(const kelpie_flow_event& event) const;

 private:
  const identity::IdentityLookup& identities_;
  FlowDecoderOptions options_;
};

}  // namespace kelpie::flows
