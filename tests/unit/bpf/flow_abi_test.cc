// Every struct of kelpie/flow_abi.h has the same size and member offsets in
// the BTF of the flow and tcp_health objects as in C++ (see bpf_abi_test.cc
// for why), and the keys the kernel hashes carry no implicit padding.
#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <string>

#include "kelpie/flow_abi.h"

namespace kelpie {
namespace {

struct BtfDeleter {
  void operator()(struct btf* b) const { btf__free(b); }
};

class FlowAbiTest : public ::testing::Test {
 protected:
  void Open(const char* object) {
    btf_.reset(btf__parse_elf(object, nullptr));
    ASSERT_NE(btf_, nullptr) << "cannot read BTF of " << object;
  }
  const struct btf_type* Struct(const char* name) {
    int id = btf__find_by_name_kind(btf_.get(), name, BTF_KIND_STRUCT);
    return id < 0 ? nullptr : btf__type_by_id(btf_.get(), static_cast<__u32>(id));
  }
  long Offset(const struct btf_type* t, const char* member) {
    if (t == nullptr) return -2;
    const struct btf_member* m = btf_members(t);
    for (int i = 0; i < btf_vlen(t); ++i, ++m) {
      const char* n = btf__name_by_offset(btf_.get(), m->name_off);
      if (n != nullptr && std::string(n) == member) return static_cast<long>(btf_member_bit_offset(t, i) / 8);
    }
    return -1;
  }
  std::unique_ptr<struct btf, BtfDeleter> btf_;
};

#define KELPIE_EXPECT_STRUCT(type, members)                                  \
  do {                                                                       \
    const struct btf_type* t = Struct(#type);                                \
    ASSERT_NE(t, nullptr) << "struct " #type " is not in the object's BTF"; \
    EXPECT_EQ(t->size, sizeof(type)) << #type;                               \
    EXPECT_EQ(btf_vlen(t), members) << #type;                                \
  } while (0)
#define KELPIE_EXPECT_MEMBER(type, field) \
  EXPECT_EQ(Offset(Struct(#type), #field), static_cast<long>(offsetof(type, field))) << #type "." #field

// The flow key is hashed byte for byte by the kernel: its members must
// cover every byte (no compiler-inserted padding whose value is undefined).
static_assert(sizeof(kelpie_flow_key) == 8 + 4 + 4 + 2 + 2 + 1 + sizeof(kelpie_flow_key::pad));
static_assert(sizeof(kelpie_flow_key) % 8 == 0);

TEST_F(FlowAbiTest, FlowKeyAndStats) {
  Open(KELPIE_BPF_OBJECT_FLOW);
  KELPIE_EXPECT_STRUCT(kelpie_flow_key, 7);
  KELPIE_EXPECT_MEMBER(kelpie_flow_key, cgroup_id);
  KELPIE_EXPECT_MEMBER(kelpie_flow_key, local_ip);
  KELPIE_EXPECT_MEMBER(kelpie_flow_key, remote_ip);
  KELPIE_EXPECT_MEMBER(kelpie_flow_key, local_port);
  KELPIE_EXPECT_MEMBER(kelpie_flow_key, remote_port);
  KELPIE_EXPECT_MEMBER(kelpie_flow_key, protocol);
  KELPIE_EXPECT_MEMBER(kelpie_flow_key, pad);
  KELPIE_EXPECT_STRUCT(kelpie_flow_stats, 13);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, first_seen_ns);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, last_seen_ns);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, last_report_ns);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, tx_bytes);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, rx_bytes);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, tx_packets);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, rx_packets);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, drops);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, tcp_flags_tx);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, tcp_flags_rx);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, closed);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, last_drop_reason);
  KELPIE_EXPECT_MEMBER(kelpie_flow_stats, origin);
}

TEST_F(FlowAbiTest, FlowEventAndCgroupTotals) {
  Open(KELPIE_BPF_OBJECT_FLOW);
  KELPIE_EXPECT_STRUCT(kelpie_flow_event, 5);
  KELPIE_EXPECT_MEMBER(kelpie_flow_event, key);
  KELPIE_EXPECT_MEMBER(kelpie_flow_event, stats);
  KELPIE_EXPECT_MEMBER(kelpie_flow_event, timestamp_ns);
  KELPIE_EXPECT_MEMBER(kelpie_flow_event, type);
  KELPIE_EXPECT_MEMBER(kelpie_flow_event, verdict);
  KELPIE_EXPECT_STRUCT(kelpie_flow_cgroup_stats, 7);
  KELPIE_EXPECT_MEMBER(kelpie_flow_cgroup_stats, flows_opened);
  KELPIE_EXPECT_MEMBER(kelpie_flow_cgroup_stats, flows_closed);
  KELPIE_EXPECT_MEMBER(kelpie_flow_cgroup_stats, tx_bytes);
  KELPIE_EXPECT_MEMBER(kelpie_flow_cgroup_stats, rx_bytes);
  KELPIE_EXPECT_MEMBER(kelpie_flow_cgroup_stats, tx_packets);
  KELPIE_EXPECT_MEMBER(kelpie_flow_cgroup_stats, rx_packets);
  KELPIE_EXPECT_MEMBER(kelpie_flow_cgroup_stats, drops);
}

TEST_F(FlowAbiTest, TcpHealthHistogramsAndSocketTimes) {
  Open(KELPIE_BPF_OBJECT_TCP_HEALTH);
  KELPIE_EXPECT_STRUCT(kelpie_log2_hist, 3);
  KELPIE_EXPECT_MEMBER(kelpie_log2_hist, slots);
  KELPIE_EXPECT_MEMBER(kelpie_log2_hist, count);
  KELPIE_EXPECT_MEMBER(kelpie_log2_hist, sum);
  KELPIE_EXPECT_STRUCT(kelpie_tcp_sock_times, 2);
  KELPIE_EXPECT_MEMBER(kelpie_tcp_sock_times, syn_sent_ns);
  KELPIE_EXPECT_MEMBER(kelpie_tcp_sock_times, established_ns);
}

}  // namespace
}  // namespace kelpie
