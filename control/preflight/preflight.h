// `kelpie check`: what this node needs to run Kelpie, each item proven by
// doing it (loading every BPF program type, a ring-buffer round trip, a
// test mount) rather than by reading configuration.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kelpie::preflight {

// kWarn: usable, but something the user should know; does not fail the check.
enum class CheckStatus { kOk, kWarn, kMissing };

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

// "runc version 1.1.5+ds1" -> {1, 1}; nullopt when the text has no version.
std::optional<std::pair<int, int>> ParseRuncVersion(const std::string& version_output);

}  // namespace kelpie::preflight
