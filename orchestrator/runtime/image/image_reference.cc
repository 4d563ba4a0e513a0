#include "orchestrator/runtime/image/image_reference.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "orchestrator/runtime/image/digest.h"

namespace kelpie::image {
namespace {

absl::Status Invalid(absl::string_view reference, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("invalid image reference \"", reference, "\": ", why));
}

bool IsAlnumLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// A path component: lowercase alphanumerics separated by '.', '_', '__' or '-'s.
bool ValidPathComponent(absl::string_view c) {
  if (c.empty() || !IsAlnumLower(c.front()) || !IsAlnumLower(c.back())) return false;
  for (char ch : c) {
    if (!IsAlnumLower(ch) && ch != '.' && ch != '_' && ch != '-') return false;
  }
  return true;
}

bool ValidTag(absl::string_view tag) {
  if (tag.empty() || tag.size() > 128 || tag.front() == '.' || tag.front() == '-') return false;
  for (char ch : tag) {
    bool word = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                ch == '_';
    if (!word && ch != '.' && ch != '-') return false;
  }
  return true;
}

bool ValidDomain(absl::string_view domain) {
  if (domain.empty()) return false;
  for (char ch : domain) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> NormalizeReference(absl::string_view reference) {
  if (reference.empty()) return Invalid(reference, "empty");
  absl::string_view rest = reference;
  std::string digest;
  if (auto at = rest.find('@'); at != absl::string_view::npos) {
    digest = std::string(rest.substr(at + 1));
    if (!ValidateDigest(digest).ok()) return Invalid(reference, "bad digest after '@'");
    rest = rest.substr(0, at);
  }
  std::string tag;
  auto last_slash = rest.rfind('/');
  auto colon = rest.rfind(':');
  if (colon != absl::string_view::npos && (last_slash == absl::string_view::npos || colon > last_slash)) {
    tag = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (!ValidTag(tag)) return Invalid(reference, absl::StrCat("bad tag \"", tag, "\""));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(rest, '/');
  std::string domain = "docker.io";
  if (parts.size() > 1 && (parts[0].find('.') != absl::string_view::npos ||
                           parts[0].find(':') != absl::string_view::npos || parts[0] == "localhost")) {
    domain = std::string(parts[0]);
    if (!ValidDomain(domain)) return Invalid(reference, absl::StrCat("bad registry \"", domain, "\""));
    parts.erase(parts.begin());
  }
  if (domain == "index.docker.io" || domain == "registry-1.docker.io") domain = "docker.io";
  for (absl::string_view part : parts) {
    if (!ValidPathComponent(part)) {
      return Invalid(reference, absl::StrCat("bad name component \"", part,
                                             "\" (lowercase letters, digits and . _ - only)"));
    }
  }
  std::string path = absl::StrJoin(parts, "/");
  if (domain == "docker.io" && parts.size() == 1) path = "library/" + path;
  std::string out = absl::StrCat(domain, "/", path);
  if (!digest.empty()) {
    if (!tag.empty()) absl::StrAppend(&out, ":", tag);
    absl::StrAppend(&out, "@", digest);
  } else {
    absl::StrAppend(&out, ":", tag.empty() ? "latest" : tag);
  }
  return out;
}

}  // namespace kelpie::image
