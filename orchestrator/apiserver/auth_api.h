// The API server's own authentication and authorization endpoints, answered
// from the authenticator, the authorizer and the token signer (never stored):
//   POST /api/v1/namespaces/NS/serviceaccounts/NAME/token        TokenRequest
//   POST /apis/authentication.k8s.io/v1/tokenreviews               TokenReview
//   POST /apis/authentication.k8s.io/v1/selfsubjectreviews         SelfSubjectReview
//   POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews    SelfSubjectAccessReview
//   POST /apis/authorization.k8s.io/v1/subjectaccessreviews        SubjectAccessReview
//   POST /apis/authorization.k8s.io/v1/namespaces/NS/localsubjectaccessreviews
//   POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews     SelfSubjectRulesReview
// Bodies are JSON or Kubernetes protobuf (what kubectl's typed clients send).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/http/http_message.h"
#include "orchestrator/apiserver/authenticator.h"
#include "orchestrator/apiserver/authorizer.h"
#include "orchestrator/apiserver/request_info.h"
#include "orchestrator/apiserver/service_account_token.h"
#include "orchestrator/store/store.h"

namespace kelpie::apiserver {

struct AuthApiOptions {
  std::string issuer;
  // Default audiences of issued tokens (the API's own).
  std::vector<std::string> api_audiences;
};

class AuthApi {
 public:
  // Any of `signer`, `authenticator`, `authorizer` may be null: the
  // endpoints needing them answer 404 then. All must outlive the AuthApi.
  AuthApi(AuthApiOptions options, store::Store& store, const ServiceAccountTokenSigner* signer,
          const RequestAuthenticator* authenticator, const Authorizer* authorizer);

  // True when the request addresses one of these endpoints (the caller
  // authenticates and authorizes it as usual, then calls Serve).
  static bool Handles(const RequestInfo& info);

  // `user` is who the request acts as (after impersonation).
  void Serve(const RequestInfo& info, const UserInfo& user, const http::HttpRequest& request,
             http::HttpResponder& responder);

 private:
  void TokenRequest(const RequestInfo& info, const nlohmann::json& body, http::HttpResponder& responder);
  void TokenReview(const nlohmann::json& body, http::HttpResponder& responder);
  void SelfSubjectReview(const UserInfo& user, const nlohmann::json& body, http::HttpResponder& responder);
  void AccessReview(const RequestInfo& info, const UserInfo& user, nlohmann::json body,
                    http::HttpResponder& responder);
  void RulesReview(const UserInfo& user, nlohmann::json body, http::HttpResponder& responder);

  AuthApiOptions options_;
  store::Store& store_;
  const ServiceAccountTokenSigner* signer_;
  const RequestAuthenticator* authenticator_;
  const Authorizer* authorizer_;
};

// The TokenRequest handler's rules, exposed for tests: expirationSeconds
// defaults to 3600 and must be at least 600 and at most 2^32.
inline constexpr int64_t kDefaultTokenExpirationSeconds = 3600;
inline constexpr int64_t kMinTokenExpirationSeconds = 600;

}  // namespace kelpie::apiserver
