// The ABI headers in bpf/include are compiled into both the BPF objects and
// C++; this test reads the BTF of the built objects and checks that every
// shared struct has the same size and member offsets on both sides.
#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <string>

#include "control/preflight/preflight.h"
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

TEST(PreflightFormatTest, CapabilitiesFromProcStatus) {
  std::string status = "Name:\tkelpie\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
  EXPECT_TRUE(preflight::HasCapability(status, 39));
  EXPECT_TRUE(preflight::HasCapability(status, 12));
  std::string none = "CapEff:\t0000000000000000\n";
  EXPECT_FALSE(preflight::HasCapability(none, 21));
  std::string only_net_admin = "CapEff:\t0000000000001000\n";
  EXPECT_TRUE(preflight::HasCapability(only_net_admin, 12));
  EXPECT_FALSE(preflight::HasCapability(only_net_admin, 21));
  EXPECT_FALSE(preflight::HasCapability("garbage", 12));
}

TEST(PreflightFormatTest, TableNamesProblemsAndRemedies) {
  std::vector<preflight::CheckResult> results = {
      {"kernel", preflight::CheckStatus::kOk, "Linux 6.1", ""},
      {"runc", preflight::CheckStatus::kMissing, "runc not found in PATH", "apt-get install runc"}};
  std::string table = preflight::FormatTable(results);
  EXPECT_NE(table.find("CHECK   STATUS   DETAIL"), std::string::npos) << table;
  EXPECT_NE(table.find("runc    MISSING  runc not found in PATH"), std::string::npos) << table;
  EXPECT_NE(table.find("  - runc: apt-get install runc"), std::string::npos) << table;
  EXPECT_NE(table.find("1 required check(s) failed."), std::string::npos) << table;
  EXPECT_FALSE(preflight::AllRequiredPresent(results));
  std::string json = preflight::FormatJson(results);
  EXPECT_NE(json.find("\"ok\": false"), std::string::npos) << json;
  EXPECT_NE(json.find("\"status\": \"MISSING\""), std::string::npos) << json;
}

}  // namespace
}  // namespace kelpie
