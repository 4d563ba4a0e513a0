// Every struct of kelpie/sock_lb_abi.h has the same size and member offsets
// in the sock_lb object's BTF as in C++ (see bpf_abi_test.cc for why).
#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <string>

#include "kelpie/sock_lb_abi.h"

namespace kelpie {
namespace {

struct BtfDeleter {
  void operator()(struct btf* b) const { btf__free(b); }
};

class SockLbAbiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    btf_.reset(btf__parse_elf(KELPIE_BPF_OBJECT_SOCK_LB, nullptr));
    ASSERT_NE(btf_, nullptr) << "cannot read BTF of " << KELPIE_BPF_OBJECT_SOCK_LB;
  }
  const struct btf_type* Struct(const char* name) {
    int id = btf__find_by_name_kind(btf_.get(), name, BTF_KIND_STRUCT);
    return id < 0 ? nullptr : btf__type_by_id(btf_.get(), static_cast<__u32>(id));
  }
  long Offset(const struct btf_type* t, const char* member) {
    const struct btf_member* m = btf_members(t);
    for (int i = 0; i < btf_vlen(t); ++i, ++m) {
      const char* n = btf__name_by_offset(btf_.get(), m->name_off);
      if (n != nullptr && std::string(n) == member) return static_cast<long>(btf_member_bit_offset(t, i) / 8);
    }
    return -1;
  }
  std::unique_ptr<struct btf, BtfDeleter> btf_;
};

#define KELPIE_EXPECT_STRUCT(type, members)                                   \
  do {                                                                        \
    const struct btf_type* t = Struct(#type);                                 \
    ASSERT_NE(t, nullptr) << "struct " #type " is not in the object's BTF";  \
    EXPECT_EQ(t->size, sizeof(type)) << #type;                                \
    EXPECT_EQ(btf_vlen(t), members) << #type;                                 \
  } while (0)
#define KELPIE_EXPECT_MEMBER(type, field) \
  EXPECT_EQ(Offset(Struct(#type), #field), static_cast<long>(offsetof(type, field))) << #type "." #field

TEST_F(SockLbAbiTest, ServiceKeyAndValue) {
  KELPIE_EXPECT_STRUCT(kelpie_lb_service_key, 4);
  KELPIE_EXPECT_MEMBER(kelpie_lb_service_key, address);
  KELPIE_EXPECT_MEMBER(kelpie_lb_service_key, port);
  KELPIE_EXPECT_MEMBER(kelpie_lb_service_key, protocol);
  KELPIE_EXPECT_MEMBER(kelpie_lb_service_key, pad);
  KELPIE_EXPECT_STRUCT(kelpie_lb_service_value, 5);
  KELPIE_EXPECT_MEMBER(kelpie_lb_service_value, service_id);
  KELPIE_EXPECT_MEMBER(kelpie_lb_service_value, slot_count);
  KELPIE_EXPECT_MEMBER(kelpie_lb_service_value, affinity_timeout_s);
  KELPIE_EXPECT_MEMBER(kelpie_lb_service_value, flags);
  KELPIE_EXPECT_MEMBER(kelpie_lb_service_value, pad);
}

TEST_F(SockLbAbiTest, SlotsAndBackends) {
  KELPIE_EXPECT_STRUCT(kelpie_lb_slot_key, 2);
  KELPIE_EXPECT_MEMBER(kelpie_lb_slot_key, service_id);
  KELPIE_EXPECT_MEMBER(kelpie_lb_slot_key, slot);
  KELPIE_EXPECT_STRUCT(kelpie_lb_backend, 4);
  KELPIE_EXPECT_MEMBER(kelpie_lb_backend, address);
  KELPIE_EXPECT_MEMBER(kelpie_lb_backend, port);
  KELPIE_EXPECT_MEMBER(kelpie_lb_backend, protocol);
  KELPIE_EXPECT_MEMBER(kelpie_lb_backend, flags);
}

TEST_F(SockLbAbiTest, ReverseTranslationAffinityAndStats) {
  KELPIE_EXPECT_STRUCT(kelpie_lb_revnat_key, 4);
  KELPIE_EXPECT_MEMBER(kelpie_lb_revnat_key, socket_cookie);
  KELPIE_EXPECT_MEMBER(kelpie_lb_revnat_key, backend_address);
  KELPIE_EXPECT_MEMBER(kelpie_lb_revnat_key, backend_port);
  KELPIE_EXPECT_MEMBER(kelpie_lb_revnat_key, pad);
  KELPIE_EXPECT_STRUCT(kelpie_lb_revnat_value, 3);
  KELPIE_EXPECT_MEMBER(kelpie_lb_revnat_value, service_address);
  KELPIE_EXPECT_MEMBER(kelpie_lb_revnat_value, service_port);
  KELPIE_EXPECT_STRUCT(kelpie_lb_affinity_key, 3);
  KELPIE_EXPECT_MEMBER(kelpie_lb_affinity_key, client_netns_cookie);
  KELPIE_EXPECT_MEMBER(kelpie_lb_affinity_key, service_id);
  KELPIE_EXPECT_STRUCT(kelpie_lb_affinity_value, 3);
  KELPIE_EXPECT_MEMBER(kelpie_lb_affinity_value, last_used_ns);
  KELPIE_EXPECT_MEMBER(kelpie_lb_affinity_value, backend_id);
  KELPIE_EXPECT_STRUCT(kelpie_lb_service_stats, 2);
  KELPIE_EXPECT_MEMBER(kelpie_lb_service_stats, translated);
  KELPIE_EXPECT_MEMBER(kelpie_lb_service_stats, no_backend);
}

}  // namespace
}  // namespace kelpie
