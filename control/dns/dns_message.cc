#include "control/dns/dns_message.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kelpie::dns {
namespace {

// Upper bound on pointer jumps while reading one name. Backward-only
// pointers already exclude loops; this bounds the work per name too.
constexpr int kMaxPointerJumps = 64;

uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t Get32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
void Put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void Put32(std::vector<uint8_t>& out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v));
}

// Splits a presentation name into raw labels; "\." and "\\" escape a dot
// or backslash inside a label.
absl::StatusOr<std::vector<std::string>> SplitLabels(const std::string& name) {
  std::vector<std::string> labels;
  if (name.empty() || name == ".") return labels;
  std::string current;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '\\' && i + 1 < name.size()) {
      current.push_back(name[++i]);
    } else if (c == '.') {
      if (current.empty()) return absl::InvalidArgumentError(absl::StrCat("empty label in name '", name, "'"));
      labels.push_back(std::move(current));
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty()) labels.push_back(std::move(current));  // a trailing dot ends the name
  size_t wire = 1;
  for (const auto& l : labels) {
    if (l.size() > 63) return absl::InvalidArgumentError(absl::StrCat("label longer than 63 bytes in '", name, "'"));
    wire += l.size() + 1;
  }
  if (wire > kMaxNameLength) return absl::InvalidArgumentError(absl::StrCat("name longer than 255 bytes: '", name, "'"));
  return labels;
}

std::string JoinLabels(const std::vector<std::string>& labels, size_t from) {
  std::string out;
  for (size_t i = from; i < labels.size(); ++i) {
    if (i > from) out.push_back('.');
    for (char c : labels[i]) {
      if (c == '.' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
  }
  return out;
}

// Writes a name, compressing against suffixes already written (keys are
// lower-cased label suffixes, values their offsets).
absl::Status WriteName(const std::string& name, std::vector<uint8_t>& out,
                       std::map<std::string, uint16_t>* compression) {
  auto labels = SplitLabels(name);
  if (!labels.ok()) return labels.status();
  for (size_t i = 0; i < labels->size(); ++i) {
    if (compression != nullptr) {
      std::string suffix = LowerName(JoinLabels(*labels, i));
      auto it = compression->find(suffix);
      if (it != compression->end()) {
        Put16(out, static_cast<uint16_t>(0xC000 | it->second));
        return absl::OkStatus();
      }
      if (out.size() < 0x3FFF) compression->emplace(suffix, static_cast<uint16_t>(out.size()));
    }
    const std::string& l = (*labels)[i];
    out.push_back(static_cast<uint8_t>(l.size()));
    out.insert(out.end(), l.begin(), l.end());
  }
  out.push_back(0);
  return absl::OkStatus();
}

// Expands the names inside rdata of the types that carry them, so the
// record no longer depends on the packet it came from.
absl::StatusOr<std::vector<uint8_t>> ExpandRdata(uint16_t type, const uint8_t* data, size_t size,
                                                 size_t start, size_t length) {
  const size_t end = start + length;
  auto name_at = [&](size_t* off, std::vector<uint8_t>& out) -> absl::Status {
    auto n = ReadName(data, end, off);  // names must not run past the rdata
    if (!n.ok()) return n.status();
    auto wire = EncodeName(*n);
    if (!wire.ok()) return wire.status();
    out.insert(out.end(), wire->begin(), wire->end());
    return absl::OkStatus();
  };
  std::vector<uint8_t> out;
  size_t off = start;
  switch (type) {
    case rr::kNs:
    case rr::kCname:
    case rr::kPtr: {
      if (auto s = name_at(&off, out); !s.ok()) return s;
      break;
    }
    case rr::kMx: {
      if (length < 3) return absl::InvalidArgumentError("MX rdata too short");
      out.insert(out.end(), data + off, data + off + 2);
      off += 2;
      if (auto s = name_at(&off, out); !s.ok()) return s;
      break;
    }
    case rr::kSrv: {
      if (length < 7) return absl::InvalidArgumentError("SRV rdata too short");
      out.insert(out.end(), data + off, data + off + 6);
      off += 6;
      if (auto s = name_at(&off, out); !s.ok()) return s;
      break;
    }
    case rr::kSoa: {
      if (auto s = name_at(&off, out); !s.ok()) return s;
      if (auto s = name_at(&off, out); !s.ok()) return s;
      if (end - off != 20) return absl::InvalidArgumentError("SOA rdata has the wrong length");
      out.insert(out.end(), data + off, data + end);
      off = end;
      break;
    }
    default:
      (void)size;
      return std::vector<uint8_t>(data + start, data + end);
  }
  if (off != end) return absl::InvalidArgumentError("rdata has trailing bytes");
  return out;
}

}  // namespace

const ResourceRecord* Message::Opt() const {
  for (const auto& r : additionals) {
    if (r.type == rr::kOpt) return &r;
  }
  return nullptr;
}

std::string LowerName(std::string name) {
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return name;
}

absl::StatusOr<Header> ParseHeader(const uint8_t* data, size_t size) {
  if (size < kHeaderSize) return absl::InvalidArgumentError("message shorter than the 12-byte header");
  Header h;
  h.id = Get16(data);
  uint16_t flags = Get16(data + 2);
  h.qr = flags & 0x8000;
  h.opcode = (flags >> 11) & 0xF;
  h.aa = flags & 0x0400;
  h.tc = flags & 0x0200;
  h.rd = flags & 0x0100;
  h.ra = flags & 0x0080;
  h.ad = flags & 0x0020;
  h.cd = flags & 0x0010;
  h.rcode = flags & 0xF;
  return h;
}

absl::StatusOr<std::string> ReadName(const uint8_t* data, size_t size, size_t* offset) {
  std::vector<std::string> labels;
  size_t pos = *offset;
  size_t wire_length = 1;
  int jumps = 0;
  bool jumped = false;
  // Pointers must point before the start of the label sequence they occur
  // in, so every jump strictly decreases the position: no loop can form.
  size_t lowest_start = pos;
  while (true) {
    if (pos >= size) return absl::InvalidArgumentError(absl::StrCat("name runs past the end at offset ", pos));
    uint8_t len = data[pos];
    if ((len & 0xC0) == 0xC0) {
      if (pos + 1 >= size) return absl::InvalidArgumentError("truncated compression pointer");
      size_t target = ((len & 0x3F) << 8) | data[pos + 1];
      if (!jumped) *offset = pos + 2;
      if (target >= lowest_start) {
        return absl::InvalidArgumentError(absl::StrCat("compression pointer at ", pos, " does not point backwards"));
      }
      if (++jumps > kMaxPointerJumps) return absl::InvalidArgumentError("too many compression pointers");
      jumped = true;
      pos = target;
      lowest_start = target;
      continue;
    }
    if ((len & 0xC0) != 0) return absl::InvalidArgumentError(absl::StrCat("unsupported label type at offset ", pos));
    if (len == 0) {
      if (!jumped) *offset = pos + 1;
      break;
    }
    if (pos + 1 + len > size) return absl::InvalidArgumentError(absl::StrCat("label runs past the end at offset ", pos));
    wire_length += len + 1;
    if (wire_length > kMaxNameLength) return absl::InvalidArgumentError("name longer than 255 bytes");
    labels.emplace_back(reinterpret_cast<const char*>(data + pos + 1), len);
    pos += 1 + len;
  }
  return JoinLabels(labels, 0);
}

absl::StatusOr<size_t> QuestionSectionEnd(const uint8_t* data, size_t size) {
  if (size < kHeaderSize) return absl::InvalidArgumentError("message shorter than the header");
  uint16_t qdcount = Get16(data + 4);
  size_t off = kHeaderSize;
  for (uint16_t i = 0; i < qdcount; ++i) {
    auto name = ReadName(data, size, &off);
    if (!name.ok()) return name.status();
    if (off + 4 > size) return absl::InvalidArgumentError("question runs past the end");
    off += 4;
  }
  return off;
}

absl::StatusOr<Message> ParseMessage(const uint8_t* data, size_t size) {
  auto header = ParseHeader(data, size);
  if (!header.ok()) return header.status();
  Message m;
  m.header = *header;
  const uint16_t qdcount = Get16(data + 4);
  const uint16_t counts[3] = {Get16(data + 6), Get16(data + 8), Get16(data + 10)};
  size_t off = kHeaderSize;
  for (uint16_t i = 0; i < qdcount; ++i) {
    Question q;
    auto name = ReadName(data, size, &off);
    if (!name.ok()) return absl::InvalidArgumentError(absl::StrCat("question ", i, ": ", name.status().message()));
    if (off + 4 > size) return absl::InvalidArgumentError(absl::StrCat("question ", i, " runs past the end"));
    q.name = std::move(*name);
    q.type = Get16(data + off);
    q.klass = Get16(data + off + 2);
    off += 4;
    m.questions.push_back(std::move(q));
  }
  std::vector<ResourceRecord>* sections[3] = {&m.answers, &m.authorities, &m.additionals};
  for (int s = 0; s < 3; ++s) {
    for (uint16_t i = 0; i < counts[s]; ++i) {
      ResourceRecord r;
      auto name = ReadName(data, size, &off);
      if (!name.ok()) return absl::InvalidArgumentError(absl::StrCat("record ", i, ": ", name.status().message()));
      if (off + 10 > size) return absl::InvalidArgumentError(absl::StrCat("record ", i, " header runs past the end"));
      r.name = std::move(*name);
      r.type = Get16(data + off);
      r.klass = Get16(data + off + 2);
      r.ttl = Get32(data + off + 4);
      uint16_t rdlength = Get16(data + off + 8);
      off += 10;
      if (off + rdlength > size) return absl::InvalidArgumentError(absl::StrCat("record ", i, " rdata runs past the end"));
      auto rdata = ExpandRdata(r.type, data, size, off, rdlength);
      if (!rdata.ok()) return absl::InvalidArgumentError(absl::StrCat("record ", i, ": ", rdata.status().message()));
      r.rdata = std::move(*rdata);
      off += rdlength;
      sections[s]->push_back(std::move(r));
    }
  }
  if (off != size) return absl::InvalidArgumentError(absl::StrCat(size - off, " trailing bytes after the last record"));
  return m;
}

absl::StatusOr<std::vector<uint8_t>> EncodeName(const std::string& name) {
  std::vector<uint8_t> out;
  if (auto s = WriteName(name, out, nullptr); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<uint8_t>> EncodeMessage(const Message& m) {
  std::vector<uint8_t> out;
  out.reserve(512);
  const Header& h = m.header;
  Put16(out, h.id);
  uint16_t flags = (h.qr ? 0x8000 : 0) | ((h.opcode & 0xF) << 11) | (h.aa ? 0x0400 : 0) | (h.tc ? 0x0200 : 0) |
                   (h.rd ? 0x0100 : 0) | (h.ra ? 0x0080 : 0) | (h.ad ? 0x0020 : 0) | (h.cd ? 0x0010 : 0) |
                   (h.rcode & 0xF);
  Put16(out, flags);
  for (size_t n : {m.questions.size(), m.answers.size(), m.authorities.size(), m.additionals.size()}) {
    if (n > 0xFFFF) return absl::InvalidArgumentError("too many records for one message");
    Put16(out, static_cast<uint16_t>(n));
  }
  std::map<std::string, uint16_t> compression;
  for (const auto& q : m.questions) {
    if (auto s = WriteName(q.name, out, &compression); !s.ok()) return s;
    Put16(out, q.type);
    Put16(out, q.klass);
  }
  for (const auto* section : {&m.answers, &m.authorities, &m.additionals}) {
    for (const auto& r : *section) {
      if (auto s = WriteName(r.name, out, &compression); !s.ok()) return s;
      if (r.rdata.size() > 0xFFFF) return absl::InvalidArgumentError("rdata longer than 65535 bytes");
      Put16(out, r.type);
      Put16(out, r.klass);
      Put32(out, r.ttl);
      Put16(out, static_cast<uint16_t>(r.rdata.size()));
      out.insert(out.end(), r.rdata.begin(), r.rdata.end());
    }
  }
  return out;
}

std::vector<uint8_t> RdataA(const std::string& ipv4) {
  in_addr a{};
  if (inet_pton(AF_INET, ipv4.c_str(), &a) != 1) return {};
  const auto* p = reinterpret_cast<const uint8_t*>(&a);
  return std::vector<uint8_t>(p, p + 4);
}

std::vector<uint8_t> RdataAaaa(const std::string& ipv6) {
  in6_addr a{};
  if (inet_pton(AF_INET6, ipv6.c_str(), &a) != 1) return {};
  const auto* p = reinterpret_cast<const uint8_t*>(&a);
  return std::vector<uint8_t>(p, p + 16);
}

absl::StatusOr<std::vector<uint8_t>> RdataName(const std::string& name) { return EncodeName(name); }

absl::StatusOr<std::vector<uint8_t>> RdataSrv(uint16_t priority, uint16_t weight, uint16_t port,
                                              const std::string& target) {
  std::vector<uint8_t> out;
  Put16(out, priority);
  Put16(out, weight);
  Put16(out, port);
  if (auto s = WriteName(target, out, nullptr); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<uint8_t>> RdataSoa(const std::string& mname, const std::string& rname, uint32_t serial,
                                              uint32_t refresh, uint32_t retry, uint32_t expire, uint32_t minimum) {
  std::vector<uint8_t> out;
  if (auto s = WriteName(mname, out, nullptr); !s.ok()) return s;
  if (auto s = WriteName(rname, out, nullptr); !s.ok()) return s;
  for (uint32_t v : {serial, refresh, retry, expire, minimum}) Put32(out, v);
  return out;
}

std::optional<std::string> AddressFromRdata(const ResourceRecord& r) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (r.type == rr::kA && r.rdata.size() == 4) {
    if (inet_ntop(AF_INET, r.rdata.data(), buf, sizeof(buf)) != nullptr) return std::string(buf);
  }
  if (r.type == rr::kAaaa && r.rdata.size() == 16) {
    if (inet_ntop(AF_INET6, r.rdata.data(), buf, sizeof(buf)) != nullptr) return std::string(buf);
  }
  return std::nullopt;
}

std::optional<std::string> NameFromRdata(const ResourceRecord& r) {
  size_t off = 0;
  auto n = ReadName(r.rdata.data(), r.rdata.size(), &off);
  if (!n.ok() || off != r.rdata.size()) return std::nullopt;
  return *n;
}

std::optional<SrvData> SrvFromRdata(const ResourceRecord& r) {
  if (r.type != rr::kSrv || r.rdata.size() < 7) return std::nullopt;
  SrvData s;
  s.priority = Get16(r.rdata.data());
  s.weight = Get16(r.rdata.data() + 2);
  s.port = Get16(r.rdata.data() + 4);
  size_t off = 6;
  auto n = ReadName(r.rdata.data(), r.rdata.size(), &off);
  if (!n.ok() || off != r.rdata.size()) return std::nullopt;
  s.target = *n;
  return s;
}

size_t ClientUdpLimit(const Message& query) {
  const ResourceRecord* opt = query.Opt();
  if (opt == nullptr) return kClassicUdpSize;
  size_t advertised = std::max<size_t>(opt->klass, kClassicUdpSize);
  return std::min<size_t>(advertised, kAdvertisedUdpSize);
}

}  // namespace kelpie::dns
