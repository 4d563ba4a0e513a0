// Loads bpf/nodeport.bpf.c, pins its maps under the node's bpffs folder
// (<bpffs>/kelpie/<node>/np_*) and attaches the ingress program with tc
// (clsact qdisc, one filter per interface) to the interfaces that carry
// NodePort traffic: the node's external interfaces and the interface facing
// local backends (the pod bridge), where replies of local backends arrive.
//
// Restart semantics: the maps (frontends, backends, conntrack) are pinned and
// tc filters stay attached without a process, so traffic and tracked
// connections survive an agent restart. A new NodePortProgram on the same
// folder reuses the pinned maps and replaces the filter in place
// (BPF_TC_F_REPLACE on the same handle and priority). Uninstall() detaches
// the filters, removes the clsact qdiscs this object created, and the pins.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dataplane/bpf_skeleton.h"
#include "kelpie/nodeport_abi.h"

struct nodeport;

namespace kelpie::dataplane {

struct NodePortOptions {
  // Folder on a bpffs for this node's pins, e.g. /sys/fs/bpf/kelpie/<node>.
  std::string pin_dir;
  // Interfaces (in the calling thread's network namespace) to attach to.
  std::vector<std::string> interfaces;
  uint32_t max_frontends = KELPIE_NP_DEFAULT_MAX_FRONTENDS;
  uint32_t max_backends = KELPIE_NP_DEFAULT_MAX_BACKENDS;
  uint32_t max_conntrack = KELPIE_NP_DEFAULT_MAX_CT;
};

// How long an idle conntrack entry lives, by state (user-space sweep).
struct ConntrackTimeouts {
  uint64_t tcp_new_ns = 60ull * 1000000000;
  uint64_t tcp_established_ns = 6ull * 3600 * 1000000000;
  uint64_t tcp_closing_ns = 10ull * 1000000000;
  uint64_t udp_ns = 60ull * 1000000000;
};

struct NodePortEntry {
  kelpie_np_ct_key key;
  kelpie_np_ct_value value;
};

// Frontends and backend lists as the maps hold them (restore after restart).
struct NodePortSnapshot {
  std::vector<std::pair<kelpie_np_frontend_key, kelpie_np_frontend_value>> frontends;
  std::vector<std::pair<kelpie_np_backend_key, kelpie_np_backend>> backends;
};

// The writes the control plane makes (a fake in unit tests).
class NodePortMaps {
 public:
  virtual ~NodePortMaps() = default;
  // Write the backends before the frontend's backend_count grows, shrink the
  // count before deleting them.
  virtual absl::Status UpsertFrontend(const kelpie_np_frontend_key& key, const kelpie_np_frontend_value& value) = 0;
  virtual absl::Status DeleteFrontend(const kelpie_np_frontend_key& key) = 0;
  virtual absl::Status UpsertBackend(uint32_t service_id, uint32_t index, const kelpie_np_backend& backend) = 0;
  virtual absl::Status DeleteBackend(uint32_t service_id, uint32_t index) = 0;
  // Everything the frontend and backend maps hold (a previous run's state).
  virtual absl::StatusOr<NodePortSnapshot> Snapshot() const = 0;
};

class NodePortProgram : public NodePortMaps {
 public:
  static absl::StatusOr<std::unique_ptr<NodePortProgram>> Install(const NodePortOptions& options);
  ~NodePortProgram() override;
  NodePortProgram(const NodePortProgram&) = delete;
  NodePortProgram& operator=(const NodePortProgram&) = delete;

  absl::Status UpsertFrontend(const kelpie_np_frontend_key& key, const kelpie_np_frontend_value& value) override;
  absl::Status DeleteFrontend(const kelpie_np_frontend_key& key) override;
  absl::Status UpsertBackend(uint32_t service_id, uint32_t index, const kelpie_np_backend& backend) override;
  absl::Status DeleteBackend(uint32_t service_id, uint32_t index) override;
  absl::StatusOr<NodePortSnapshot> Snapshot() const override;

  // Attaches to one more interface (in the calling thread's network
  // namespace); a no-op when already attached to it. Interfaces that appear
  // later (the pod bridge, created with the first pod) are added this way.
  absl::Status Attach(const std::string& interface);
  bool IsAttached(const std::string& interface) const;

  // Removes conntrack entries idle longer than their state allows (and the
  // other direction of the same flow with them); returns how many went.
  absl::StatusOr<size_t> CollectGarbage(const ConntrackTimeouts& timeouts);
  absl::StatusOr<std::vector<NodePortEntry>> ConntrackEntries() const;
  // Per-reason packet counters summed over CPUs, indexed by kelpie_np_reason.
  absl::StatusOr<std::vector<uint64_t>> ReasonCounts() const;

  // Entries in the conntrack map (a walk; bounded by its size).
  absl::StatusOr<size_t> ConntrackEntryCount() const;

  bool reused_pins() const { return reused_pins_; }
  const NodePortOptions& options() const { return options_; }

  // Detaches from every interface, removes the qdiscs this object created
  // and every pin. The object is unusable afterwards.
  absl::Status Uninstall();

 private:
  explicit NodePortProgram(NodePortOptions options);
  absl::Status Load();
  absl::Status AttachTo(const std::string& interface);

  struct Attachment {
    int ifindex;
    bool created_qdisc;
  };
  NodePortOptions options_;
  std::optional<BpfSkeleton<struct nodeport>> skel_;
  std::vector<Attachment> attachments_;
  bool reused_pins_ = false;
};

// Removes the pinned NodePort maps of a node without loading anything.
absl::Status RemoveNodePortPins(const std::string& pin_dir);

}  // namespace kelpie::dataplane
