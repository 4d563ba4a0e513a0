#include "orchestrator/runtime/image/tar_reader.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace kelpie::image {
namespace {

constexpr size_t kBlock = 512;
// Long names and PAX records are held in memory; real ones are tiny.
constexpr uint64_t kMaxMetadataSize = 1 << 20;

std::string Field(const char* block, size_t offset, size_t length) {
  const char* start = block + offset;
  size_t n = 0;
  while (n < length && start[n] != '\0') ++n;
  return std::string(start, n);
}

// Octal (space/NUL padded) or GNU base-256 (high bit of the first byte set).
bool ParseNumber(const char* block, size_t offset, size_t length, uint64_t* out) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(block + offset);
  if (p[0] & 0x80) {
    if (p[0] & 0x40) return false;  // negative base-256: never valid here
    uint64_t value = p[0] & 0x3f;
    for (size_t i = 1; i < length; ++i) {
      if (value >> 56) return false;
      value = (value << 8) | p[i];
    }
    *out = value;
    return true;
  }
  size_t i = 0;
  while (i < length && (p[i] == ' ' || p[i] == '\0')) ++i;
  uint64_t value = 0;
  bool any = false;
  for (; i < length && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (value >> 61) return false;
    value = value * 8 + (p[i] - '0');
    any = true;
  }
  for (; i < length; ++i) {
    if (p[i] != ' ' && p[i] != '\0') return false;
  }
  *out = any ? value : 0;
  return true;
}

bool IsZeroBlock(const char* block) {
  return std::all_of(block, block + kBlock, [](char c) { return c == 0; });
}

bool ChecksumMatches(const char* block) {
  uint64_t stored = 0;
  if (!ParseNumber(block, 148, 8, &stored)) return false;
  uint64_t unsigned_sum = 0;
  int64_t signed_sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    bool in_field = i >= 148 && i < 156;
    unsigned char u = in_field ? ' ' : static_cast<unsigned char>(block[i]);
    signed char s = in_field ? ' ' : static_cast<signed char>(block[i]);
    unsigned_sum += u;
    signed_sum += s;
  }
  return stored == unsigned_sum || static_cast<int64_t>(stored) == signed_sum;
}

// "123.456789" (PAX mtime) into seconds and nanoseconds.
bool ParsePaxTime(absl::string_view text, int64_t* seconds, int64_t* nanoseconds) {
  auto dot = text.find('.');
  if (!absl::SimpleAtoi(text.substr(0, dot), seconds)) return false;
  *nanoseconds = 0;
  if (dot != absl::string_view::npos) {
    absl::string_view frac = text.substr(dot + 1);
    int64_t scale = 100000000;
    for (char c : frac) {
      if (c < '0' || c > '9') return false;
      if (scale > 0) *nanoseconds += (c - '0') * scale;
      scale /= 10;
    }
  }
  return true;
}

}  // namespace

absl::Status TarReader::ReadBlock(char* block, const char* what) {
  absl::Status s = ReadFully(source_, block, kBlock,
                             absl::StrCat("tar archive ", name_, " (", what, " at byte ", position_, ")"));
  if (s.ok()) position_ += kBlock;
  return s;
}

absl::Status TarReader::SkipRemaining() {
  char buffer[65536];
  uint64_t left = remaining_ + padding_;
  while (left > 0) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(left, sizeof(buffer)));
    absl::Status s = ReadFully(source_, buffer, chunk,
                               absl::StrCat("tar archive ", name_, " (entry data at byte ", position_, ")"));
    if (!s.ok()) return s;
    position_ += chunk;
    left -= chunk;
  }
  remaining_ = 0;
  padding_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<std::string> TarReader::ReadSpecialData(uint64_t size, const char* what) {
  if (size > kMaxMetadataSize) {
    return absl::InvalidArgumentError(absl::StrCat("tar archive ", name_, ": ", what, " at byte ",
                                                   position_, " is ", size, " bytes, over the ",
                                                   kMaxMetadataSize, "-byte limit"));
  }
  std::string data(size, '\0');
  absl::Status s = ReadFully(source_, data.data(), size,
                             absl::StrCat("tar archive ", name_, " (", what, " at byte ", position_, ")"));
  if (!s.ok()) return s;
  position_ += size;
  remaining_ = 0;
  padding_ = (kBlock - size % kBlock) % kBlock;
  s = SkipRemaining();
  if (!s.ok()) return s;
  return data;
}

absl::Status TarReader::ParsePax(const std::string& data, std::map<std::string, std::string>* into) {
  size_t pos = 0;
  while (pos < data.size()) {
    size_t space = data.find(' ', pos);
    uint64_t length = 0;
    if (space == std::string::npos ||
        !absl::SimpleAtoi(absl::string_view(data).substr(pos, space - pos), &length) ||
        length <= space - pos + 1 || pos + length > data.size() || data[pos + length - 1] != '\n') {
      return absl::InvalidArgumentError(absl::StrCat("tar archive ", name_,
                                                     ": malformed PAX record before byte ", position_));
    }
    absl::string_view record(data.data() + space + 1, pos + length - 1 - (space + 1));
    auto eq = record.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("tar archive ", name_,
                                                     ": PAX record without '=' before byte ", position_));
    }
    (*into)[std::string(record.substr(0, eq))] = std::string(record.substr(eq + 1));
    pos += length;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<TarEntry>> TarReader::Next() {
  if (finished_) return std::optional<TarEntry>();
  if (absl::Status s = SkipRemaining(); !s.ok()) return s;

  std::optional<std::string> long_name, long_link;
  std::map<std::string, std::string> pax = global_pax_;
  bool have_pax = false;
  char block[kBlock];
  while (true) {
    uint64_t header_offset = position_;
    // A clean end of stream on a block boundary is accepted as the end, as
    // GNU tar does; a partial block is truncation.
    char first;
    absl::StatusOr<size_t> n = source_.Read(&first, 1);
    if (!n.ok()) return n.status();
    if (*n == 0) {
      if (long_name || long_link || have_pax) {
        return absl::DataLossError(absl::StrCat("tar archive ", name_,
                                                " is truncated: extended header without its entry"));
      }
      finished_ = true;
      return std::optional<TarEntry>();
    }
    block[0] = first;
    absl::Status s = ReadFully(source_, block + 1, kBlock - 1,
                               absl::StrCat("tar archive ", name_, " (header at byte ", header_offset, ")"));
    if (!s.ok()) return s;
    position_ += kBlock;
    if (IsZeroBlock(block)) {
      finished_ = true;
      return std::optional<TarEntry>();
    }
    if (!ChecksumMatches(block)) {
      return absl::DataLossError(absl::StrCat("tar archive ", name_, ": bad header checksum at byte ",
                                              header_offset, " (not a tar file, or corrupt)"));
    }
    uint64_t size = 0;
    if (!ParseNumber(block, 124, 12, &size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tar archive ", name_, ": bad size field in header at byte ", header_offset));
    }
    char type = block[156];
    if (type == 'L' || type == 'K' || type == 'x' || type == 'g') {
      absl::StatusOr<std::string> data = ReadSpecialData(size, "extended header");
      if (!data.ok()) return data.status();
      if (type == 'L' || type == 'K') {
        std::string value = *data;
        while (!value.empty() && value.back() == '\0') value.pop_back();
        (type == 'L' ? long_name : long_link) = value;
      } else if (type == 'x') {
        if (absl::Status ps = ParsePax(*data, &pax); !ps.ok()) return ps;
        have_pax = true;
      } else {
        if (absl::Status ps = ParsePax(*data, &global_pax_); !ps.ok()) return ps;
        for (const auto& [k, v] : global_pax_) pax.emplace(k, v);
      }
      continue;
    }
    if (type == 'V') {  // volume label: no file
      remaining_ = size;
      padding_ = (kBlock - size % kBlock) % kBlock;
      if (absl::Status ss = SkipRemaining(); !ss.ok()) return ss;
      continue;
    }

    TarEntry entry;
    std::string magic = Field(block, 257, 6);
    std::string name = Field(block, 0, 100);
    if (magic == "ustar" && block[263] == '0') {  // POSIX ustar: prefix field is valid
      std::string prefix = Field(block, 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    entry.path = long_name ? *long_name : name;
    entry.link_target = long_link ? *long_link : Field(block, 157, 100);
    uint64_t mode = 0, uid = 0, gid = 0, mtime = 0, major = 0, minor = 0;
    if (!ParseNumber(block, 100, 8, &mode) || !ParseNumber(block, 108, 8, &uid) ||
        !ParseNumber(block, 116, 8, &gid) || !ParseNumber(block, 136, 12, &mtime) ||
        !ParseNumber(block, 329, 8, &major) || !ParseNumber(block, 337, 8, &minor)) {
      return absl::InvalidArgumentError(absl::StrCat("tar archive ", name_,
                                                     ": bad numeric field in header at byte ", header_offset));
    }
    entry.mode = static_cast<mode_t>(mode & 07777);
    entry.uid = static_cast<int64_t>(uid);
    entry.gid = static_cast<int64_t>(gid);
    entry.mtime_seconds = static_cast<int64_t>(mtime);
    entry.dev_major = static_cast<uint32_t>(major);
    entry.dev_minor = static_cast<uint32_t>(minor);
    entry.uname = Field(block, 265, 32);
    entry.gname = Field(block, 297, 32);
    switch (type) {
      case '0': case '\0': case '7':
        entry.type = absl::EndsWith(entry.path, "/") ? TarEntryType::kDirectory : TarEntryType::kRegular;
        break;
      case '1': entry.type = TarEntryType::kHardLink; break;
      case '2': entry.type = TarEntryType::kSymlink; break;
      case '3': entry.type = TarEntryType::kCharDevice; break;
      case '4': entry.type = TarEntryType::kBlockDevice; break;
      case '5': entry.type = TarEntryType::kDirectory; break;
      case '6': entry.type = TarEntryType::kFifo; break;
      default:
        return absl::UnimplementedError(absl::StrCat("tar archive ", name_, ": entry \"", entry.path,
                                                     "\" at byte ", header_offset,
                                                     " has unsupported type '", std::string(1, type), "'"));
    }
    for (const auto& [key, value] : pax) {
      bool ok = true;
      if (key == "path") {
        entry.path = value;
      } else if (key == "linkpath") {
        entry.link_target = value;
      } else if (key == "size") {
        ok = absl::SimpleAtoi(value, &size);
      } else if (key == "uid") {
        ok = absl::SimpleAtoi(value, &entry.uid);
      } else if (key == "gid") {
        ok = absl::SimpleAtoi(value, &entry.gid);
      } else if (key == "uname") {
        entry.uname = value;
      } else if (key == "gname") {
        entry.gname = value;
      } else if (key == "mtime") {
        ok = ParsePaxTime(value, &entry.mtime_seconds, &entry.mtime_nanoseconds);
      } else if (absl::StartsWith(key, "SCHILY.xattr.")) {
        entry.xattrs[key.substr(strlen("SCHILY.xattr."))] = value;
      }
      if (!ok) {
        return absl::InvalidArgumentError(absl::StrCat("tar archive ", name_, ": bad PAX ", key, "=\"",
                                                       value, "\" for entry at byte ", header_offset));
      }
    }
    if (entry.path.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tar archive ", name_, ": entry at byte ", header_offset, " has an empty name"));
    }
    // Only regular files carry data; hard links and others have size 0
    // except in some writers, whose bytes are skipped.
    entry.size = entry.type == TarEntryType::kRegular ? size : 0;
    entry.data_offset = position_;
    remaining_ = size;
    padding_ = (kBlock - size % kBlock) % kBlock;
    if (entry.type != TarEntryType::kRegular) {
      if (absl::Status ss = SkipRemaining(); !ss.ok()) return ss;
    }
    return std::optional<TarEntry>(std::move(entry));
  }
}

absl::StatusOr<size_t> TarReader::ReadData(char* buffer, size_t size) {
  size_t want = static_cast<size_t>(std::min<uint64_t>(size, remaining_));
  if (want == 0) return 0;
  absl::StatusOr<size_t> n = source_.Read(buffer, want);
  if (!n.ok()) return n.status();
  if (*n == 0) {
    return absl::DataLossError(absl::StrCat("tar archive ", name_, " is truncated inside entry data at byte ",
                                            position_));
  }
  position_ += *n;
  remaining_ -= *n;
  return *n;
}

absl::StatusOr<std::string> TarReader::ReadAllData(uint64_t limit) {
  if (remaining_ > limit) {
    return absl::InvalidArgumentError(absl::StrCat("tar archive ", name_, ": member of ", remaining_,
                                                   " bytes exceeds the ", limit, "-byte limit"));
  }
  std::string data(remaining_, '\0');
  size_t done = 0;
  while (done < data.size()) {
    absl::StatusOr<size_t> n = ReadData(data.data() + done, data.size() - done);
    if (!n.ok()) return n.status();
    done += *n;
  }
  return data;
}

}  // namespace kelpie::image
