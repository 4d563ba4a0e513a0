// Every struct of kelpie/nodeport_abi.h has the same size and member offsets
// in the nodeport object's BTF as in C++ (see bpf_abi_test.cc for why).
#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <string>

#include "kelpie/nodeport_abi.h"

namespace kelpie {
namespace {

struct BtfDeleter {
  void operator()(struct btf* b) const { btf__free(b); }
};

class NodePortAbiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    btf_.reset(btf__parse_elf(KELPIE_BPF_OBJECT_NODEPORT, nullptr));
    ASSERT_NE(btf_, nullptr) << "cannot read BTF of " << KELPIE_BPF_OBJECT_NODEPORT;
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

TEST_F(NodePortAbiTest, FrontendsAndBackends) {
  KELPIE_EXPECT_STRUCT(kelpie_np_frontend_key, 4);
  KELPIE_EXPECT_MEMBER(kelpie_np_frontend_key, address);
  KELPIE_EXPECT_MEMBER(kelpie_np_frontend_key, port);
  KELPIE_EXPECT_MEMBER(kelpie_np_frontend_key, protocol);
  KELPIE_EXPECT_MEMBER(kelpie_np_frontend_key, pad);
  KELPIE_EXPECT_STRUCT(kelpie_np_frontend_value, 5);
  KELPIE_EXPECT_MEMBER(kelpie_np_frontend_value, service_id);
  KELPIE_EXPECT_MEMBER(kelpie_np_frontend_value, backend_count);
  KELPIE_EXPECT_MEMBER(kelpie_np_frontend_value, snat_address);
  KELPIE_EXPECT_MEMBER(kelpie_np_frontend_value, flags);
  KELPIE_EXPECT_STRUCT(kelpie_np_backend_key, 2);
  KELPIE_EXPECT_MEMBER(kelpie_np_backend_key, service_id);
  KELPIE_EXPECT_MEMBER(kelpie_np_backend_key, index);
  KELPIE_EXPECT_STRUCT(kelpie_np_backend, 3);
  KELPIE_EXPECT_MEMBER(kelpie_np_backend, address);
  KELPIE_EXPECT_MEMBER(kelpie_np_backend, port);
}

TEST_F(NodePortAbiTest, Conntrack) {
  KELPIE_EXPECT_STRUCT(kelpie_np_ct_key, 6);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_key, saddr);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_key, daddr);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_key, sport);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_key, dport);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_key, protocol);
  KELPIE_EXPECT_STRUCT(kelpie_np_ct_value, 9);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_value, last_seen_ns);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_value, nat_saddr);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_value, nat_daddr);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_value, nat_sport);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_value, nat_dport);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_value, service_id);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_value, flags);
  KELPIE_EXPECT_MEMBER(kelpie_np_ct_value, state);
}

}  // namespace
}  // namespace kelpie
