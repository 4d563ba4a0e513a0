#include "orchestrator/api/protobuf/protobuf_codec.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <ctime>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base64.h"
#include "common/status_macros.h"
#include "orchestrator/api/protobuf/protobuf_wire.h"

namespace kelpie::api::protobuf {

using nlohmann::json;
using schema::Field;
using schema::TypeDef;
using schema::ValueKind;

namespace {

// Deeper messages than any served kind has; a bound keeps hostile input
// from exhausting the stack.
constexpr int kMaxDepth = 100;
// Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of metav1.Time.
constexpr int64_t kMinSeconds = -62135596800;
constexpr int64_t kMaxSeconds = 253402300799;

// JSON strings must be UTF-8 (the JSON writer refuses anything else).
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    uint8_t c = static_cast<uint8_t>(s[i]);
    int extra;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      extra = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= static_cast<size_t>(extra)) return false;
    for (int k = 1; k <= extra; ++k) {
      uint8_t cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
  return true;
}

absl::StatusOr<std::string> FormatTime(int64_t seconds, int64_t nanos, bool micro) {
  if (seconds < kMinSeconds || seconds > kMaxSeconds || nanos < 0 || nanos > 999999999) {
    return absl::InvalidArgumentError(absl::StrCat("time ", seconds, "s ", nanos, "ns is out of range"));
  }
  time_t t = static_cast<time_t>(seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return absl::InvalidArgumentError("time out of range");
  char buf[96];
  if (micro) {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(nanos / 1000));
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return std::string(buf);
}

// RFC 3339: "2006-01-02T15:04:05Z", with optional fraction and numeric offset.
absl::StatusOr<std::pair<int64_t, int64_t>> ParseTime(const std::string& text) {
  auto bad = [&text] { return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not an RFC 3339 time")); };
  auto digits = [&text](size_t pos, size_t n, int* out) {
    if (pos + n > text.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      v = v * 10 + (text[i] - '0');
    }
    *out = v;
    return true;
  };
  std::tm tm{};
  int year, month, day, hour, minute, second;
  if (!digits(0, 4, &year) || text.size() < 19 || text[4] != '-' || !digits(5, 2, &month) || text[7] != '-' ||
      !digits(8, 2, &day) || (text[10] != 'T' && text[10] != 't') || !digits(11, 2, &hour) || text[13] != ':' ||
      !digits(14, 2, &minute) || text[16] != ':' || !digits(17, 2, &second)) {
    return bad();
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return bad();
  size_t pos = 19;
  int64_t nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int count = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (count < 9) nanos = nanos * 10 + (text[pos] - '0');
      ++count;
      ++pos;
    }
    if (count == 0) return bad();
    for (int i = count; i < 9; ++i) nanos *= 10;
  }
  int64_t offset = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int oh, om;
    if (!digits(pos + 1, 2, &oh) || pos + 3 >= text.size() || text[pos + 3] != ':' || !digits(pos + 4, 2, &om)) {
      return bad();
    }
    offset = (oh * 3600 + om * 60) * (text[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return bad();
  }
  if (pos != text.size()) return bad();
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  int64_t seconds = static_cast<int64_t>(timegm(&tm)) - offset;
  return std::make_pair(seconds, nanos);
}

std::string PathJoin(const std::string& path, std::string_view name) {
  return path.empty() ? std::string(name) : absl::StrCat(path, ".", std::string(name));
}

absl::Status NotModelled(const std::string& what) {
  return absl::UnimplementedError(
      absl::StrCat(what, " is not modelled by this server's protobuf decoding; send the object as JSON"));
}

// Builds the field-number layout of a type, nesting inline messages.
absl::Status AddToLayout(ProtobufCodec::Layout* layout, const Field& field, size_t index, const TypeDef& type) {
  int number = field.proto_path[index];
  ProtobufCodec::Slot& slot = (*layout)[number];
  if (index + 1 == field.proto_path.size()) {
    if (slot.field != nullptr || !slot.inline_fields.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(type.name, ": protobuf field ", number, " is used twice"));
    }
    slot.field = &field;
    return absl::OkStatus();
  }
  if (slot.field != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(type.name, ": protobuf field ", number, " is used twice"));
  }
  return AddToLayout(&slot.inline_fields, field, index + 1, type);
}

}  // namespace

// ---------------------------------------------------------------- envelope

absl::StatusOr<Envelope> ParseEnvelope(std::string_view body) {
  if (body.size() < kEnvelopeMagic.size() || body.substr(0, kEnvelopeMagic.size()) != kEnvelopeMagic) {
    return absl::InvalidArgumentError("the body does not start with the Kubernetes protobuf prefix \"k8s\\x00\"");
  }
  Envelope envelope;
  ProtobufReader reader(body.substr(kEnvelopeMagic.size()));
  auto string_field = [](std::string_view bytes, const char* name, std::string* out) -> absl::Status {
    if (!ValidUtf8(bytes)) return absl::InvalidArgumentError(absl::StrCat("envelope ", name, " is not UTF-8"));
    *out = std::string(bytes);
    return absl::OkStatus();
  };
  while (!reader.done()) {
    auto tag = reader.NextTag();
    if (!tag.ok()) return tag.status();
    if (tag->field >= 1 && tag->field <= 4) {
      if (tag->wire != kLengthDelimited) {
        return absl::InvalidArgumentError(absl::StrCat("envelope field ", tag->field, " has wire type ", tag->wire));
      }
      auto bytes = reader.LengthDelimited();
      if (!bytes.ok()) return bytes.status();
      absl::Status st;
      switch (tag->field) {
        case 1: {
          ProtobufReader meta(*bytes);
          while (!meta.done() && st.ok()) {
            auto mtag = meta.NextTag();
            if (!mtag.ok()) return mtag.status();
            if ((mtag->field == 1 || mtag->field == 2) && mtag->wire == kLengthDelimited) {
              auto s = meta.LengthDelimited();
              if (!s.ok()) return s.status();
              st = string_field(*s, mtag->field == 1 ? "apiVersion" : "kind",
                                mtag->field == 1 ? &envelope.api_version : &envelope.kind);
            } else {
              st = meta.Skip(mtag->wire);
            }
          }
          break;
        }
        case 2:
          envelope.raw = std::string(*bytes);
          break;
        case 3:
          st = string_field(*bytes, "contentEncoding", &envelope.content_encoding);
          break;
        case 4:
          st = string_field(*bytes, "contentType", &envelope.content_type);
          break;
      }
      if (!st.ok()) return st;
    } else if (absl::Status st = reader.Skip(tag->wire); !st.ok()) {
      return st;
    }
  }
  return envelope;
}

std::string SerializeEnvelope(const Envelope& envelope) {
  ProtobufWriter type_meta;
  type_meta.BytesField(1, envelope.api_version);
  type_meta.BytesField(2, envelope.kind);
  ProtobufWriter unknown;
  unknown.BytesField(1, type_meta.data());
  unknown.BytesField(2, envelope.raw);
  unknown.BytesField(3, envelope.content_encoding);
  unknown.BytesField(4, envelope.content_type);
  return absl::StrCat(std::string(kEnvelopeMagic), unknown.data());
}

// ---------------------------------------------------------------- decoding

class ProtobufCodec::Decoder {
 public:
  explicit Decoder(const ProtobufCodec& codec) : codec_(codec) {}

  // Decodes the message `bytes` of `type` into `out` (an object; fields
  // already there are merged, as protobuf merges repeated messages).
  absl::Status Message(const TypeDef& type, std::string_view bytes, json* out, const std::string& path, int depth) {
    if (depth > kMaxDepth) return absl::InvalidArgumentError("messages nested deeper than 100 levels");
    auto layout = codec_.layouts_.find(type.name);
    if (layout == codec_.layouts_.end()) return absl::InternalError(absl::StrCat("no layout for ", type.name));
    if (!out->is_object()) *out = json::object();
    return Fields(type, layout->second, bytes, out, path, depth);
  }

 private:
  absl::Status Fields(const TypeDef& type, const Layout& layout, std::string_view bytes, json* out,
                      const std::string& path, int depth) {
    ProtobufReader reader(bytes);
    while (!reader.done()) {
      auto tag = reader.NextTag();
      if (!tag.ok()) return Where(tag.status(), path);
      auto slot = layout.find(tag->field);
      if (slot == layout.end()) {
        auto zero = reader.SkipAndCheckZero(tag->wire);
        if (!zero.ok()) return Where(zero.status(), path);
        if (!*zero) {
          return NotModelled(absl::StrCat("protobuf field ", tag->field, " of ", type.name,
                                          path.empty() ? "" : absl::StrCat(" (in ", path, ")")));
        }
        continue;
      }
      if (slot->second.field == nullptr) {  // an embedded message whose fields live in this object
        if (tag->wire != kLengthDelimited) return WrongWire(type, tag->field, tag->wire, path);
        auto inner = reader.LengthDelimited();
        if (!inner.ok()) return Where(inner.status(), path);
        if (depth + 1 > kMaxDepth) return absl::InvalidArgumentError("messages nested deeper than 100 levels");
        KELPIE_RETURN_IF_ERROR(Fields(type, slot->second.inline_fields, *inner, out, path, depth + 1));
        continue;
      }
      KELPIE_RETURN_IF_ERROR(FieldValue(type, *slot->second.field, tag->wire, &reader, out, path, depth));
    }
    return absl::OkStatus();
  }

  absl::Status FieldValue(const TypeDef& type, const Field& field, int wire, ProtobufReader* reader, json* out,
                          const std::string& path, int depth) {
    std::string field_path = PathJoin(path, field.json_name);
    const schema::TypeRef& t = field.type;
    if (t.kind == ValueKind::kList) {
      json& list = (*out)[field.json_name];
      if (!list.is_array()) list = json::array();
      bool numeric = t.element == ValueKind::kInt32 || t.element == ValueKind::kInt64 ||
                     t.element == ValueKind::kBool;
      if (numeric && wire == kLengthDelimited) {  // packed
        auto packed = reader->LengthDelimited();
        if (!packed.ok()) return Where(packed.status(), field_path);
        ProtobufReader items(*packed);
        while (!items.done()) {
          json item;
          KELPIE_RETURN_IF_ERROR(Value(type, field, t.element, t.object, kVarint, &items, &item, field_path, depth));
          list.push_back(std::move(item));
        }
        return absl::OkStatus();
      }
      json item;
      KELPIE_RETURN_IF_ERROR(Value(type, field, t.element, t.object, wire, reader, &item,
                          absl::StrCat(field_path, "[", list.size(), "]"), depth));
      list.push_back(std::move(item));
      return absl::OkStatus();
    }
    if (t.kind == ValueKind::kMap) {
      if (wire != kLengthDelimited) return WrongWire(type, field.proto_path.back(), wire, path);
      auto entry_bytes = reader->LengthDelimited();
      if (!entry_bytes.ok()) return Where(entry_bytes.status(), field_path);
      ProtobufReader entry(*entry_bytes);
      std::string key;
      std::optional<json> value;
      while (!entry.done()) {
        auto tag = entry.NextTag();
        if (!tag.ok()) return Where(tag.status(), field_path);
        if (tag->field == 1) {
          if (tag->wire != kLengthDelimited) return WrongWire(type, field.proto_path.back(), tag->wire, path);
          auto k = entry.LengthDelimited();
          if (!k.ok()) return Where(k.status(), field_path);
          if (!ValidUtf8(*k)) return absl::InvalidArgumentError(absl::StrCat(field_path, ": map key is not UTF-8"));
          key = std::string(*k);
        } else if (tag->field == 2) {
          json v;
          KELPIE_RETURN_IF_ERROR(Value(type, field, t.element, t.object, tag->wire, &entry, &v, field_path, depth));
          value = std::move(v);
        } else {
          KELPIE_RETURN_IF_ERROR(Where(entry.Skip(tag->wire), field_path));
        }
      }
      json& map = (*out)[field.json_name];
      if (!map.is_object()) map = json::object();
      map[key] = value ? std::move(*value) : ZeroOf(t.element);
      return absl::OkStatus();
    }
    json value;
    if (t.kind == ValueKind::kObject) {
      // A repeated occurrence merges into the message decoded so far.
      if (out->contains(field.json_name)) value = std::move((*out)[field.json_name]);
    }
    KELPIE_RETURN_IF_ERROR(Value(type, field, t.kind, t.object, wire, reader, &value, field_path, depth));
    if (value.is_null() || (IsZero(value, t.kind) && !KeepZero(field))) {
      out->erase(field.json_name);
    } else {
      (*out)[field.json_name] = std::move(value);
    }
    return absl::OkStatus();
  }

  // One value of `kind`; a Time that is the zero time comes back as null.
  absl::Status Value(const TypeDef& type, const Field& field, ValueKind kind, const std::string& object, int wire,
                     ProtobufReader* reader, json* out, const std::string& path, int depth) {
    auto want = [&](int w) -> absl::Status {
      return wire == w ? absl::OkStatus() : WrongWire(type, field.proto_path.back(), wire, path);
    };
    switch (kind) {
      case ValueKind::kString: {
        KELPIE_RETURN_IF_ERROR(want(kLengthDelimited));
        auto s = reader->LengthDelimited();
        if (!s.ok()) return Where(s.status(), path);
        if (!ValidUtf8(*s)) return absl::InvalidArgumentError(absl::StrCat(path, ": string is not UTF-8"));
        *out = std::string(*s);
        return absl::OkStatus();
      }
      case ValueKind::kInt32:
      case ValueKind::kInt64:
      case ValueKind::kBool: {
        KELPIE_RETURN_IF_ERROR(want(kVarint));
        auto v = reader->Varint();
        if (!v.ok()) return Where(v.status(), path);
        if (kind == ValueKind::kBool) {
          *out = *v != 0;
        } else if (kind == ValueKind::kInt32) {
          *out = static_cast<int32_t>(static_cast<uint32_t>(*v));
        } else {
          *out = static_cast<int64_t>(*v);
        }
        return absl::OkStatus();
      }
      case ValueKind::kNumber: {
        if (wire == kFixed64) {
          auto v = reader->Fixed64();
          if (!v.ok()) return Where(v.status(), path);
          double d;
          std::memcpy(&d, &*v, sizeof d);
          if (!std::isfinite(d)) return absl::InvalidArgumentError(absl::StrCat(path, ": number is not finite"));
          *out = d;
          return absl::OkStatus();
        }
        KELPIE_RETURN_IF_ERROR(want(kFixed32));
        auto v = reader->Fixed32();
        if (!v.ok()) return Where(v.status(), path);
        float f;
        std::memcpy(&f, &*v, sizeof f);
        if (!std::isfinite(f)) return absl::InvalidArgumentError(absl::StrCat(path, ": number is not finite"));
        *out = static_cast<double>(f);
        return absl::OkStatus();
      }
      case ValueKind::kBytes: {
        KELPIE_RETURN_IF_ERROR(want(kLengthDelimited));
        auto s = reader->LengthDelimited();
        if (!s.ok()) return Where(s.status(), path);
        *out = Base64Encode(std::string(*s));
        return absl::OkStatus();
      }
      default:
        break;
    }
    // The rest are messages.
    KELPIE_RETURN_IF_ERROR(want(kLengthDelimited));
    auto bytes = reader->LengthDelimited();
    if (!bytes.ok()) return Where(bytes.status(), path);
    ProtobufReader inner(*bytes);
    switch (kind) {
      case ValueKind::kIntOrString: {
        // IntOrString { int64 type = 1; int32 intVal = 2; string strVal = 3; }
        uint64_t is_string = 0;
        int64_t int_val = 0;
        std::string str_val;
        while (!inner.done()) {
          auto tag = inner.NextTag();
          if (!tag.ok()) return Where(tag.status(), path);
          if ((tag->field == 1 || tag->field == 2) && tag->wire == kVarint) {
            auto v = inner.Varint();
            if (!v.ok()) return Where(v.status(), path);
            if (tag->field == 1) {
              is_string = *v;
            } else {
              int_val = static_cast<int32_t>(static_cast<uint32_t>(*v));
            }
          } else if (tag->field == 3 && tag->wire == kLengthDelimited) {
            auto s = inner.LengthDelimited();
            if (!s.ok()) return Where(s.status(), path);
            if (!ValidUtf8(*s)) return absl::InvalidArgumentError(absl::StrCat(path, ": string is not UTF-8"));
            str_val = std::string(*s);
          } else {
            KELPIE_RETURN_IF_ERROR(Where(inner.Skip(tag->wire), path));
          }
        }
        if (is_string > 1) return absl::InvalidArgumentError(absl::StrCat(path, ": IntOrString type ", is_string));
        if (is_string == 1) {
          *out = str_val;
        } else {
          *out = int_val;
        }
        return absl::OkStatus();
      }
      case ValueKind::kQuantity: {
        // Quantity { string string = 1; }
        std::string text;
        while (!inner.done()) {
          auto tag = inner.NextTag();
          if (!tag.ok()) return Where(tag.status(), path);
          if (tag->field == 1 && tag->wire == kLengthDelimited) {
            auto s = inner.LengthDelimited();
            if (!s.ok()) return Where(s.status(), path);
            if (!ValidUtf8(*s)) return absl::InvalidArgumentError(absl::StrCat(path, ": quantity is not UTF-8"));
            text = std::string(*s);
          } else {
            KELPIE_RETURN_IF_ERROR(Where(inner.Skip(tag->wire), path));
          }
        }
        *out = text.empty() ? "0" : text;
        return absl::OkStatus();
      }
      case ValueKind::kTime:
      case ValueKind::kMicroTime: {
        // Time and MicroTime { int64 seconds = 1; int32 nanos = 2; }; empty is the zero time.
        if (bytes->empty()) {
          *out = nullptr;
          return absl::OkStatus();
        }
        int64_t seconds = 0, nanos = 0;
        while (!inner.done()) {
          auto tag = inner.NextTag();
          if (!tag.ok()) return Where(tag.status(), path);
          if ((tag->field == 1 || tag->field == 2) && tag->wire == kVarint) {
            auto v = inner.Varint();
            if (!v.ok()) return Where(v.status(), path);
            if (tag->field == 1) {
              seconds = static_cast<int64_t>(*v);
            } else {
              nanos = static_cast<int32_t>(static_cast<uint32_t>(*v));
            }
          } else {
            KELPIE_RETURN_IF_ERROR(Where(inner.Skip(tag->wire), path));
          }
        }
        auto text = FormatTime(seconds, nanos, kind == ValueKind::kMicroTime);
        if (!text.ok()) return Where(text.status(), path);
        *out = *text;
        return absl::OkStatus();
      }
      case ValueKind::kRaw: {
        // RawExtension and FieldsV1 { bytes raw = 1; } hold JSON.
        std::string_view raw;
        while (!inner.done()) {
          auto tag = inner.NextTag();
          if (!tag.ok()) return Where(tag.status(), path);
          if (tag->field == 1 && tag->wire == kLengthDelimited) {
            auto s = inner.LengthDelimited();
            if (!s.ok()) return Where(s.status(), path);
            raw = *s;
          } else {
            KELPIE_RETURN_IF_ERROR(Where(inner.Skip(tag->wire), path));
          }
        }
        if (raw.empty()) {
          *out = nullptr;
          return absl::OkStatus();
        }
        json parsed = json::parse(raw.begin(), raw.end(), nullptr, /*allow_exceptions=*/false);
        if (parsed.is_discarded()) {
          return absl::InvalidArgumentError(absl::StrCat(path, ": embedded raw object is not JSON"));
        }
        *out = std::move(parsed);
        return absl::OkStatus();
      }
      case ValueKind::kObject: {
        const TypeDef* sub = codec_.schema_.FindType(object);
        if (sub == nullptr) return absl::InternalError(absl::StrCat("unknown type ", object));
        return Message(*sub, *bytes, out, path, depth + 1);
      }
      default:
        return absl::InternalError("nested lists and maps do not occur");
    }
  }

  static bool IsZero(const json& v, ValueKind kind) {
    switch (kind) {
      case ValueKind::kString:
      case ValueKind::kBytes:
        return v.is_string() && v.get_ref<const std::string&>().empty();
      case ValueKind::kInt32:
      case ValueKind::kInt64:
        return v.is_number_integer() && v.get<int64_t>() == 0;
      case ValueKind::kNumber:
        return v.is_number() && v.get<double>() == 0;
      case ValueKind::kBool:
        return v.is_boolean() && !v.get<bool>();
      case ValueKind::kIntOrString:
        return v.is_number_integer() && v.get<int64_t>() == 0;
      default:
        return false;  // messages are kept even when empty, as Go's JSON keeps structs
    }
  }

  // Go keeps zero values of required (no omitempty) and pointer fields.
  static bool KeepZero(const Field& field) {
    if (field.required) return true;
    bool scalar_with_presence = field.type.kind == ValueKind::kInt32 || field.type.kind == ValueKind::kInt64 ||
                                field.type.kind == ValueKind::kBool || field.type.kind == ValueKind::kNumber;
    return scalar_with_presence && (field.pointer || field.default_value.has_value());
  }

  static json ZeroOf(ValueKind kind) {
    switch (kind) {
      case ValueKind::kString:
      case ValueKind::kBytes:
        return "";
      case ValueKind::kQuantity:
        return "0";
      case ValueKind::kInt32:
      case ValueKind::kInt64:
      case ValueKind::kIntOrString:
        return 0;
      case ValueKind::kNumber:
        return 0.0;
      case ValueKind::kBool:
        return false;
      case ValueKind::kObject:
        return json::object();
      default:
        return nullptr;
    }
  }

  static absl::Status WrongWire(const TypeDef& type, int number, int wire, const std::string& path) {
    return absl::InvalidArgumentError(absl::StrCat("protobuf field ", number, " of ", type.name,
                                                   path.empty() ? "" : absl::StrCat(" (in ", path, ")"),
                                                   " has the wrong wire type ", wire));
  }

  static absl::Status Where(absl::Status status, const std::string& path) {
    if (status.ok() || path.empty() || !absl::IsInvalidArgument(status)) return status;
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", status.message()));
  }

  const ProtobufCodec& codec_;
};

// ---------------------------------------------------------------- encoding

class ProtobufCodec::Encoder {
 public:
  explicit Encoder(const ProtobufCodec& codec) : codec_(codec) {}

  absl::StatusOr<std::string> Message(const TypeDef& type, const json& object, const std::string& path, int depth) {
    if (depth > kMaxDepth) return absl::InvalidArgumentError("objects nested deeper than 100 levels");
    if (!object.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": expected an object"));
    for (const auto& [name, value] : object.items()) {
      const Field* f = type.FindField(name);
      if (f == nullptr) {
        return NotModelled(absl::StrCat("field \"", PathJoin(path, name), "\" of ", type.name));
      }
      if (f->proto_path.empty() && name != "apiVersion" && name != "kind") {
        return NotModelled(absl::StrCat("field \"", PathJoin(path, name), "\" (no protobuf number)"));
      }
    }
    auto layout = codec_.layouts_.find(type.name);
    if (layout == codec_.layouts_.end()) return absl::InternalError(absl::StrCat("no layout for ", type.name));
    ProtobufWriter w;
    KELPIE_RETURN_IF_ERROR(Fields(type, layout->second, object, &w, path, depth));
    return w.Release();
  }

 private:
  absl::Status Fields(const TypeDef& type, const Layout& layout, const json& object, ProtobufWriter* w,
                      const std::string& path, int depth) {
    for (const auto& [number, slot] : layout) {
      if (slot.field == nullptr) {
        ProtobufWriter inner;
        KELPIE_RETURN_IF_ERROR(Fields(type, slot.inline_fields, object, &inner, path, depth + 1));
        if (!inner.data().empty()) w->BytesField(number, inner.data());
        continue;
      }
      const Field& f = *slot.field;
      auto it = object.find(f.json_name);
      if (it == object.end() || it->is_null()) continue;
      std::string field_path = PathJoin(path, f.json_name);
      if (f.type.kind == ValueKind::kList) {
        if (!it->is_array()) return absl::InvalidArgumentError(absl::StrCat(field_path, ": expected a list"));
        size_t i = 0;
        for (const auto& item : *it) {
          KELPIE_RETURN_IF_ERROR(Value(f.type.element, f.type.object, number, item, w,
                              absl::StrCat(field_path, "[", i++, "]"), depth));
        }
      } else if (f.type.kind == ValueKind::kMap) {
        if (!it->is_object()) return absl::InvalidArgumentError(absl::StrCat(field_path, ": expected a map"));
        for (const auto& [key, value] : it->items()) {
          ProtobufWriter entry;
          entry.BytesField(1, key);
          KELPIE_RETURN_IF_ERROR(Value(f.type.element, f.type.object, 2, value, &entry, PathJoin(field_path, key), depth));
          w->BytesField(number, entry.data());
        }
      } else {
        KELPIE_RETURN_IF_ERROR(Value(f.type.kind, f.type.object, number, *it, w, field_path, depth));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Value(ValueKind kind, const std::string& object, int number, const json& v, ProtobufWriter* w,
                     const std::string& path, int depth) {
    auto mismatch = [&](const char* want) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": expected ", want, ", got ", v.type_name()));
    };
    switch (kind) {
      case ValueKind::kString:
        if (!v.is_string()) return mismatch("a string");
        w->BytesField(number, v.get_ref<const std::string&>());
        return absl::OkStatus();
      case ValueKind::kInt32:
      case ValueKind::kInt64: {
        if (!v.is_number_integer()) return mismatch("an integer");
        int64_t n = v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>()) : v.get<int64_t>();
        if (kind == ValueKind::kInt32 && (n < INT32_MIN || n > INT32_MAX)) {
          return absl::InvalidArgumentError(absl::StrCat(path, ": ", n, " does not fit in int32"));
        }
        w->IntField(number, n);
        return absl::OkStatus();
      }
      case ValueKind::kBool:
        if (!v.is_boolean()) return mismatch("a boolean");
        w->VarintField(number, v.get<bool>() ? 1 : 0);
        return absl::OkStatus();
      case ValueKind::kNumber: {
        if (!v.is_number()) return mismatch("a number");
        double d = v.get<double>();
        uint64_t bits;
        std::memcpy(&bits, &d, sizeof bits);
        w->Fixed64Field(number, bits);
        return absl::OkStatus();
      }
      case ValueKind::kBytes: {
        if (!v.is_string()) return mismatch("a base64 string");
        const std::string& text = v.get_ref<const std::string&>();
        auto decoded = text.empty() ? std::optional<std::string>("") : Base64Decode(text);
        if (!decoded) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid base64"));
        w->BytesField(number, *decoded);
        return absl::OkStatus();
      }
      case ValueKind::kIntOrString: {
        ProtobufWriter m;
        if (v.is_number_integer()) {
          int64_t n = v.get<int64_t>();
          if (n < INT32_MIN || n > INT32_MAX) {
            return absl::InvalidArgumentError(absl::StrCat(path, ": ", n, " does not fit in int32"));
          }
          m.VarintField(1, 0);
          m.IntField(2, n);
        } else if (v.is_string()) {
          m.VarintField(1, 1);
          m.VarintField(2, 0);
          m.BytesField(3, v.get_ref<const std::string&>());
        } else {
          return mismatch("an integer or a string");
        }
        w->BytesField(number, m.data());
        return absl::OkStatus();
      }
      case ValueKind::kQuantity: {
        ProtobufWriter m;
        if (v.is_string()) {
          m.BytesField(1, v.get_ref<const std::string&>());
        } else if (v.is_number()) {
          m.BytesField(1, v.dump());
        } else {
          return mismatch("a quantity");
        }
        w->BytesField(number, m.data());
        return absl::OkStatus();
      }
      case ValueKind::kTime:
      case ValueKind::kMicroTime: {
        if (!v.is_string()) return mismatch("an RFC 3339 time");
        auto t = ParseTime(v.get<std::string>());
        if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", t.status().message()));
        ProtobufWriter m;
        m.IntField(1, t->first);
        int64_t nanos = kind == ValueKind::kTime ? 0 : t->second / 1000 * 1000;
        if (nanos != 0) m.IntField(2, nanos);
        w->BytesField(number, m.data());
        return absl::OkStatus();
      }
      case ValueKind::kRaw: {
        ProtobufWriter m;
        m.BytesField(1, v.dump());
        w->BytesField(number, m.data());
        return absl::OkStatus();
      }
      case ValueKind::kObject: {
        const TypeDef* sub = codec_.schema_.FindType(object);
        if (sub == nullptr) return absl::InternalError(absl::StrCat("unknown type ", object));
        auto bytes = Message(*sub, v, path, depth + 1);
        if (!bytes.ok()) return bytes.status();
        w->BytesField(number, *bytes);
        return absl::OkStatus();
      }
      default:
        return absl::InternalError("nested lists and maps do not occur");
    }
  }

  const ProtobufCodec& codec_;
};

// ---------------------------------------------------------------- codec

ProtobufCodec::ProtobufCodec(const schema::Schema& schema) : schema_(schema) {
  for (const auto& [name, type] : schema.types()) {
    Layout& layout = layouts_[name];
    for (const auto& field : type.fields) {
      if (field.proto_path.empty()) continue;
      // A schema with a number used twice is a defect the schema tests catch;
      // the later field then stays undecodable rather than aborting here.
      (void)AddToLayout(&layout, field, 0, type);
    }
  }
}

const ProtobufCodec& ProtobufCodec::Builtin() {
  static const ProtobufCodec* codec = new ProtobufCodec(schema::Schema::Builtin());
  return *codec;
}

const TypeDef* ProtobufCodec::TypeOfKind(std::string_view api_version, std::string_view kind) const {
  std::string_view group, version = api_version;
  if (size_t slash = api_version.find('/'); slash != std::string_view::npos) {
    group = api_version.substr(0, slash);
    version = api_version.substr(slash + 1);
  }
  if (const TypeDef* root = schema_.RootType(group, version, kind)) return root;
  // Objects that are not stored kinds (autoscaling/v1 Scale) and the meta/v1
  // options every group version carries (DeleteOptions).
  for (const std::string& name : {schema::QualifiedTypeName(group, version, kind),
                                  schema::QualifiedTypeName("meta", "v1", kind)}) {
    const TypeDef* type = schema_.FindType(name);
    if (type != nullptr && type->FindField("apiVersion") != nullptr) return type;
  }
  return nullptr;
}

absl::StatusOr<json> ProtobufCodec::DecodeMessage(const TypeDef& type, std::string_view bytes) const {
  Decoder decoder(*this);
  json out = json::object();
  KELPIE_RETURN_IF_ERROR(decoder.Message(type, bytes, &out, "", 0));
  return out;
}

absl::StatusOr<std::string> ProtobufCodec::EncodeMessage(const TypeDef& type, const json& object) const {
  Encoder encoder(*this);
  return encoder.Message(type, object, "", 0);
}

absl::StatusOr<json> ProtobufCodec::DecodeObject(std::string_view body) const {
  auto envelope = ParseEnvelope(body);
  if (!envelope.ok()) return envelope.status();
  if (!envelope->content_encoding.empty()) {
    return absl::UnimplementedError(
        absl::StrCat("protobuf content encoding \"", envelope->content_encoding, "\" is not supported"));
  }
  if (!envelope->content_type.empty() && envelope->content_type != kProtobufMediaType) {
    return absl::UnimplementedError(
        absl::StrCat("the envelope's content type \"", envelope->content_type, "\" is not supported"));
  }
  if (envelope->kind.empty() || envelope->api_version.empty()) {
    return absl::InvalidArgumentError("the protobuf envelope names no apiVersion and kind");
  }
  const TypeDef* type = TypeOfKind(envelope->api_version, envelope->kind);
  if (type == nullptr) {
    return absl::UnimplementedError(absl::StrCat(envelope->kind, " (", envelope->api_version,
                                                 ") has no protobuf schema on this server; send it as JSON"));
  }
  auto object = DecodeMessage(*type, envelope->raw);
  if (!object.ok()) return object.status();
  json out = json::object();
  out["apiVersion"] = envelope->api_version;
  out["kind"] = envelope->kind;
  out.update(*object);
  return out;
}

absl::StatusOr<std::string> ProtobufCodec::EncodeObject(const json& object) const {
  if (!object.is_object()) return absl::InvalidArgumentError("expected an object");
  auto api_version = object.find("apiVersion");
  auto kind = object.find("kind");
  if (api_version == object.end() || !api_version->is_string() || kind == object.end() || !kind->is_string()) {
    return absl::InvalidArgumentError("the object has no apiVersion and kind");
  }
  const TypeDef* type = TypeOfKind(api_version->get<std::string>(), kind->get<std::string>());
  if (type == nullptr) {
    return absl::UnimplementedError(absl::StrCat(kind->get<std::string>(), " has no protobuf schema"));
  }
  auto raw = EncodeMessage(*type, object);
  if (!raw.ok()) return raw.status();
  return SerializeEnvelope(Envelope{api_version->get<std::string>(), kind->get<std::string>(), *std::move(raw), "", ""});
}

}  // namespace kelpie::api::protobuf
