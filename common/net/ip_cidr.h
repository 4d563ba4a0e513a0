// IPv4 CIDR ranges (service and pod networks).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace kelpie::net {

class Ipv4Cidr {
 public:
  // Parses "10.43.0.0/16"; host bits must be zero.
  static absl::StatusOr<Ipv4Cidr> Parse(const std::string& text);

  uint32_t network() const { return network_; }  // host byte order
  int prefix_length() const { return prefix_; }
  uint64_t size() const { return uint64_t{1} << (32 - prefix_); }
  bool Contains(uint32_t address) const;
  // The address `offset` into the range (offset 1 is the first usable one).
  absl::StatusOr<std::string> AddressAt(uint64_t offset) const;
  std::string ToString() const;

 private:
  uint32_t network_ = 0;
  int prefix_ = 32;
};

std::string Ipv4ToString(uint32_t address);
absl::StatusOr<uint32_t> ParseIpv4(const std::string& text);

}  // namespace kelpie::net
