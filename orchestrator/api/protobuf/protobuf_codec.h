// Kubernetes' protobuf encoding (application/vnd.kubernetes.protobuf) of
// the kinds the schema models, converted to and from the JSON documents the
// API server stores. The schema gives every field its protobuf number
// (generated.proto of Kubernetes), so no generated code is needed.
//
// A body is the magic "k8s\0" followed by a runtime.Unknown message:
//   Unknown  { TypeMeta typeMeta = 1; bytes raw = 2;
//              string contentEncoding = 3; string contentType = 4; }
//   TypeMeta { string apiVersion = 1; string kind = 2; }
// where raw is the object's own message.
//
// Decoding produces the JSON kube-apiserver would store: Go leaves out the
// zero values of optional fields (omitempty) that protobuf always carries,
// so a zero scalar is kept only when the field is required or a pointer
// (schema flag `ptr`, or a default); messages are kept even when empty
// (`emptyDir: {}`). A field number the schema does not model is ignored when
// its value is zero and refused otherwise, so nothing is lost silently.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"
#include "orchestrator/api/schema/schema.h"

namespace kelpie::api::protobuf {

inline constexpr char kProtobufMediaType[] = "application/vnd.kubernetes.protobuf";
inline constexpr std::string_view kEnvelopeMagic{"k8s\0", 4};

// runtime.Unknown with its TypeMeta.
struct Envelope {
  std::string api_version;
  std::string kind;
  std::string raw;
  std::string content_encoding;
  std::string content_type;
};

// InvalidArgument when the bytes are not a well-formed envelope.
absl::StatusOr<Envelope> ParseEnvelope(std::string_view body);
std::string SerializeEnvelope(const Envelope& envelope);

class ProtobufCodec {
 public:
  explicit ProtobufCodec(const schema::Schema& schema);
  // The codec over the built-in schema.
  static const ProtobufCodec& Builtin();

  // A whole request body (envelope and object) as the JSON object with
  // apiVersion and kind set. Errors: InvalidArgument for malformed bytes (a
  // 400), Unimplemented for a kind without a schema, a field the schema
  // does not model or a compressed body (a 415); messages name what failed.
  absl::StatusOr<nlohmann::json> DecodeObject(std::string_view body) const;
  // A JSON object (with apiVersion and kind) as a whole body. Unimplemented
  // when the kind has no schema or the object has a field without a
  // protobuf number (a field an open type keeps unmodelled).
  absl::StatusOr<std::string> EncodeObject(const nlohmann::json& object) const;

  // One message of a schema type.
  absl::StatusOr<nlohmann::json> DecodeMessage(const schema::TypeDef& type, std::string_view bytes) const;
  absl::StatusOr<std::string> EncodeMessage(const schema::TypeDef& type, const nlohmann::json& object) const;

  // The schema type of a kind ("v1"/"apps/v1" and "Pod"), or nullptr.
  const schema::TypeDef* TypeOfKind(std::string_view api_version, std::string_view kind) const;

  // Field numbers of a type, with the messages embedded inline (a Volume's
  // VolumeSource) as nested slots.
  struct Slot {
    const schema::Field* field = nullptr;  // a field of the type
    std::map<int, Slot> inline_fields;     // or an embedded message
  };
  using Layout = std::map<int, Slot>;

 private:
  class Decoder;
  class Encoder;

  const schema::Schema& schema_;
  std::map<std::string, Layout, std::less<>> layouts_;  // by qualified type name
};

}  // namespace kelpie::api::protobuf
