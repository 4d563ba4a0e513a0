#include "orchestrator/apiserver/token_file.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"

namespace kelpie::apiserver {
namespace {

// Splits one CSV record. Leading spaces of a field are dropped (as Go's
// csv.Reader with TrimLeadingSpace, which kube-apiserver uses).
absl::StatusOr<std::vector<std::string>> SplitCsvLine(const std::string& line) {
  std::vector<std::string> fields;
  size_t i = 0;
  const size_t n = line.size();
  while (true) {
    while (i < n && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::string field;
    if (i < n && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < n) {
        if (line[i] == '"') {
          if (i + 1 < n && line[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        field += line[i++];
      }
      if (!closed) return absl::InvalidArgumentError("a quoted field is not closed");
      if (i < n && line[i] != ',') {
        return absl::InvalidArgumentError(absl::StrCat("unexpected '", std::string(1, line[i]),
                                                       "' after a quoted field"));
      }
    } else {
      while (i < n && line[i] != ',') {
        if (line[i] == '"') return absl::InvalidArgumentError("a '\"' inside an unquoted field");
        field += line[i++];
      }
    }
    fields.push_back(std::move(field));
    if (i >= n) break;
    ++i;  // the comma
  }
  return fields;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StaticTokenAuthenticator>> StaticTokenAuthenticator::FromFile(
    const std::string& path) {
  auto contents = ReadFileToString(path);
  if (!contents.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, ": ", contents.status().message()));
  }
  return Parse(*contents, path);
}

absl::StatusOr<std::unique_ptr<StaticTokenAuthenticator>> StaticTokenAuthenticator::Parse(
    const std::string& contents, const std::string& name) {
  auto out = std::unique_ptr<StaticTokenAuthenticator>(new StaticTokenAuthenticator());
  std::map<std::string, int> line_of_token;
  std::vector<std::string> lines = absl::StrSplit(contents, '\n');
  for (size_t li = 0; li < lines.size(); ++li) {
    const int line_no = static_cast<int>(li) + 1;
    std::string line = lines[li];
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string trimmed = std::string(absl::StripAsciiWhitespace(line));
    if (trimmed.empty() || trimmed[0] == '#') continue;
    auto where = [&] { return absl::StrCat(name, ":", line_no, ": "); };
    auto fields = SplitCsvLine(line);
    if (!fields.ok()) return absl::InvalidArgumentError(absl::StrCat(where(), fields.status().message()));
    if (fields->size() < 3) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "expected at least 3 columns (token, user name, user uid), found ",
                                                     fields->size()));
    }
    if (fields->size() > 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(), "expected at most 4 columns (token, user name, user uid, \"group1,group2\"), found ",
          fields->size(), "; quote the groups column when it lists several groups"));
    }
    std::string token = std::string(absl::StripAsciiWhitespace((*fields)[0]));
    UserInfo user;
    user.name = std::string(absl::StripAsciiWhitespace((*fields)[1]));
    user.uid = std::string(absl::StripAsciiWhitespace((*fields)[2]));
    if (token.empty()) return absl::InvalidArgumentError(absl::StrCat(where(), "the token is empty"));
    if (user.name.empty()) return absl::InvalidArgumentError(absl::StrCat(where(), "the user name is empty"));
    if (fields->size() == 4) {
      for (absl::string_view g : absl::StrSplit((*fields)[3], ',')) {
        std::string group = std::string(absl::StripAsciiWhitespace(g));
        if (!group.empty()) user.AddGroup(group);
      }
    }
    auto [it, inserted] = line_of_token.emplace(token, line_no);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "the same token as line ", it->second, " (every token must be unique)"));
    }
    out->users_[token] = std::move(user);
  }
  return out;
}

AuthenticationResult StaticTokenAuthenticator::AuthenticateToken(const std::string& token,
                                                                 const std::vector<std::string>& /*audiences*/) {
  auto it = users_.find(token);
  if (it == users_.end()) return AuthenticationResult::NoCredentials();
  return AuthenticationResult::Authenticated(it->second);
}

}  // namespace kelpie::apiserver
