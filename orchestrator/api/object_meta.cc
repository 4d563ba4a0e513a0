#include "orchestrator/api/object_meta.h"

#include <openssl/rand.h>

#include <cctype>
#include <cstdio>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "orchestrator/api/selector.h"

namespace kelpie::api {
namespace {

bool IsLowerAlnum(char c) {
  return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c));
}

constexpr size_t kMaxAnnotationBytes = 256 * 1024;

}  // namespace

bool IsDns1123Label(const std::string& s) {
  if (s.empty() || s.size() > 63 || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

bool IsDns1123Subdomain(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string label = s.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!IsDns1123Label(label)) return false;
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

std::vector<StatusCause> ValidateObjectMeta(const nlohmann::json& object, const ResourceType& type,
                                            bool creating) {
  std::vector<StatusCause> causes;
  auto meta_it = object.find("metadata");
  if (meta_it == object.end() || !meta_it->is_object()) {
    causes.push_back({"FieldValueRequired", "Required value", "metadata"});
    return causes;
  }
  const nlohmann::json& meta = *meta_it;
  std::string name = meta.value("name", "");
  std::string generate = meta.value("generateName", "");
  if (name.empty()) {
    if (!(creating && !generate.empty())) {
      causes.push_back({"FieldValueRequired", "name or generateName is required", "metadata.name"});
    }
  } else {
    bool ok = type.name_is_dns_label ? IsDns1123Label(name) : IsDns1123Subdomain(name);
    if (!ok) {
      causes.push_back(
          {"FieldValueInvalid",
           absl::StrCat("Invalid value: \"", name, "\": ",
                        type.name_is_dns_label
                            ? "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                              "characters or '-', and must start and end with an alphanumeric "
                              "character (e.g. 'my-name',  or '123-abc', regex used for validation "
                              "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                            : "a lowercase RFC 1123 subdomain must consist of lower case "
                              "alphanumeric characters, '-' or '.', and must start and end with an "
                              "alphanumeric character (e.g. 'example.com', regex used for "
                              "validation is "
                              "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
           "metadata.name"});
    }
  }
  if (auto labels = meta.find("labels"); labels != meta.end() && !labels->is_null()) {
    if (!labels->is_object()) {
      causes.push_back({"FieldValueInvalid", "must be a map of strings", "metadata.labels"});
    } else {
      for (auto& [k, v] : labels->items()) {
        std::string why;
        if (!IsQualifiedName(k, &why)) {
          causes.push_back({"FieldValueInvalid", absl::StrCat("Invalid value: \"", k, "\": ", why),
                            "metadata.labels"});
        }
        if (!v.is_string()) {
          causes.push_back({"FieldValueInvalid", "label values must be strings",
                            absl::StrCat("metadata.labels[", k, "]")});
        } else if (!IsValidLabelValue(v.get<std::string>(), &why)) {
          causes.push_back({"FieldValueInvalid",
                            absl::StrCat("Invalid value: \"", v.get<std::string>(), "\": ", why),
                            "metadata.labels"});
        }
      }
    }
  }
  if (auto ann = meta.find("annotations"); ann != meta.end() && !ann->is_null()) {
    if (!ann->is_object()) {
      causes.push_back({"FieldValueInvalid", "must be a map of strings", "metadata.annotations"});
    } else {
      size_t total = 0;
      for (auto& [k, v] : ann->items()) {
        std::string why;
        if (!IsQualifiedName(k, &why)) {
          causes.push_back({"FieldValueInvalid", absl::StrCat("Invalid value: \"", k, "\": ", why),
                            "metadata.annotations"});
        }
        if (!v.is_string()) {
          causes.push_back({"FieldValueInvalid", "annotation values must be strings",
                            absl::StrCat("metadata.annotations[", k, "]")});
        } else {
          total += k.size() + v.get_ref<const std::string&>().size();
        }
      }
      if (total > kMaxAnnotationBytes) {
        causes.push_back({"FieldValueTooLong",
                          absl::StrCat("Too long: must have at most ", kMaxAnnotationBytes, " bytes"),
                          "metadata.annotations"});
      }
    }
  }
  if (auto f = meta.find("finalizers"); f != meta.end() && !f->is_null()) {
    if (!f->is_array()) {
      causes.push_back({"FieldValueInvalid", "must be a list of strings", "metadata.finalizers"});
    } else {
      for (const auto& x : *f) {
        std::string why;
        if (!x.is_string() || !IsQualifiedName(x.get<std::string>(), &why)) {
          causes.push_back({"FieldValueInvalid", "finalizers must be qualified names",
                            "metadata.finalizers"});
          break;
        }
      }
    }
  }
  return causes;
}

std::string NewUid() {
  unsigned char b[16];
  RAND_bytes(b, sizeof(b));
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  return absl::StrFormat("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                         b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
                         b[13], b[14], b[15]);
}

std::string RandomNameSuffix() {
  // Kubernetes leaves out vowels and look-alike characters.
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  unsigned char b[5];
  RAND_bytes(b, sizeof(b));
  std::string out;
  for (unsigned char c : b) out.push_back(kAlphabet[c % (sizeof(kAlphabet) - 1)]);
  return out;
}

std::string NowRfc3339(int64_t offset_seconds) {
  std::time_t t = std::time(nullptr) + offset_seconds;
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string WithResourceVersion(std::string_view stored, int64_t rv) {
  std::string out;
  out.reserve(stored.size() + 48);
  AppendWithResourceVersion(stored, rv, &out);
  return out;
}

namespace {
constexpr std::string_view kMeta = "\"metadata\":{";

// Where the object's own "metadata":{ starts. Keys are stored sorted, so a
// member before "metadata" may hold a nested metadata of its own (a
// ControllerRevision's data.spec.template): only a key at depth 1 counts.
size_t FindTopLevelMetadata(std::string_view s) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      if (depth == 1 && s.compare(i, kMeta.size(), kMeta) == 0) return i;
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return std::string_view::npos;
}
}  // namespace

void AppendWithResourceVersion(std::string_view stored, int64_t rv, std::string* out) {
  size_t pos = FindTopLevelMetadata(stored);
  char rv_field[64];
  int rv_len = std::snprintf(rv_field, sizeof(rv_field), "\"resourceVersion\":\"%lld\"", static_cast<long long>(rv));
  std::string_view rv_view(rv_field, static_cast<size_t>(rv_len));
  if (pos == std::string_view::npos) {
    // No metadata object (never stored by us): add one.
    size_t brace = stored.find('{');
    out->append(stored.substr(0, brace + 1));
    out->append("\"metadata\":{").append(rv_view).append("}");
    std::string_view rest = stored.substr(brace + 1);
    if (!rest.empty() && rest.front() != '}') out->push_back(',');
    out->append(rest);
    return;
  }
  size_t insert_at = pos + kMeta.size();
  out->append(stored.substr(0, insert_at));
  out->append(rv_view);
  if (insert_at < stored.size() && stored[insert_at] != '}') out->push_back(',');
  out->append(stored.substr(insert_at));
}

namespace {

const char* JsonTypeName(const nlohmann::json& v) {
  if (v.is_string()) return "string";
  if (v.is_boolean()) return "bool";
  if (v.is_number()) return "number";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "null";
}

absl::Status WrongType(const nlohmann::json& v, const std::string& go_field, const std::string& go_type) {
  return absl::InvalidArgumentError(absl::StrCat("json: cannot unmarshal ", JsonTypeName(v),
                                                 " into Go struct field ", go_field, " of type ", go_type));
}

// Drops `key` when null; checks its type otherwise.
absl::Status CheckMember(nlohmann::json& parent, const char* key, const std::string& go_field,
                         const std::string& go_type, bool (nlohmann::json::*is_type)() const noexcept) {
  auto it = parent.find(key);
  if (it == parent.end()) return absl::OkStatus();
  if (it->is_null()) {
    parent.erase(it);
    return absl::OkStatus();
  }
  if (!((*it).*is_type)()) return WrongType(*it, go_field, go_type);
  return absl::OkStatus();
}

absl::Status CheckStringMap(nlohmann::json& parent, const char* key, const std::string& go_field) {
  if (auto st = CheckMember(parent, key, go_field, "map[string]string", &nlohmann::json::is_object); !st.ok()) {
    return st;
  }
  auto it = parent.find(key);
  if (it == parent.end()) return absl::OkStatus();
  for (auto& [k, v] : it->items()) {
    if (!v.is_string()) return WrongType(v, go_field, "map[string]string");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status NormalizeObjectShape(nlohmann::json& object) {
  if (!object.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("json: cannot unmarshal ", JsonTypeName(object),
                                                   " into Go value of type struct (an object is required)"));
  }
  using J = nlohmann::json;
  for (const char* key : {"apiVersion", "kind"}) {
    if (auto st = CheckMember(object, key, absl::StrCat("TypeMeta.", key), "string", &J::is_string); !st.ok()) {
      return st;
    }
  }
  if (auto st = CheckMember(object, "metadata", "metadata", "v1.ObjectMeta", &J::is_object); !st.ok()) return st;
  auto meta_it = object.find("metadata");
  if (meta_it == object.end()) return absl::OkStatus();
  J& meta = *meta_it;
  for (const char* key : {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
                          "creationTimestamp", "deletionTimestamp"}) {
    std::string go_field = absl::StrCat("ObjectMeta.metadata.", key);
    if (auto st = CheckMember(meta, key, go_field, "string", &J::is_string); !st.ok()) return st;
  }
  for (const char* key : {"generation", "deletionGracePeriodSeconds"}) {
    std::string go_field = absl::StrCat("ObjectMeta.metadata.", key);
    if (auto st = CheckMember(meta, key, go_field, "int64", &J::is_number_integer); !st.ok()) return st;
  }
  for (const char* key : {"labels", "annotations"}) {
    if (auto st = CheckStringMap(meta, key, absl::StrCat("ObjectMeta.metadata.", key)); !st.ok()) return st;
  }
  if (auto st = CheckMember(meta, "finalizers", "ObjectMeta.metadata.finalizers", "[]string", &J::is_array);
      !st.ok()) {
    return st;
  }
  if (auto it = meta.find("finalizers"); it != meta.end()) {
    for (const auto& f : *it) {
      if (!f.is_string()) return WrongType(f, "ObjectMeta.metadata.finalizers", "string");
    }
  }
  for (const char* key : {"ownerReferences", "managedFields"}) {
    std::string go_field = absl::StrCat("ObjectMeta.metadata.", key);
    if (auto st = CheckMember(meta, key, go_field, "[]object", &J::is_array); !st.ok()) return st;
    if (auto it = meta.find(key); it != meta.end()) {
      for (const auto& entry : *it) {
        if (!entry.is_object()) return WrongType(entry, go_field, "object");
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace kelpie::api
