// Names of the kernel's packet drop reasons (`enum skb_drop_reason`), read
// from the running kernel's BTF: the numbering changes between kernels, so
// it is never compiled in.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace kelpie::dataplane {

class DropReasonNames {
 public:
  // Reads the enum from /sys/kernel/btf/vmlinux (or `btf_path`).
  static absl::StatusOr<DropReasonNames> FromKernelBtf(const std::string& btf_path = "/sys/kernel/btf/vmlinux");
  explicit DropReasonNames(std::map<uint32_t, std::string> names) : names_(std::move(names)) {}

  // "NO_SOCKET" for SKB_DROP_REASON_NO_SOCKET; "reason_<n>" when unknown.
  std::string Name(uint32_t reason) const;
  size_t size() const { return names_.size(); }

 private:
  std::map<uint32_t, std::string> names_;
};

}  // namespace kelpie::dataplane
