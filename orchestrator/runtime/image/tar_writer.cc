#include "orchestrator/runtime/image/tar_writer.h"

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace kelpie::image {
namespace {

constexpr size_t kBlock = 512;

// Zero-padded octal with a terminating NUL; base-256 (GNU) when too large.
void PutOctal(char* field, size_t length, uint64_t value) {
  size_t digits = length - 1;
  if (digits < 22 && (value >> (3 * digits)) != 0) {
    std::memset(field, 0, length);
    field[0] = static_cast<char>(0x80);
    for (size_t i = length - 1; i > 0 && value != 0; --i, value >>= 8) {
      field[i] = static_cast<char>(value & 0xff);
    }
    return;
  }
  for (size_t i = digits; i > 0; --i, value >>= 3) field[i - 1] = static_cast<char>('0' + (value & 7));
  field[digits] = '\0';
}

std::string PaxRecord(const std::string& key, const std::string& value) {
  // The length prefix counts itself, so find the fixed point.
  size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t length = body + 1;
  while (std::to_string(length).size() + body != length) length = std::to_string(length).size() + body;
  return absl::StrCat(length, " ", key, "=", value, "\n");
}

char TypeFlag(TarEntryType type) {
  switch (type) {
    case TarEntryType::kRegular: return '0';
    case TarEntryType::kHardLink: return '1';
    case TarEntryType::kSymlink: return '2';
    case TarEntryType::kCharDevice: return '3';
    case TarEntryType::kBlockDevice: return '4';
    case TarEntryType::kDirectory: return '5';
    case TarEntryType::kFifo: return '6';
  }
  return '0';
}

}  // namespace

void TarWriter::AppendData(absl::string_view data) {
  out_.append(data.data(), data.size());
  out_.append((kBlock - data.size() % kBlock) % kBlock, '\0');
}

void TarWriter::AppendHeader(const TarEntry& entry, char type, const std::string& name,
                             const std::string& link, uint64_t size) {
  char block[kBlock];
  std::memset(block, 0, sizeof(block));
  std::memcpy(block, name.data(), std::min<size_t>(name.size(), 100));
  PutOctal(block + 100, 8, entry.mode & 07777);
  PutOctal(block + 108, 8, static_cast<uint64_t>(entry.uid));
  PutOctal(block + 116, 8, static_cast<uint64_t>(entry.gid));
  PutOctal(block + 124, 12, size);
  PutOctal(block + 136, 12, static_cast<uint64_t>(entry.mtime_seconds));
  block[156] = type;
  std::memcpy(block + 157, link.data(), std::min<size_t>(link.size(), 100));
  std::memcpy(block + 257, "ustar", 6);
  block[263] = '0';
  block[264] = '0';
  std::memcpy(block + 265, entry.uname.data(), std::min<size_t>(entry.uname.size(), 31));
  std::memcpy(block + 297, entry.gname.data(), std::min<size_t>(entry.gname.size(), 31));
  PutOctal(block + 329, 8, entry.dev_major);
  PutOctal(block + 337, 8, entry.dev_minor);
  std::memset(block + 148, ' ', 8);
  unsigned sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += static_cast<unsigned char>(block[i]);
  PutOctal(block + 148, 7, sum);
  block[155] = ' ';
  out_.append(block, kBlock);
}

void TarWriter::Add(const TarEntry& entry, absl::string_view data) {
  bool long_name = entry.path.size() > 100;
  bool long_link = entry.link_target.size() > 100;
  if (long_names_ == LongNames::kGnu) {
    TarEntry meta;
    meta.mode = 0644;
    if (long_name) {
      AppendHeader(meta, 'L', "././@LongLink", "", entry.path.size() + 1);
      AppendData(entry.path + std::string(1, '\0'));
    }
    if (long_link) {
      AppendHeader(meta, 'K', "././@LongLink", "", entry.link_target.size() + 1);
      AppendData(entry.link_target + std::string(1, '\0'));
    }
  } else if (long_name || long_link || !entry.xattrs.empty() || entry.mtime_nanoseconds != 0) {
    std::string records;
    if (long_name) records += PaxRecord("path", entry.path);
    if (long_link) records += PaxRecord("linkpath", entry.link_target);
    for (const auto& [key, value] : entry.xattrs) records += PaxRecord("SCHILY.xattr." + key, value);
    if (entry.mtime_nanoseconds != 0) {
      char frac[16];
      std::snprintf(frac, sizeof(frac), "%09lld", static_cast<long long>(entry.mtime_nanoseconds));
      records += PaxRecord("mtime", absl::StrCat(entry.mtime_seconds, ".", frac));
    }
    TarEntry meta;
    meta.mode = 0644;
    AppendHeader(meta, 'x', "PaxHeader", "", records.size());
    AppendData(records);
  }
  uint64_t size = entry.type == TarEntryType::kRegular ? data.size() : 0;
  AppendHeader(entry, TypeFlag(entry.type), entry.path.substr(0, 100), entry.link_target.substr(0, 100), size);
  if (size > 0) AppendData(data);
}

void TarWriter::AddDirectory(const std::string& path, mode_t mode) {
  TarEntry e;
  e.type = TarEntryType::kDirectory;
  e.path = path;
  e.mode = mode;
  Add(e);
}

void TarWriter::AddFile(const std::string& path, absl::string_view data, mode_t mode) {
  TarEntry e;
  e.path = path;
  e.mode = mode;
  Add(e, data);
}

void TarWriter::AddSymlink(const std::string& path, const std::string& target) {
  TarEntry e;
  e.type = TarEntryType::kSymlink;
  e.path = path;
  e.link_target = target;
  e.mode = 0777;
  Add(e);
}

void TarWriter::AddHardLink(const std::string& path, const std::string& target) {
  TarEntry e;
  e.type = TarEntryType::kHardLink;
  e.path = path;
  e.link_target = target;
  Add(e);
}

std::string TarWriter::Finish() {
  out_.append(2 * kBlock, '\0');
  return std::move(out_);
}

}  // namespace kelpie::image
