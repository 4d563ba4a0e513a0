#include "orchestrator/apiserver/auth_protobuf.h"

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;

// A message layout: field number -> how to put it into JSON.
struct Field;
struct Message {
  std::map<int, Field> fields;
};
enum class Type { kString, kInt64, kBool, kMessage, kRepeatedString, kRepeatedMessage, kExtraMap };
struct Field {
  std::string name;
  Type type = Type::kString;
  const Message* message = nullptr;
};

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  absl::StatusOr<uint64_t> Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return absl::InvalidArgumentError("truncated varint");
      uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return absl::InvalidArgumentError("varint too long");
  }
  absl::StatusOr<std::string_view> Bytes() {
    auto n = Varint();
    if (!n.ok()) return n.status();
    if (*n > data_.size() - pos_) return absl::InvalidArgumentError("truncated field");
    std::string_view s = data_.substr(pos_, *n);
    pos_ += *n;
    return s;
  }
  absl::Status Skip(int wire_type) {
    switch (wire_type) {
      case 0:
        return Varint().status();
      case 1:
        if (data_.size() - pos_ < 8) return absl::InvalidArgumentError("truncated field");
        pos_ += 8;
        return absl::OkStatus();
      case 2:
        return Bytes().status();
      case 5:
        if (data_.size() - pos_ < 4) return absl::InvalidArgumentError("truncated field");
        pos_ += 4;
        return absl::OkStatus();
      default:
        return absl::InvalidArgumentError(absl::StrCat("unsupported wire type ", wire_type));
    }
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

absl::StatusOr<json> Decode(std::string_view data, const Message& m, int depth);

absl::StatusOr<json> DecodeExtraValue(std::string_view data) {
  // ExtraValue { repeated string items = 1; }
  Reader r(data);
  json items = json::array();
  while (!r.done()) {
    auto tag = r.Varint();
    if (!tag.ok()) return tag.status();
    if ((*tag >> 3) == 1 && (*tag & 7) == 2) {
      auto s = r.Bytes();
      if (!s.ok()) return s.status();
      items.push_back(std::string(*s));
    } else if (absl::Status st = r.Skip(static_cast<int>(*tag & 7)); !st.ok()) {
      return st;
    }
  }
  return items;
}

absl::StatusOr<json> Decode(std::string_view data, const Message& m, int depth) {
  if (depth > 16) return absl::InvalidArgumentError("nested too deeply");
  Reader r(data);
  json out = json::object();
  while (!r.done()) {
    auto tag = r.Varint();
    if (!tag.ok()) return tag.status();
    int number = static_cast<int>(*tag >> 3);
    int wire = static_cast<int>(*tag & 7);
    auto it = m.fields.find(number);
    if (it == m.fields.end()) {
      if (absl::Status st = r.Skip(wire); !st.ok()) return st;
      continue;
    }
    const Field& f = it->second;
    bool want_varint = f.type == Type::kInt64 || f.type == Type::kBool;
    if ((want_varint && wire != 0) || (!want_varint && wire != 2)) {
      return absl::InvalidArgumentError(absl::StrCat("field ", f.name, " has wire type ", wire));
    }
    switch (f.type) {
      case Type::kInt64: {
        auto v = r.Varint();
        if (!v.ok()) return v.status();
        out[f.name] = static_cast<int64_t>(*v);
        break;
      }
      case Type::kBool: {
        auto v = r.Varint();
        if (!v.ok()) return v.status();
        out[f.name] = *v != 0;
        break;
      }
      case Type::kString:
      case Type::kRepeatedString: {
        auto s = r.Bytes();
        if (!s.ok()) return s.status();
        if (f.type == Type::kString) {
          out[f.name] = std::string(*s);
        } else {
          if (!out.contains(f.name)) out[f.name] = json::array();
          out[f.name].push_back(std::string(*s));
        }
        break;
      }
      case Type::kMessage:
      case Type::kRepeatedMessage: {
        auto s = r.Bytes();
        if (!s.ok()) return s.status();
        auto sub = Decode(*s, *f.message, depth + 1);
        if (!sub.ok()) return sub.status();
        if (f.type == Type::kMessage) {
          out[f.name] = std::move(*sub);
        } else {
          if (!out.contains(f.name)) out[f.name] = json::array();
          out[f.name].push_back(std::move(*sub));
        }
        break;
      }
      case Type::kExtraMap: {
        // map entry { string key = 1; ExtraValue value = 2; }
        auto s = r.Bytes();
        if (!s.ok()) return s.status();
        Reader e(*s);
        std::string key;
        json value = json::array();
        while (!e.done()) {
          auto t = e.Varint();
          if (!t.ok()) return t.status();
          if ((*t & 7) != 2) {
            if (absl::Status st = e.Skip(static_cast<int>(*t & 7)); !st.ok()) return st;
            continue;
          }
          auto b = e.Bytes();
          if (!b.ok()) return b.status();
          if ((*t >> 3) == 1) {
            key = std::string(*b);
          } else if ((*t >> 3) == 2) {
            auto items = DecodeExtraValue(*b);
            if (!items.ok()) return items.status();
            value = std::move(*items);
          }
        }
        if (!out.contains(f.name)) out[f.name] = json::object();
        out[f.name][key] = std::move(value);
        break;
      }
    }
  }
  return out;
}

struct Layouts {
  Message object_meta, type_meta, unknown;
  Message bound_object_ref, token_request_spec, token_request;
  Message token_review_spec, token_review, self_subject_review;
  Message resource_attributes, non_resource_attributes;
  Message ssar_spec, ssar, sar_spec, sar, ssrr_spec, ssrr;

  Layouts() {
    using T = Type;
    object_meta.fields = {{1, {"name", T::kString}}, {2, {"generateName", T::kString}}, {3, {"namespace", T::kString}}};
    type_meta.fields = {{1, {"apiVersion", T::kString}}, {2, {"kind", T::kString}}};
    unknown.fields = {{1, {"typeMeta", T::kMessage, &type_meta}},
                      {2, {"raw", T::kString}},
                      {3, {"contentEncoding", T::kString}},
                      {4, {"contentType", T::kString}}};
    bound_object_ref.fields = {{1, {"kind", T::kString}},
                               {2, {"apiVersion", T::kString}},
                               {3, {"name", T::kString}},
                               {4, {"uid", T::kString}}};
    token_request_spec.fields = {{1, {"audiences", T::kRepeatedString}},
                                 {3, {"boundObjectRef", T::kMessage, &bound_object_ref}},
                                 {4, {"expirationSeconds", T::kInt64}}};
    token_request.fields = {{1, {"metadata", T::kMessage, &object_meta}},
                            {2, {"spec", T::kMessage, &token_request_spec}}};
    token_review_spec.fields = {{1, {"token", T::kString}}, {2, {"audiences", T::kRepeatedString}}};
    token_review.fields = {{1, {"metadata", T::kMessage, &object_meta}},
                           {2, {"spec", T::kMessage, &token_review_spec}}};
    self_subject_review.fields = {{1, {"metadata", T::kMessage, &object_meta}}};
    resource_attributes.fields = {{1, {"namespace", T::kString}}, {2, {"verb", T::kString}},
                                  {3, {"group", T::kString}},     {4, {"version", T::kString}},
                                  {5, {"resource", T::kString}},  {6, {"subresource", T::kString}},
                                  {7, {"name", T::kString}}};
    non_resource_attributes.fields = {{1, {"path", T::kString}}, {2, {"verb", T::kString}}};
    ssar_spec.fields = {{1, {"resourceAttributes", T::kMessage, &resource_attributes}},
                        {2, {"nonResourceAttributes", T::kMessage, &non_resource_attributes}}};
    ssar.fields = {{1, {"metadata", T::kMessage, &object_meta}}, {2, {"spec", T::kMessage, &ssar_spec}}};
    sar_spec.fields = {{1, {"resourceAttributes", T::kMessage, &resource_attributes}},
                       {2, {"nonResourceAttributes", T::kMessage, &non_resource_attributes}},
                       {3, {"user", T::kString}},
                       {4, {"groups", T::kRepeatedString}},
                       {5, {"extra", T::kExtraMap}},
                       {6, {"uid", T::kString}}};
    sar.fields = {{1, {"metadata", T::kMessage, &object_meta}}, {2, {"spec", T::kMessage, &sar_spec}}};
    ssrr_spec.fields = {{1, {"namespace", T::kString}}};
    ssrr.fields = {{1, {"metadata", T::kMessage, &object_meta}}, {2, {"spec", T::kMessage, &ssrr_spec}}};
  }

  const Message* For(const std::string& kind) const {
    if (kind == "TokenRequest") return &token_request;
    if (kind == "TokenReview") return &token_review;
    if (kind == "SelfSubjectReview") return &self_subject_review;
    if (kind == "SelfSubjectAccessReview") return &ssar;
    if (kind == "SubjectAccessReview" || kind == "LocalSubjectAccessReview") return &sar;
    if (kind == "SelfSubjectRulesReview") return &ssrr;
    return nullptr;
  }
};

const Layouts& GetLayouts() {
  static const Layouts layouts;
  return layouts;
}

}  // namespace

absl::StatusOr<json> DecodeAuthProtobuf(const std::string& body, const std::string& kind) {
  static constexpr std::string_view kMagic("k8s\0", 4);
  if (body.size() < 4 || std::string_view(body).substr(0, 4) != kMagic) {
    return absl::InvalidArgumentError("the body does not start with the Kubernetes protobuf magic \"k8s\\0\"");
  }
  const Layouts& l = GetLayouts();
  const Message* layout = l.For(kind);
  if (layout == nullptr) return absl::InvalidArgumentError(absl::StrCat("no protobuf decoding for ", kind));
  auto envelope = Decode(std::string_view(body).substr(4), l.unknown, 0);
  if (!envelope.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("malformed protobuf envelope: ", envelope.status().message()));
  }
  std::string sent_kind, api_version;
  if (auto tm = envelope->find("typeMeta"); tm != envelope->end() && tm->is_object()) {
    sent_kind = tm->value("kind", "");
    api_version = tm->value("apiVersion", "");
  }
  if (!sent_kind.empty() && sent_kind != kind) {
    return absl::InvalidArgumentError(absl::StrCat("the body is a ", sent_kind, ", not a ", kind));
  }
  if (!envelope->value("contentEncoding", "").empty()) {
    return absl::InvalidArgumentError("compressed protobuf bodies are not accepted");
  }
  auto object = Decode(envelope->value("raw", ""), *layout, 0);
  if (!object.ok()) return absl::InvalidArgumentError(absl::StrCat("malformed ", kind, ": ", object.status().message()));
  (*object)["kind"] = kind;
  if (!api_version.empty()) (*object)["apiVersion"] = api_version;
  return object;
}

}  // namespace kelpie::apiserver
