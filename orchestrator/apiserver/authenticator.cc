#include "orchestrator/apiserver/authenticator.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"

namespace kelpie::apiserver {

RequestAuthenticator::RequestAuthenticator(std::vector<std::string> api_audiences)
    : api_audiences_(std::move(api_audiences)) {}

void RequestAuthenticator::AddTokenAuthenticator(std::shared_ptr<TokenAuthenticator> authenticator) {
  token_authenticators_.push_back(std::move(authenticator));
}

AuthenticationResult RequestAuthenticator::Authenticate(const http::HttpRequest& request) const {
  if (request.peer.has_client_certificate) {
    // The TLS layer verified the chain against the cluster CA.
    UserInfo user;
    user.name = request.peer.common_name;
    user.groups = request.peer.organizations;
    user.AddGroup(kSystemAuthenticated);
    return AuthenticationResult::Authenticated(std::move(user));
  }
  const std::string* header = request.Header("authorization");
  if (header == nullptr) return AuthenticationResult::NoCredentials();
  std::string value = std::string(absl::StripAsciiWhitespace(*header));
  if (!absl::StartsWithIgnoreCase(value, "bearer ")) {
    // Basic auth and other schemes are not accepted: treat the header as
    // absent, as kube-apiserver does when no authenticator handles it.
    return AuthenticationResult::NoCredentials();
  }
  std::string token = std::string(absl::StripAsciiWhitespace(value.substr(7)));
  if (token.empty()) return AuthenticationResult::NoCredentials();
  return AuthenticateToken(token, {});
}

AuthenticationResult RequestAuthenticator::AuthenticateToken(const std::string& token,
                                                             const std::vector<std::string>& audiences) const {
  const std::vector<std::string>& wanted = audiences.empty() ? api_audiences_ : audiences;
  std::vector<std::string> errors;
  for (const auto& a : token_authenticators_) {
    AuthenticationResult r = a->AuthenticateToken(token, wanted);
    if (r.authenticated()) {
      r.user.AddGroup(kSystemAuthenticated);
      return r;
    }
    if (r.outcome == AuthenticationResult::Outcome::kRejected) errors.push_back(r.error);
  }
  if (errors.empty()) return AuthenticationResult::Rejected("invalid bearer token");
  return AuthenticationResult::Rejected(absl::StrJoin(errors, "; "));
}

}  // namespace kelpie::apiserver
