#include "common/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

namespace kelpie {
namespace {

using namespace std::chrono_literals;

TEST(SubprocessTest, CapturesOutputAndExitCode) {
  auto r = RunSubprocess({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->stdout_text, "out\n");
  EXPECT_EQ(r->stderr_text, "err\n");
  EXPECT_FALSE(r->Succeeded());
}

TEST(SubprocessTest, PassesStdinAndEnvironment) {
  SubprocessOptions opts;
  opts.stdin_text = "from-stdin";
  opts.env["KELPIE_TEST_VAR"] = "v1";
  auto r = RunSubprocess({"sh", "-c", "cat; echo -n \" $KELPIE_TEST_VAR\""}, opts);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_text, "from-stdin v1");
}

TEST(SubprocessTest, TimeoutKillsChild) {
  SubprocessOptions opts;
  opts.timeout = 200ms;
  auto r = RunSubprocess({"sleep", "10"}, opts);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->term_signal, SIGKILL);
}

TEST(SubprocessTest, MissingProgramIsNotFound) {
  auto r = RunSubprocess({"kelpie-no-such-program"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
}

TEST(ChildProcessTest, DestructorKillsRunningChild) {
  pid_t pid;
  {
    auto child = ChildProcess::Start({"sleep", "30"}, {});
    ASSERT_TRUE(child.ok());
    pid = child->pid();
    EXPECT_TRUE(child->running());
  }
  // Reaped by the destructor: the pid no longer names our child.
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
}

TEST(ChildProcessTest, WaitReturnsExitStatus) {
  auto child = ChildProcess::Start({"sh", "-c", "exit 7"}, {});
  ASSERT_TRUE(child.ok());
  auto status = child->Wait(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 7);
}

}  // namespace
}  // namespace kelpie
