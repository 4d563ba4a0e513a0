// `kelpie check`: what this node needs to run Kelpie, each item proven by
// doing it (loading every BPF program type, a ring-buffer round trip, a
// test mount) rather than by reading configuration.
#pragma once

#include <string>
#include <vector>

namespace kelpie::preflight {

enum class CheckStatus { kOk, kMissing };

struct CheckResult {
  std::string name;
  CheckStatus status = CheckStatus::kOk;
  std::string detail;
  std::string remedy;  // what to do when not OK
};

struct PreflightOptions {
  std::string bpffs_path = "/sys/fs/bpf";
  std::vector<std::string> cni_bin_dirs = {"/usr/lib/cni", "/opt/cni/bin"};
};

std::vector<CheckResult> RunPreflight(const PreflightOptions& options);

// True when no result is kMissing.
bool AllRequiredPresent(const std::vector<CheckResult>& results);

// CHECK | STATUS | DETAIL table, then one "what to do" line per problem.
std::string FormatTable(const std::vector<CheckResult>& results);
std::string FormatJson(const std::vector<CheckResult>& results);

// Bits of the effective capability set from /proc/self/status ("CapEff:").
bool HasCapability(const std::string& proc_status, int capability);

const char* StatusName(CheckStatus status);

}  // namespace kelpie::preflight
