#include "common/net/ip_cidr.h"

#include <arpa/inet.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kelpie::net {

absl::StatusOr<uint32_t> ParseIpv4(const std::string& text) {
  in_addr addr;
  if (inet_pton(AF_INET, text.c_str(), &addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not an IPv4 address"));
  }
  return ntohl(addr.s_addr);
}

std::string Ipv4ToString(uint32_t address) {
  in_addr addr;
  addr.s_addr = htonl(address);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr, buf, sizeof(buf));
  return buf;
}

absl::StatusOr<Ipv4Cidr> Ipv4Cidr::Parse(const std::string& text) {
  size_t slash = text.find('/');
  int prefix;
  if (slash == std::string::npos || !absl::SimpleAtoi(text.substr(slash + 1), &prefix) ||
      prefix < 0 || prefix > 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a CIDR (expected e.g. 10.43.0.0/16)"));
  }
  auto addr = ParseIpv4(text.substr(0, slash));
  if (!addr.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a CIDR (expected e.g. 10.43.0.0/16)"));
  }
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  if ((*addr & ~mask) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" has host bits set; did you mean ", Ipv4ToString(*addr & mask), "/", prefix,
        "?"));
  }
  Ipv4Cidr c;
  c.network_ = *addr;
  c.prefix_ = prefix;
  return c;
}

bool Ipv4Cidr::Contains(uint32_t address) const {
  uint32_t mask = prefix_ == 0 ? 0 : ~uint32_t{0} << (32 - prefix_);
  return (address & mask) == network_;
}

absl::StatusOr<std::string> Ipv4Cidr::AddressAt(uint64_t offset) const {
  if (offset >= size()) {
    return absl::OutOfRangeError(absl::StrCat("offset ", offset, " outside ", ToString()));
  }
  return Ipv4ToString(network_ + static_cast<uint32_t>(offset));
}

std::string Ipv4Cidr::ToString() const { return absl::StrCat(Ipv4ToString(network_), "/", prefix_); }

}  // namespace kelpie::net
