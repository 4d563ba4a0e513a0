// Helpers shared by Kelpie's tests: privilege gating, temp dirs, free ports.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace kelpie::testing {

// True when the process may load eBPF programs, create network namespaces
// and cgroups (effective uid 0).
bool IsPrivileged();

// True when KELPIE_REQUIRE_PRIVILEGED=1: privileged tests must then fail
// instead of skipping (CI sets it).
bool PrivilegedRequired();

// A directory under $TMPDIR removed (recursively) by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A loopback TCP port that was free when asked for.
int FreeTcpPort();

// Absolute path of the built kelpie binary.
std::string KelpieBinary();

}  // namespace kelpie::testing

// Skips the current test when unprivileged, or fails it when
// KELPIE_REQUIRE_PRIVILEGED=1. Use at the top of a TEST body or SetUp().
#define KELPIE_REQUIRE_PRIVILEGES()                                                   \
  do {                                                                                \
    if (!::kelpie::testing::IsPrivileged()) {                                         \
      if (::kelpie::testing::PrivilegedRequired()) {                                  \
        FAIL() << "this test needs root (eBPF, namespaces, cgroups) and "             \
                  "KELPIE_REQUIRE_PRIVILEGED=1 forbids skipping it";                  \
      }                                                                               \
      GTEST_SKIP() << "needs root (eBPF, namespaces, cgroups); run as root or set "   \
                      "KELPIE_REQUIRE_PRIVILEGED=1 to make this a failure";           \
    }                                                                                 \
  } while (0)
