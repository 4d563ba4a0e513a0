#include "exporters/flows/flow_decoder.h"

#include <netinet/in.h>

#include <ctime>

namespace kelpie::flows {

const char* VerdictName(Verdict v) { return v == Verdict::kDropped ? "DROPPED" : "FORWARDED"; }

const char* EventTypeName(FlowEventType t) {
  switch (t) {
    case FlowEventType::kOpen:
      return "open";
    case FlowEventType::kUpdate:
      return "update";
    case FlowEventType::kClose:
      return "close";
    case FlowEventType::kDrop:
      return "drop";
  }
  return "open";
}

std::vector<std::string> TcpFlagNames(uint64_t flags) {
  static const char* kNames[] = {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"};
  std::vector<std::string> out;
  for (int bit = 0; bit < 8; ++bit) {
    if (flags & (1u << bit)) out.emplace_back(kNames[bit]);
  }
  return out;
}

int64_t MonotonicToWallOffsetNs() {
  timespec mono{}, wall{};
  ::clock_gettime(CLOCK_MONOTONIC, &mono);
  ::clock_gettime(CLOCK_REALTIME, &wall);
  auto ns = [](const timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; };
  return ns(wall) - ns(mono);
}

Flow FlowDecoder::Decode(const kelpie_flow_event& event) const {
  const kelpie_flow_key& k = event.key;
  const kelpie_flow_stats& s = event.stats;
  Flow f;
  f.node_name = options_.node_name;
  f.time_ns = static_cast<int64_t>(event.timestamp_ns) + options_.monotonic_to_wall_ns;
  f.first_seen_ns = static_cast<int64_t>(s.first_seen_ns) + options_.monotonic_to_wall_ns;
  f.last_seen_ns = static_cast<int64_t>(s.last_seen_ns ? s.last_seen_ns : s.first_seen_ns) +
                   options_.monotonic_to_wall_ns;
  switch (event.type) {
    case KELPIE_FLOW_UPDATE:
      f.type = FlowEventType::kUpdate;
      break;
    case KELPIE_FLOW_CLOSE:
      f.type = FlowEventType::kClose;
      break;
    case KELPIE_FLOW_DROP:
      f.type = FlowEventType::kDrop;
      break;
    default:
      f.type = FlowEventType::kOpen;
  }
  f.verdict = event.verdict == KELPIE_VERDICT_DROPPED ? Verdict::kDropped : Verdict::kForwarded;
  if (s.drops > 0 && options_.drop_reason_name) f.drop_reason = options_.drop_reason_name(s.last_drop_reason);
  f.drops = s.drops;
  f.protocol = k.protocol == IPPROTO_TCP ? "TCP" : k.protocol == IPPROTO_UDP ? "UDP" : "OTHER";

  FlowEnd local{.ip = identity::FormatIpv4(k.local_ip), .port = k.local_port, .endpoint = {}};
  auto by_cgroup = identities_.ByCgroup(k.cgroup_id);
  local.endpoint = by_cgroup ? *by_cgroup : identities_.ByIp(k.local_ip);
  FlowEnd remote{.ip = identity::FormatIpv4(k.remote_ip), .port = k.remote_port,
                 .endpoint = identities_.ByIp(k.remote_ip)};
  // The watched socket's peer initiated: it is the source.
  f.egress = s.origin != KELPIE_ORIGIN_REMOTE;
  if (f.egress) {
    f.source = std::move(local);
    f.destination = std::move(remote);
    f.bytes_sent = s.tx_bytes;
    f.bytes_received = s.rx_bytes;
    f.packets_sent = s.tx_packets;
    f.packets_received = s.rx_packets;
  } else {
    f.source = std::move(remote);
    f.destination = std::move(local);
    f.bytes_sent = s.rx_bytes;
    f.bytes_received = s.tx_bytes;
    f.packets_sent = s.rx_packets;
    f.packets_received = s.tx_packets;
  }
  if (f.destination.endpoint.kind == identity::EndpointKind::kService) {
    f.destination_service = f.destination.endpoint.namespace_name + "/" + f.destination.endpoint.service_name;
  } else if (auto backs = identities_.ServiceSelecting(f.destination.endpoint)) {
    // Socket-level load balancing connects straight to the backend: name
    // the service the destination pod backs.
    f.destination_service = *backs;
  }
  f.tcp_flags = TcpFlagNames(s.tcp_flags_tx | s.tcp_flags_rx);
  return f;
}

}  // namespace kelpie::flows
