// The protobuf wire format as Kubernetes uses it (proto2, gogo-generated
// marshalling): varints, length-delimited fields, and the 64/32-bit fixed
// fields that a reader must be able to skip. Reading never trusts a length
// and never reads past the end of its input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kelpie::api::protobuf {

enum WireType : int { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// Appends fields to a byte string.
class ProtobufWriter {
 public:
  void Varint(uint64_t value);
  void Tag(int field, WireType wire) { Varint((static_cast<uint64_t>(field) << 3) | wire); }
  void VarintField(int field, uint64_t value) {
    Tag(field, kVarint);
    Varint(value);
  }
  // Negative int32 and int64 values are sign-extended to ten bytes, as protobuf does.
  void IntField(int field, int64_t value) { VarintField(field, static_cast<uint64_t>(value)); }
  void BytesField(int field, std::string_view bytes);
  void Fixed64Field(int field, uint64_t value);

  const std::string& data() const { return data_; }
  std::string Release() { return std::move(data_); }

 private:
  std::string data_;
};

// Reads fields from a byte string.
class ProtobufReader {
 public:
  struct Tag {
    int field = 0;
    int wire = 0;
  };

  explicit ProtobufReader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  absl::StatusOr<uint64_t> Varint();
  // A field tag; field number 0 and numbers beyond 2^29-1 are invalid.
  absl::StatusOr<Tag> NextTag();
  absl::StatusOr<std::string_view> LengthDelimited();
  absl::StatusOr<uint64_t> Fixed64();
  absl::StatusOr<uint32_t> Fixed32();
  // Skips a value of this wire type (groups, types 3 and 4, are refused).
  absl::Status Skip(int wire);
  // Reads one value of this wire type and tells whether it is the zero value
  // of every type it could hold (0, false, "", an empty message, or a
  // message whose every field is zero).
  absl::StatusOr<bool> SkipAndCheckZero(int wire, int depth = 0);

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace kelpie::api::protobuf
