// The probe object through the dataplane wrapper for real: `const volatile`
// configuration set before load, one chosen program loaded and attached, its
// events read back through RingBufferSource, skip reasons counted per CPU.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/subprocess.h"
#include "dataplane/bpf_skeleton.h"
#include "dataplane/ring_buffer_source.h"
#include "kelpie/probe_abi.h"
#include "probe.skel.h"
#include "tests/testing/test_env.h"

namespace kelpie::dataplane {
namespace {

using namespace std::chrono_literals;

uint64_t SumPerCpu(int map_fd, __u32 reason) {
  int cpus = libbpf_num_possible_cpus();
  std::vector<__u64> values(static_cast<size_t>(cpus > 0 ? cpus : 1));
  if (bpf_map_lookup_elem(map_fd, &reason, values.data()) != 0) return 0;
  uint64_t sum = 0;
  for (__u64 v : values) sum += v;
  return sum;
}

TEST(ProbePipelineTest, RingBufferEventCarriesConfiguredCookie) {
  KELPIE_REQUIRE_PRIVILEGES();
  auto skel = BpfSkeleton<struct probe>::Open(KELPIE_SKELETON_OPS(probe));
  ASSERT_TRUE(skel.ok()) << skel.status();
  const uint64_t cookie = 0x6b656c7069650001ULL;
  (*skel)->rodata->probe_tgid = static_cast<__u32>(getpid());
  (*skel)->rodata->probe_cookie = cookie;
  (*skel)->rodata->probe_syscall_nr = SYS_getppid;
  skel->LoadOnly((*skel)->progs.probe_ringbuf);
  ASSERT_TRUE(skel->Load().ok());
  // Only the chosen program went through the verifier.
  EXPECT_GE(bpf_program__fd((*skel)->progs.probe_ringbuf), 0);
  EXPECT_LT(bpf_program__fd((*skel)->progs.probe_connect4), 0);
  ASSERT_TRUE(skel->Attach((*skel)->progs.probe_ringbuf).ok());

  std::vector<kelpie_probe_event> events;
  auto source = RingBufferSource::Create(bpf_map__fd((*skel)->maps.probe_events), [&](std::string_view rec) {
    EXPECT_EQ(rec.size(), sizeof(kelpie_probe_event));
    if (rec.size() != sizeof(kelpie_probe_event)) return false;
    kelpie_probe_event e;
    std::memcpy(&e, rec.data(), sizeof(e));
    events.push_back(e);
    return true;
  });
  ASSERT_TRUE(source.ok()) << source.status();
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (events.empty() && std::chrono::steady_clock::now() < deadline) {
    syscall(SYS_getppid);
    auto polled = (*source)->Poll(100ms);
    ASSERT_TRUE(polled.ok()) << polled.status();
  }
  ASSERT_FALSE(events.empty()) << "no event from the ring buffer";
  // Another process's syscalls, for the other-process skip reason.
  auto child = RunSubprocess({"true"});
  ASSERT_TRUE(child.ok() && child->Succeeded());
  const kelpie_probe_event& e = events.front();
  EXPECT_EQ(e.cookie, cookie);
  EXPECT_EQ(e.tgid, static_cast<__u32>(getpid()));
  EXPECT_EQ(e.syscall_nr, SYS_getppid);
  EXPECT_GT(e.timestamp_ns, 0u);
  auto comm = ReadFileToString("/proc/self/comm");
  ASSERT_TRUE(comm.ok());
  std::string expected = comm->substr(0, comm->find('\n')).substr(0, KELPIE_PROBE_COMM_LEN - 1);
  EXPECT_EQ(std::string(e.comm, strnlen(e.comm, sizeof(e.comm))), expected);

  // Every other syscall of this process and every syscall of other processes
  // was skipped, each under its own reason.
  int skips = bpf_map__fd((*skel)->maps.probe_skips);
  EXPECT_GT(SumPerCpu(skips, KELPIE_PROBE_SKIP_OTHER_SYSCALL), 0u);
  EXPECT_GT(SumPerCpu(skips, KELPIE_PROBE_SKIP_OTHER_PROCESS), 0u);
  EXPECT_EQ(SumPerCpu(skips, KELPIE_PROBE_SKIP_RINGBUF_FULL), 0u);
}

TEST(ProbePipelineTest, AttachBeforeLoadIsAnError) {
  KELPIE_REQUIRE_PRIVILEGES();
  auto skel = BpfSkeleton<struct probe>::Open(KELPIE_SKELETON_OPS(probe));
  ASSERT_TRUE(skel.ok()) << skel.status();
  absl::Status s = skel->Attach((*skel)->progs.probe_ringbuf);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("probe_ringbuf"), std::string::npos) << s;
}

}  // namespace
}  // namespace kelpie::dataplane
