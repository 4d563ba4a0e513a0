// Static bearer tokens from a CSV file (kube-apiserver's --token-auth-file):
//   token,user,uid,"group1,group2"
// One user per line; the groups column is optional; quoting follows CSV
// (RFC 4180). Blank lines and lines starting with '#' are skipped. The file
// is read once at start.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "orchestrator/apiserver/authenticator.h"

namespace kelpie::apiserver {

class StaticTokenAuthenticator : public TokenAuthenticator {
 public:
  // Errors name the file and line: "tokens.csv:3: ...".
  static absl::StatusOr<std::unique_ptr<StaticTokenAuthenticator>> FromFile(const std::string& path);
  // `name` is what errors call the input.
  static absl::StatusOr<std::unique_ptr<StaticTokenAuthenticator>> Parse(const std::string& contents,
                                                                         const std::string& name);

  AuthenticationResult AuthenticateToken(const std::string& token,
                                         const std::vector<std::string>& audiences) override;

  size_t size() const { return users_.size(); }

 private:
  std::map<std::string, UserInfo> users_;  // by token
};

}  // namespace kelpie::apiserver
