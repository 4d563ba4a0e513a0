// The ABI headers in bpf/include are compiled into both the BPF objects and
// C++; this test reads the BTF of the built objects and checks that every
// shared struct has the same size and member offsets on both sides.
#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <string>

#include "kelpie/detect_abi.h"
#include "kelpie/probe_abi.h"

namespace kelpie {
namespace {

struct BtfDeleter {
  void operator()(struct btf* b) const { btf__free(b); }
};

const struct btf_type* FindStruct(const struct btf* btf, const char* name) {
  int id = btf__find_by_name_kind(btf, name, BTF_KIND_STRUCT);
  return id < 0 ? nullptr : btf__type_by_id(btf, static_cast<__u32>(id));
}

// Byte offset of member `member` of a BTF struct, or -1.
long MemberOffset(const struct btf* btf, const struct btf_type* t, const char* member) {
  const struct btf_member* m = btf_members(t);
  for (int i = 0; i < btf_vlen(t); ++i, ++m) {
    const char* n = btf__name_by_offset(btf, m->name_off);
    if (n != nullptr && std::string(n) == member) return static_cast<long>(btf_member_bit_offset(t, i) / 8);
  }
  return -1;
}

TEST(BpfAbiTest, ProbeEventMatchesBtf) {
  std::unique_ptr<struct btf, BtfDeleter> btf(btf__parse_elf(KELPIE_BPF_OBJECT_PROBE, nullptr));
  ASSERT_NE(btf, nullptr) << "cannot read BTF of " << KELPIE_BPF_OBJECT_PROBE;
  const struct btf_type* t = FindStruct(btf.get(), "kelpie_probe_event");
  ASSERT_NE(t, nullptr) << "struct kelpie_probe_event is not in the object's BTF";
  EXPECT_EQ(t->size, sizeof(kelpie_probe_event));
  EXPECT_EQ(btf_vlen(t), 6);
#define KELPIE_CHECK_MEMBER(field) \
  EXPECT_EQ(MemberOffset(btf.get(), t, #field), static_cast<long>(offsetof(kelpie_probe_event, field))) << #field
  KELPIE_CHECK_MEMBER(tgid);
  KELPIE_CHECK_MEMBER(pid);
  KELPIE_CHECK_MEMBER(cookie);
  KELPIE_CHECK_MEMBER(timestamp_ns);
  KELPIE_CHECK_MEMBER(syscall_nr);
  KELPIE_CHECK_MEMBER(comm);
#undef KELPIE_CHECK_MEMBER
}

// Both detection objects embed the same ABI; each must agree with C++.
void CheckDetectAbi(const char* object) {
  std::unique_ptr<struct btf, BtfDeleter> btf(btf__parse_elf(object, nullptr));
  ASSERT_NE(btf, nullptr) << "cannot read BTF of " << object;
  const struct btf_type* t = FindStruct(btf.get(), "kelpie_detect_event");
  ASSERT_NE(t, nullptr) << "struct kelpie_detect_event is not in " << object;
  EXPECT_EQ(t->size, sizeof(kelpie_detect_event));
  EXPECT_EQ(btf_vlen(t), 18);
#define KELPIE_CHECK_MEMBER(type, field) \
  EXPECT_EQ(MemberOffset(btf.get(), t, #field), static_cast<long>(offsetof(type, field))) << #field
  KELPIE_CHECK_MEMBER(kelpie_detect_event, kind);
  KELPIE_CHECK_MEMBER(kelpie_detect_event, ppid);
  KELPIE_CHECK_MEMBER(kelpie_detect_event, cgroup_id);
  KELPIE_CHECK_MEMBER(kelpie_detect_event, arg0);
  KELPIE_CHECK_MEMBER(kelpie_detect_event, ret);
  KELPIE_CHECK_MEMBER(kelpie_detect_event, args_len);
  KELPIE_CHECK_MEMBER(kelpie_detect_event, killed);
  KELPIE_CHECK_MEMBER(kelpie_detect_event, tty);
  KELPIE_CHECK_MEMBER(kelpie_detect_event, comm);
  KELPIE_CHECK_MEMBER(kelpie_detect_event, path);
  KELPIE_CHECK_MEMBER(kelpie_detect_event, args);
  const struct btf_type* p = FindStruct(btf.get(), "kelpie_detect_process");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->size, sizeof(kelpie_detect_process));
  t = p;
  KELPIE_CHECK_MEMBER(kelpie_detect_process, cgroup_id);
  KELPIE_CHECK_MEMBER(kelpie_detect_process, ppid);
  KELPIE_CHECK_MEMBER(kelpie_detect_process, exe);
#undef KELPIE_CHECK_MEMBER
}

TEST(BpfAbiTest, DetectEventMatchesBtf) {
  CheckDetectAbi(KELPIE_BPF_OBJECT_PROCESS);
  CheckDetectAbi(KELPIE_BPF_OBJECT_SYSCALLS);
}

}  // namespace
}  // namespace kelpie
