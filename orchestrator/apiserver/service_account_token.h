// Service-account tokens: JWTs (RS256) that the API server signs with its
// service-account key and accepts as bearer tokens, in the claim layout of
// Kubernetes' bound service-account tokens:
//   iss, sub (system:serviceaccount:<ns>:<name>), aud, exp, iat, nbf, jti,
//   kubernetes.io: {namespace, serviceaccount: {name, uid}, pod?: {name, uid}}
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "orchestrator/apiserver/authenticator.h"

namespace kelpie::store {
class Store;
}

namespace kelpie::apiserver {

struct ServiceAccountClaims {
  std::string issuer;
  std::vector<std::string> audiences;
  int64_t issued_at = 0;   // seconds since the epoch
  int64_t not_before = 0;
  int64_t expires_at = 0;
  std::string token_id;    // jti
  std::string namespace_name;
  std::string service_account_name;
  std::string service_account_uid;
  std::string pod_name;  // set when the token is bound to a pod
  std::string pod_uid;

  std::string Subject() const;
};

class ServiceAccountTokenSigner {
 public:
  // `private_key_pem`: an RSA key (sa.key).
  static absl::StatusOr<std::unique_ptr<ServiceAccountTokenSigner>> FromPem(const std::string& private_key_pem);
  ~ServiceAccountTokenSigner();

  absl::StatusOr<std::string> Sign(const ServiceAccountClaims& claims) const;
  // The JWT header's kid: base64url(SHA-256 of the DER public key), as
  // kube-apiserver computes it.
  const std::string& key_id() const { return key_id_; }

 private:
  ServiceAccountTokenSigner() = default;
  struct Key;
  std::unique_ptr<Key> key_;
  std::string key_id_;
};

class ServiceAccountTokenVerifier {
 public:
  // `public_key_pem`: sa.pub.
  static absl::StatusOr<std::unique_ptr<ServiceAccountTokenVerifier>> FromPem(const std::string& public_key_pem);
  ~ServiceAccountTokenVerifier();

  // Decodes the claims without checking anything; fails when `token` is
  // not a JWT with Kubernetes' claims.
  static absl::StatusOr<ServiceAccountClaims> Peek(const std::string& token);

  // Checks the signature, issuer, time window (60 s leeway, as Kubernetes
  // allows) and that the token is meant for one of `audiences`; returns the
  // claims with `audiences` narrowed to the matching ones.
  absl::StatusOr<ServiceAccountClaims> Verify(const std::string& token, const std::string& issuer,
                                              const std::vector<std::string>& audiences,
                                              std::chrono::system_clock::time_point now) const;

 private:
  ServiceAccountTokenVerifier() = default;
  struct Key;
  std::unique_ptr<Key> key_;
};

// Whether a token's service account (and bound pod) still exist with the
// uids the token names. kNotFound / kFailedPrecondition with a message when
// not.
class ServiceAccountLookup {
 public:
  virtual ~ServiceAccountLookup() = default;
  virtual absl::Status Check(const ServiceAccountClaims& claims) = 0;
};

// Reads the objects from the store (/registry/serviceaccounts/<ns>/<name>,
// /registry/pods/<ns>/<name>); objects being deleted no longer count.
std::unique_ptr<ServiceAccountLookup> StoreServiceAccountLookup(store::Store& store);

// Authenticates service-account JWTs of `issuer`; tokens of another issuer
// (or not JWTs) are left to the next authenticator.
class ServiceAccountTokenAuthenticator : public TokenAuthenticator {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;
  ServiceAccountTokenAuthenticator(std::shared_ptr<const ServiceAccountTokenVerifier> verifier, std::string issuer,
                                   std::shared_ptr<ServiceAccountLookup> lookup, Clock clock = nullptr);

  AuthenticationResult AuthenticateToken(const std::string& token,
                                         const std::vector<std::string>& audiences) override;

 private:
  std::shared_ptr<const ServiceAccountTokenVerifier> verifier_;
  std::string issuer_;
  std::shared_ptr<ServiceAccountLookup> lookup_;
  Clock clock_;
};

}  // namespace kelpie::apiserver
