// One flow record as users read it (the shape of Hubble's Flow where the
// meaning is the same): both ends named by pod, namespace, labels and
// workload, the service, byte and packet counts each way, TCP flags, the
// verdict and the kernel's drop reason.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "control/identity/identity_cache.h"
#include "kelpie/flow_abi.h"

namespace kelpie::flows {

enum class Verdict { kForwarded, kDropped };
enum class FlowEventType { kOpen, kUpdate, kClose, kDrop };

const char* VerdictName(Verdict v);        // "FORWARDED", "DROPPED"
const char* EventTypeName(FlowEventType t);  // "open", "update", "close", "drop"

struct FlowEnd {
  std::string ip;
  uint16_t port = 0;
  identity::Endpoint endpoint;
};

struct Flow {
  int64_t time_ns = 0;  // wall clock, Unix epoch
  std::string node_name;
  FlowEventType type = FlowEventType::kOpen;
  Verdict verdict = Verdict::kForwarded;
  std::string drop_reason;  // kernel name, "" unless dropped
  std::string protocol;     // "TCP", "UDP"
  FlowEnd source;           // who sent the first packet
  FlowEnd destination;
  std::string destination_service;  // "namespace/name" when known
  bool egress = true;               // seen leaving the watched pod (it connected)
  uint64_t bytes_sent = 0;          // source -> destination, IP bytes
  uint64_t bytes_received = 0;      // destination -> source
  uint64_t packets_sent = 0;
  uint64_t packets_received = 0;
  uint64_t drops = 0;
  std::vector<std::string> tcp_flags;  // union both ways: "SYN", "ACK", "FIN", "RST", "PSH", "URG"
  int64_t first_seen_ns = 0;           // wall clock
  int64_t last_seen_ns = 0;
};

// "SYN", "ACK", ... for a TCP flag byte, in header bit order.
std::vector<std::string> TcpFlagNames(uint64_t flags);

}  // namespace kelpie::flows
