// Authentication: who sent a request. Client certificates from the cluster
// CA come first (CN the user, O the groups), then bearer tokens through each
// TokenAuthenticator in turn (static token file, service-account JWTs).
//
// As in kube-apiserver: a request with no credentials is anonymous (the
// caller decides what anonymous may reach); a bearer token that no
// authenticator accepts is rejected (401), never downgraded to anonymous.
// Every authenticated user is also in system:authenticated.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/http/http_message.h"
#include "orchestrator/apiserver/user_info.h"

namespace kelpie::apiserver {

struct AuthenticationResult {
  enum class Outcome {
    kNoCredentials,  // nothing this authenticator recognises
    kAuthenticated,
    kRejected,  // credentials were presented and are not valid
  };
  Outcome outcome = Outcome::kNoCredentials;
  UserInfo user;
  // For tokens: the audiences the token is valid for among those asked
  // for (empty when the authenticator does not scope tokens by audience).
  std::vector<std::string> audiences;
  // Why a credential was rejected; logged and shown in TokenReview status,
  // never sent to an unauthenticated client.
  std::string error;

  bool authenticated() const { return outcome == Outcome::kAuthenticated; }
  static AuthenticationResult NoCredentials() { return {}; }
  static AuthenticationResult Rejected(std::string why) {
    AuthenticationResult r;
    r.outcome = Outcome::kRejected;
    r.error = std::move(why);
    return r;
  }
  static AuthenticationResult Authenticated(UserInfo user) {
    AuthenticationResult r;
    r.outcome = Outcome::kAuthenticated;
    r.user = std::move(user);
    return r;
  }
};

class TokenAuthenticator {
 public:
  virtual ~TokenAuthenticator() = default;
  // kNoCredentials when `token` is not of this authenticator's kind (the
  // next one gets it); kRejected when it is but is invalid. `audiences`
  // are the audiences the caller accepts (the API's own for requests, a
  // TokenReview's spec.audiences).
  virtual AuthenticationResult AuthenticateToken(const std::string& token,
                                                 const std::vector<std::string>& audiences) = 0;
};

class RequestAuthenticator {
 public:
  // `api_audiences`: the audiences a bearer token must be meant for to
  // authenticate API requests (kube-apiserver's --api-audiences).
  explicit RequestAuthenticator(std::vector<std::string> api_audiences = {});

  void AddTokenAuthenticator(std::shared_ptr<TokenAuthenticator> authenticator);

  // Client certificate first, then `Authorization: Bearer <token>`.
  AuthenticationResult Authenticate(const http::HttpRequest& request) const;

  // A bare token (TokenReview); empty `audiences` means the API's own.
  AuthenticationResult AuthenticateToken(const std::string& token,
                                         const std::vector<std::string>& audiences) const;

  const std::vector<std::string>& api_audiences() const { return api_audiences_; }

 private:
  std::vector<std::string> api_audiences_;
  std::vector<std::shared_ptr<TokenAuthenticator>> token_authenticators_;
};

}  // namespace kelpie::apiserver
