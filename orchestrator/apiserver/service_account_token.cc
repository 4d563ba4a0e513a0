#include "orchestrator/apiserver/service_account_token.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base64.h"
#include "common/tls/openssl_errors.h"
#include "orchestrator/store/store.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;

constexpr int64_t kLeewaySeconds = 60;

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string Base64UrlEncode(const std::string& in) {
  std::string s = Base64Encode(in);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (auto& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return s;
}

std::optional<std::string> Base64UrlDecode(std::string s) {
  for (auto& c : s) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || c == '=') {
      return std::nullopt;  // not the URL alphabet
    }
  }
  if (s.size() % 4 == 1) return std::nullopt;
  while (s.size() % 4 != 0) s += '=';
  return Base64Decode(s);
}

json ClaimsJson(const ServiceAccountClaims& c) {
  json k8s = {{"namespace", c.namespace_name},
              {"serviceaccount", {{"name", c.service_account_name}, {"uid", c.service_account_uid}}}};
  if (!c.pod_name.empty()) k8s["pod"] = {{"name", c.pod_name}, {"uid", c.pod_uid}};
  json j = {{"aud", c.audiences},  {"exp", c.expires_at}, {"iat", c.issued_at},
            {"iss", c.issuer},     {"nbf", c.not_before}, {"sub", c.Subject()},
            {"kubernetes.io", k8s}};
  if (!c.token_id.empty()) j["jti"] = c.token_id;
  return j;
}

absl::StatusOr<ServiceAccountClaims> ClaimsFromJson(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("the token's claims are not a JSON object");
  ServiceAccountClaims c;
  auto str = [&](const json& o, const char* k) {
    auto it = o.find(k);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto num = [&](const char* k) -> int64_t {
    auto it = j.find(k);
    return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
  };
  c.issuer = str(j, "iss");
  c.token_id = str(j, "jti");
  c.issued_at = num("iat");
  c.not_before = num("nbf");
  c.expires_at = num("exp");
  auto aud = j.find("aud");
  if (aud != j.end()) {
    if (aud->is_string()) {
      c.audiences.push_back(aud->get<std::string>());
    } else if (aud->is_array()) {
      for (const auto& a : *aud) {
        if (a.is_string()) c.audiences.push_back(a.get<std::string>());
      }
    }
  }
  auto k8s = j.find("kubernetes.io");
  if (k8s == j.end() || !k8s->is_object()) {
    return absl::InvalidArgumentError("the token has no kubernetes.io claim");
  }
  c.namespace_name = str(*k8s, "namespace");
  auto sa = k8s->find("serviceaccount");
  if (sa != k8s->end() && sa->is_object()) {
    c.service_account_name = str(*sa, "name");
    c.service_account_uid = str(*sa, "uid");
  }
  auto pod = k8s->find("pod");
  if (pod != k8s->end() && pod->is_object()) {
    c.pod_name = str(*pod, "name");
    c.pod_uid = str(*pod, "uid");
  }
  if (c.namespace_name.empty() || c.service_account_name.empty()) {
    return absl::InvalidArgumentError("the token names no service account");
  }
  if (str(j, "sub") != c.Subject()) {
    return absl::InvalidArgumentError("the token's subject does not match its service account");
  }
  return c;
}

struct Parts {
  std::string header_b64, payload_b64, signature;
  json header, payload;
};

absl::StatusOr<Parts> SplitJwt(const std::string& token) {
  std::vector<std::string> segs = absl::StrSplit(token, '.');
  if (segs.size() != 3) return absl::InvalidArgumentError("not a JWT");
  Parts p;
  p.header_b64 = segs[0];
  p.payload_b64 = segs[1];
  auto h = Base64UrlDecode(segs[0]);
  auto b = Base64UrlDecode(segs[1]);
  auto s = Base64UrlDecode(segs[2]);
  if (!h || !b || !s) return absl::InvalidArgumentError("not a JWT (bad base64url)");
  p.header = json::parse(*h, nullptr, false);
  p.payload = json::parse(*b, nullptr, false);
  if (p.header.is_discarded() || p.payload.is_discarded()) return absl::InvalidArgumentError("not a JWT (bad JSON)");
  p.signature = std::move(*s);
  return p;
}

}  // namespace

std::string ServiceAccountClaims::Subject() const {
  return ServiceAccountUserName(namespace_name, service_account_name);
}

struct ServiceAccountTokenSigner::Key {
  PkeyPtr pkey;
};
struct ServiceAccountTokenVerifier::Key {
  PkeyPtr pkey;
};

ServiceAccountTokenSigner::~ServiceAccountTokenSigner() = default;
ServiceAccountTokenVerifier::~ServiceAccountTokenVerifier() = default;

absl::StatusOr<std::unique_ptr<ServiceAccountTokenSigner>> ServiceAccountTokenSigner::FromPem(
    const std::string& private_key_pem) {
  std::unique_ptr<BIO, BioFree> in(BIO_new_mem_buf(private_key_pem.data(), static_cast<int>(private_key_pem.size())));
  PkeyPtr key(in ? PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return absl::InvalidArgumentError(absl::StrCat("not a PEM private key: ", tls::OpenSslErrors()));
  if (EVP_PKEY_base_id(key.get()) != EVP_PKEY_RSA) {
    return absl::InvalidArgumentError("service-account tokens are signed with RS256: the key must be RSA");
  }
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key.get(), &der);
  if (len <= 0) return absl::InternalError(absl::StrCat("encoding the public key: ", tls::OpenSslErrors()));
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<size_t>(len), digest);
  OPENSSL_free(der);
  auto signer = std::unique_ptr<ServiceAccountTokenSigner>(new ServiceAccountTokenSigner());
  signer->key_ = std::make_unique<Key>();
  signer->key_->pkey = std::move(key);
  signer->key_id_ = Base64UrlEncode(std::string(reinterpret_cast<char*>(digest), sizeof(digest)));
  return signer;
}

absl::StatusOr<std::string> ServiceAccountTokenSigner::Sign(const ServiceAccountClaims& claims) const {
  json header = {{"alg", "RS256"}, {"kid", key_id_}};
  std::string signing_input = absl::StrCat(Base64UrlEncode(header.dump()), ".", Base64UrlEncode(ClaimsJson(claims).dump()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t sig_len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_->pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &sig_len, reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    return absl::InternalError(absl::StrCat("signing a token: ", tls::OpenSslErrors()));
  }
  std::string sig(sig_len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1) {
    return absl::InternalError(absl::StrCat("signing a token: ", tls::OpenSslErrors()));
  }
  sig.resize(sig_len);
  return absl::StrCat(signing_input, ".", Base64UrlEncode(sig));
}

absl::StatusOr<std::unique_ptr<ServiceAccountTokenVerifier>> ServiceAccountTokenVerifier::FromPem(
    const std::string& public_key_pem) {
  std::unique_ptr<BIO, BioFree> in(BIO_new_mem_buf(public_key_pem.data(), static_cast<int>(public_key_pem.size())));
  PkeyPtr key(in ? PEM_read_bio_PUBKEY(in.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return absl::InvalidArgumentError(absl::StrCat("not a PEM public key: ", tls::OpenSslErrors()));
  if (EVP_PKEY_base_id(key.get()) != EVP_PKEY_RSA) {
    return absl::InvalidArgumentError("service-account tokens are verified with RS256: the key must be RSA");
  }
  auto v = std::unique_ptr<ServiceAccountTokenVerifier>(new ServiceAccountTokenVerifier());
  v->key_ = std::make_unique<Key>();
  v->key_->pkey = std::move(key);
  return v;
}

absl::StatusOr<ServiceAccountClaims> ServiceAccountTokenVerifier::Peek(const std::string& token) {
  auto parts = SplitJwt(token);
  if (!parts.ok()) return parts.status();
  return ClaimsFromJson(parts->payload);
}

absl::StatusOr<ServiceAccountClaims> ServiceAccountTokenVerifier::Verify(
    const std::string& token, const std::string& issuer, const std::vector<std::string>& audiences,
    std::chrono::system_clock::time_point now) const {
  auto parts = SplitJwt(token);
  if (!parts.ok()) return parts.status();
  if (parts->header.value("alg", "") != "RS256") {
    return absl::UnauthenticatedError("the token is not signed with RS256");
  }
  std::string signing_input = absl::StrCat(parts->header_b64, ".", parts->payload_b64);
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_->pkey.get()) != 1) {
    return absl::InternalError(absl::StrCat("verifying a token: ", tls::OpenSslErrors()));
  }
  int ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(parts->signature.data()),
                            parts->signature.size(), reinterpret_cast<const unsigned char*>(signing_input.data()),
                            signing_input.size());
  if (ok != 1) {
    tls::OpenSslErrors();  // clear the queue
    return absl::UnauthenticatedError("the token's signature is invalid");
  }
  auto claims = ClaimsFromJson(parts->payload);
  if (!claims.ok()) return absl::UnauthenticatedError(claims.status().message());
  if (claims->issuer != issuer) {
    return absl::UnauthenticatedError(absl::StrCat("the token's issuer \"", claims->issuer, "\" is not \"", issuer, "\""));
  }
  int64_t t = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (claims->expires_at == 0) return absl::UnauthenticatedError("the token has no expiry");
  if (t > claims->expires_at + kLeewaySeconds) return absl::UnauthenticatedError("the token has expired");
  if (claims->not_before != 0 && t + kLeewaySeconds < claims->not_before) {
    return absl::UnauthenticatedError("the token is not valid yet");
  }
  if (claims->issued_at != 0 && t + kLeewaySeconds < claims->issued_at) {
    return absl::UnauthenticatedError("the token was issued in the future");
  }
  std::vector<std::string> matching;
  for (const auto& a : claims->audiences) {
    if (std::find(audiences.begin(), audiences.end(), a) != audiences.end()) matching.push_back(a);
  }
  if (matching.empty()) {
    return absl::UnauthenticatedError(absl::StrCat("the token's audiences [", absl::StrJoin(claims->audiences, ","),
                                                   "] do not include any of [", absl::StrJoin(audiences, ","), "]"));
  }
  claims->audiences = std::move(matching);
  return claims;
}

namespace {

class StoreLookup : public ServiceAccountLookup {
 public:
  explicit StoreLookup(store::Store& store) : store_(store) {}

  absl::Status Check(const ServiceAccountClaims& c) override {
    absl::Status sa = CheckObject("serviceaccounts", c.namespace_name, c.service_account_name,
                                  c.service_account_uid, "service account");
    if (!sa.ok() || c.pod_name.empty()) return sa;
    return CheckObject("pods", c.namespace_name, c.pod_name, c.pod_uid, "pod");
  }

 private:
  absl::Status CheckObject(const std::string& resource, const std::string& ns, const std::string& name,
                           const std::string& uid, const std::string& what) {
    auto kv = store_.Get(absl::StrCat("/registry/", resource, "/", ns, "/", name));
    if (!kv.ok()) {
      if (kv.status().code() == absl::StatusCode::kNotFound) {
        return absl::NotFoundError(absl::StrCat(what, " ", ns, "/", name, " has been deleted"));
      }
      return kv.status();
    }
    json obj = json::parse(kv->value_view(), nullptr, false);
    if (obj.is_discarded() || !obj.contains("metadata") || !obj["metadata"].is_object()) {
      return absl::InternalError(absl::StrCat(what, " ", ns, "/", name, " is unreadable"));
    }
    const json& meta = obj["metadata"];
    if (meta.value("uid", "") != uid) {
      return absl::FailedPreconditionError(absl::StrCat(what, " ", ns, "/", name, " has been deleted and recreated (uid ",
                                                        meta.value("uid", ""), ", the token names ", uid, ")"));
    }
    if (meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null()) {
      return absl::FailedPreconditionError(absl::StrCat(what, " ", ns, "/", name, " is being deleted"));
    }
    return absl::OkStatus();
  }

  store::Store& store_;
};

}  // namespace

std::unique_ptr<ServiceAccountLookup> StoreServiceAccountLookup(store::Store& store) {
  return std::make_unique<StoreLookup>(store);
}

ServiceAccountTokenAuthenticator::ServiceAccountTokenAuthenticator(
    std::shared_ptr<const ServiceAccountTokenVerifier> verifier, std::string issuer,
    std::shared_ptr<ServiceAccountLookup> lookup, Clock clock)
    : verifier_(std::move(verifier)),
      issuer_(std::move(issuer)),
      lookup_(std::move(lookup)),
      clock_(clock ? std::move(clock) : [] { return std::chrono::system_clock::now(); }) {}

AuthenticationResult ServiceAccountTokenAuthenticator::AuthenticateToken(const std::string& token,
                                                                         const std::vector<std::string>& audiences) {
  // Tokens that are not ours are for the next authenticator.
  auto peek = ServiceAccountTokenVerifier::Peek(token);
  if (!peek.ok() || peek->issuer != issuer_) return AuthenticationResult::NoCredentials();
  auto claims = verifier_->Verify(token, issuer_, audiences, clock_());
  if (!claims.ok()) return AuthenticationResult::Rejected(std::string(claims.status().message()));
  if (lookup_) {
    absl::Status s = lookup_->Check(*claims);
    if (!s.ok()) return AuthenticationResult::Rejected(std::string(s.message()));
  }
  UserInfo user;
  user.name = claims->Subject();
  user.uid = claims->service_account_uid;
  user.groups = ServiceAccountGroups(claims->namespace_name);
  if (!claims->pod_name.empty()) {
    user.extra["authentication.kubernetes.io/pod-name"] = {claims->pod_name};
    user.extra["authentication.kubernetes.io/pod-uid"] = {claims->pod_uid};
  }
  if (!claims->token_id.empty()) user.extra["authentication.kubernetes.io/credential-id"] = {"JTI=" + claims->token_id};
  AuthenticationResult r = AuthenticationResult::Authenticated(std::move(user));
  r.audiences = claims->audiences;
  return r;
}

}  // namespace kelpie::apiserver
