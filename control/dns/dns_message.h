// DNS wire format (RFC 1035, RFC 2782 SRV, RFC 6891 EDNS0): parsing and
// encoding of messages. The parser is written for hostile input: every read
// is bounds-checked, compression pointers must point backwards (which rules
// out loops) and are limited in number, names are limited to 255 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie::dns {

namespace rr {  // record types this server knows about
constexpr uint16_t kA = 1;
constexpr uint16_t kNs = 2;
constexpr uint16_t kCname = 5;
constexpr uint16_t kSoa = 6;
constexpr uint16_t kPtr = 12;
constexpr uint16_t kMx = 15;
constexpr uint16_t kTxt = 16;
constexpr uint16_t kAaaa = 28;
constexpr uint16_t kSrv = 33;
constexpr uint16_t kOpt = 41;
constexpr uint16_t kAny = 255;
}  // namespace rr

constexpr uint16_t kClassIn = 1;
constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxNameLength = 255;  // wire length, incl. the root label
// Plain DNS over UDP without EDNS0 (RFC 1035 4.2.1).
constexpr size_t kClassicUdpSize = 512;
// What this server advertises and never exceeds over UDP (DNS flag day 2020).
constexpr uint16_t kAdvertisedUdpSize = 1232;

enum class Rcode : uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};

struct Header {
  uint16_t id = 0;
  bool qr = false;  // response
  uint8_t opcode = 0;
  bool aa = false;
  bool tc = false;
  bool rd = false;
  bool ra = false;
  bool ad = false;
  bool cd = false;
  uint8_t rcode = 0;  // low 4 bits (extended rcodes via OPT are not used)
};

struct Question {
  std::string name;  // presentation form without trailing dot, "" is the root
  uint16_t type = rr::kA;
  uint16_t klass = kClassIn;
};

// A resource record. For types whose rdata holds names (NS, CNAME, PTR, MX,
// SOA, SRV) the parser expands compression pointers, so rdata is always
// self-contained and can be re-encoded anywhere.
struct ResourceRecord {
  std::string name;
  uint16_t type = rr::kA;
  uint16_t klass = kClassIn;  // for OPT: the sender's UDP payload size
  uint32_t ttl = 0;           // for OPT: extended rcode, version, flags
  std::vector<uint8_t> rdata;
};

struct Message {
  Header header;
  std::vector<Question> questions;
  std::vector<ResourceRecord> answers;
  std::vector<ResourceRecord> authorities;
  std::vector<ResourceRecord> additionals;

  // The EDNS0 OPT record in the additional section, if any.
  const ResourceRecord* Opt() const;
};

// Header alone (first 12 bytes); fails on short input.
absl::StatusOr<Header> ParseHeader(const uint8_t* data, size_t size);

// A whole message. Errors say what is malformed and where.
absl::StatusOr<Message> ParseMessage(const uint8_t* data, size_t size);
inline absl::StatusOr<Message> ParseMessage(const std::vector<uint8_t>& bytes) {
  return ParseMessage(bytes.data(), bytes.size());
}

// Reads a (possibly compressed) name at *offset and advances *offset past
// it in the original stream. Exposed for tests.
absl::StatusOr<std::string> ReadName(const uint8_t* data, size_t size, size_t* offset);

// Encodes a message; owner names are compressed against earlier names.
// Fails on names that cannot be encoded (label > 63 bytes, name > 255 bytes).
absl::StatusOr<std::vector<uint8_t>> EncodeMessage(const Message& message);

// Uncompressed wire form of a name ("a.b" -> 1a1b0).
absl::StatusOr<std::vector<uint8_t>> EncodeName(const std::string& name);

// Lower-cases ASCII letters (DNS names compare case-insensitively).
std::string LowerName(std::string name);

// Rdata builders and readers for the record types the cluster zone serves.
std::vector<uint8_t> RdataA(const std::string& ipv4);       // empty if invalid
std::vector<uint8_t> RdataAaaa(const std::string& ipv6);    // empty if invalid
absl::StatusOr<std::vector<uint8_t>> RdataName(const std::string& name);  // NS/CNAME/PTR
absl::StatusOr<std::vector<uint8_t>> RdataSrv(uint16_t priority, uint16_t weight, uint16_t port,
                                              const std::string& target);
absl::StatusOr<std::vector<uint8_t>> RdataSoa(const std::string& mname, const std::string& rname,
                                              uint32_t serial, uint32_t refresh, uint32_t retry,
                                              uint32_t expire, uint32_t minimum);

struct SrvData {
  uint16_t priority = 0;
  uint16_t weight = 0;
  uint16_t port = 0;
  std::string target;
};
// Readers of self-contained rdata (as produced by ParseMessage).
std::optional<std::string> AddressFromRdata(const ResourceRecord& record);  // A / AAAA
std::optional<std::string> NameFromRdata(const ResourceRecord& record);     // NS/CNAME/PTR
std::optional<SrvData> SrvFromRdata(const ResourceRecord& record);

// The question section's wire length starting at offset 12, or an error:
// used to cut a forwarded answer down to header + question on truncation.
absl::StatusOr<size_t> QuestionSectionEnd(const uint8_t* data, size_t size);

// The client's UDP payload limit: its EDNS0 size (at least 512) capped at
// what this server advertises, or 512 without EDNS0.
size_t ClientUdpLimit(const Message& query);

}  // namespace kelpie::dns
