// `kelpie check` run for real: as root everything is OK; unprivileged, with
// an impossible bpffs path or without CNI plugins it names what is missing.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "common/files.h"
#include "common/subprocess.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

using namespace std::chrono_literals;

SubprocessResult RunCheck(std::vector<std::string> args, const std::string& binary = testing::KelpieBinary()) {
  std::vector<std::string> argv = {binary, "check"};
  argv.insert(argv.end(), args.begin(), args.end());
  SubprocessOptions o;
  o.timeout = 60s;
  auto r = RunSubprocess(argv, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.value_or(SubprocessResult{});
}

TEST(KelpieCheckTest, EverythingOkAsRoot) {
  KELPIE_REQUIRE_PRIVILEGES();
  auto r = RunCheck({});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_EQ(r.stdout_text.find("MISSING"), std::string::npos) << r.stdout_text;
  EXPECT_EQ(r.stdout_text.find("WARN"), std::string::npos) << r.stdout_text;
  for (const char* row : {"kernel BTF", "privileges", "bpffs", "tracefs", "cgroup v2", "BPF cgroup sock_addr",
                          "BPF cgroup skb", "BPF sched_cls (tc)", "BPF tracepoint", "BPF ring buffer", "runc",
                          "CNI plugins", "iproute2"}) {
    EXPECT_NE(r.stdout_text.find(row), std::string::npos) << row;
  }
  EXPECT_NE(r.stdout_text.find("All required checks passed."), std::string::npos);
  auto json = RunCheck({"-o", "json"});
  EXPECT_EQ(json.exit_code, 0);
  EXPECT_NE(json.stdout_text.find("\"ok\": true"), std::string::npos) << json.stdout_text;
}

TEST(KelpieCheckTest, UnprivilegedUserIsToldWhatIsMissing) {
  KELPIE_REQUIRE_PRIVILEGES();  // needs root to switch to another user
  testing::TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  std::string copy = dir.File("kelpie");
  std::filesystem::copy_file(testing::KelpieBinary(), copy);
  ASSERT_EQ(::chmod(copy.c_str(), 0755), 0);
  auto r = RunSubprocess({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", copy, "check"},
                         {.timeout = 60s});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->exit_code, 0) << r->stdout_text;
  EXPECT_NE(r->stdout_text.find("privileges"), std::string::npos);
  EXPECT_NE(r->stdout_text.find("lacks CAP_BPF"), std::string::npos) << r->stdout_text;
  EXPECT_NE(r->stdout_text.find("run kelpie as root"), std::string::npos) << r->stdout_text;
}

TEST(KelpieCheckTest, ImpossibleBpffsPathIsMissing) {
  KELPIE_REQUIRE_PRIVILEGES();
  testing::TempDir dir;
  std::string file = dir.File("not-a-folder");
  ASSERT_TRUE(WriteFileAtomically(file, "x", 0644).ok());
  auto r = RunCheck({"--bpffs-path", file});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stdout_text.find("bpffs"), std::string::npos);
  EXPECT_NE(r.stdout_text.find("is not a directory"), std::string::npos) << r.stdout_text;
}

TEST(KelpieCheckTest, MissingCniPluginsAreNamed) {
  KELPIE_REQUIRE_PRIVILEGES();
  testing::TempDir dir;
  auto r = RunCheck({"--cni-bin-dir", dir.path()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.stdout_text.find("missing bridge, host-local, loopback, portmap"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("apt-get install containernetworking-plugins"), std::string::npos);
}

}  // namespace
}  // namespace kelpie
