#include "orchestrator/api/protobuf/protobuf_wire.h"

#include "absl/strings/str_cat.h"

namespace kelpie::api::protobuf {

void ProtobufWriter::Varint(uint64_t value) {
  while (value >= 0x80) {
    data_.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  data_.push_back(static_cast<char>(value));
}

void ProtobufWriter::BytesField(int field, std::string_view bytes) {
  Tag(field, kLengthDelimited);
  Varint(bytes.size());
  data_.append(bytes.data(), bytes.size());
}

void ProtobufWriter::Fixed64Field(int field, uint64_t value) {
  Tag(field, kFixed64);
  for (int i = 0; i < 8; ++i) data_.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

absl::StatusOr<uint64_t> ProtobufReader::Varint() {
  uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= data_.size()) return absl::InvalidArgumentError("truncated varint");
    uint8_t b = static_cast<uint8_t>(data_[pos_++]);
    value |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return value;
  }
  return absl::InvalidArgumentError("varint longer than ten bytes");
}

absl::StatusOr<ProtobufReader::Tag> ProtobufReader::NextTag() {
  auto v = Varint();
  if (!v.ok()) return v.status();
  uint64_t field = *v >> 3;
  if (field == 0 || field > (1u << 29) - 1) {
    return absl::InvalidArgumentError(absl::StrCat("invalid field number ", field));
  }
  return Tag{static_cast<int>(field), static_cast<int>(*v & 7)};
}

absl::StatusOr<std::string_view> ProtobufReader::LengthDelimited() {
  auto n = Varint();
  if (!n.ok()) return n.status();
  if (*n > data_.size() - pos_) return absl::InvalidArgumentError("length-delimited field runs past the end");
  std::string_view s = data_.substr(pos_, *n);
  pos_ += *n;
  return s;
}

absl::StatusOr<uint64_t> ProtobufReader::Fixed64() {
  if (data_.size() - pos_ < 8) return absl::InvalidArgumentError("truncated 64-bit field");
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(data_[pos_ + i]);
  pos_ += 8;
  return v;
}

absl::StatusOr<uint32_t> ProtobufReader::Fixed32() {
  if (data_.size() - pos_ < 4) return absl::InvalidArgumentError("truncated 32-bit field");
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(data_[pos_ + i]);
  pos_ += 4;
  return v;
}

absl::Status ProtobufReader::Skip(int wire) {
  switch (wire) {
    case kVarint:
      return Varint().status();
    case kFixed64:
      return Fixed64().status();
    case kLengthDelimited:
      return LengthDelimited().status();
    case kFixed32:
      return Fixed32().status();
    default:
      return absl::InvalidArgumentError(absl::StrCat("unsupported wire type ", wire));
  }
}

absl::StatusOr<bool> ProtobufReader::SkipAndCheckZero(int wire, int depth) {
  switch (wire) {
    case kVarint: {
      auto v = Varint();
      if (!v.ok()) return v.status();
      return *v == 0;
    }
    case kFixed64: {
      auto v = Fixed64();
      if (!v.ok()) return v.status();
      return *v == 0;
    }
    case kFixed32: {
      auto v = Fixed32();
      if (!v.ok()) return v.status();
      return *v == 0;
    }
    case kLengthDelimited: {
      auto bytes = LengthDelimited();
      if (!bytes.ok()) return bytes.status();
      if (bytes->empty()) return true;
      if (depth >= 32) return false;
      // Maybe a message of zero fields; anything that does not parse as one
      // is a non-empty string.
      ProtobufReader inner(*bytes);
      while (!inner.done()) {
        auto tag = inner.NextTag();
        if (!tag.ok()) return false;
        auto zero = inner.SkipAndCheckZero(tag->wire, depth + 1);
        if (!zero.ok() || !*zero) return false;
      }
      return true;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("unsupported wire type ", wire));
  }
}

}  // namespace kelpie::api::protobuf
