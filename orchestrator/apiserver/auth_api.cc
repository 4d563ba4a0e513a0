#include "orchestrator/apiserver/auth_api.h"

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "orchestrator/api/api_error.h"
#include "orchestrator/api/object_meta.h"
#include "orchestrator/apiserver/auth_protobuf.h"
#include "orchestrator/apiserver/rbac_authorizer.h"
#include "orchestrator/apiserver/resource_api.h"

namespace kelpie::apiserver {

using nlohmann::json;

namespace {

constexpr char kAuthnGroup[] = "authentication.k8s.io";
constexpr char kAuthzGroup[] = "authorization.k8s.io";

// The kind an endpoint takes, or "" when the request is not for one.
std::string KindFor(const RequestInfo& info) {
  if (info.group.empty() && info.resource == "serviceaccounts" && info.subresource == "token") return "TokenRequest";
  if (!info.subresource.empty() || !info.name.empty()) return "";
  if (info.group == kAuthnGroup) {
    if (info.resource == "tokenreviews") return "TokenReview";
    if (info.resource == "selfsubjectreviews") return "SelfSubjectReview";
  }
  if (info.group == kAuthzGroup) {
    if (info.resource == "selfsubjectaccessreviews") return "SelfSubjectAccessReview";
    if (info.resource == "subjectaccessreviews") return "SubjectAccessReview";
    if (info.resource == "localsubjectaccessreviews") return "LocalSubjectAccessReview";
    if (info.resource == "selfsubjectrulesreviews") return "SelfSubjectRulesReview";
  }
  return "";
}

void RespondJson(http::HttpResponder& responder, int code, const json& body) {
  http::HttpResponse r;
  r.status = code;
  r.SetHeader("Content-Type", "application/json");
  r.SetHeader("Cache-Control", "no-cache, private");
  r.body = body.dump();
  responder.Respond(std::move(r));
}

json UserInfoJson(const UserInfo& u) {
  json j = {{"username", u.name}};
  if (!u.uid.empty()) j["uid"] = u.uid;
  j["groups"] = u.groups;
  if (!u.extra.empty()) j["extra"] = u.extra;
  return j;
}

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json& Obj(const json& obj, const char* key) {
  static const json empty = json::object();
  if (!obj.is_object()) return empty;
  auto it = obj.find(key);
  return it != obj.end() && it->is_object() ? *it : empty;
}

std::vector<std::string> StrList(const json& obj, const char* key) {
  std::vector<std::string> out;
  if (!obj.is_object()) return out;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The response: the request's object with server-set metadata and status.
json ResponseObject(const json& request, const std::string& group, const std::string& kind) {
  json meta = Obj(request, "metadata");
  meta["creationTimestamp"] = nullptr;
  json out = {{"kind", kind}, {"apiVersion", absl::StrCat(group, group.empty() ? "" : "/", "v1")}, {"metadata", meta}};
  if (request.is_object() && request.contains("spec")) out["spec"] = request["spec"];
  return out;
}

}  // namespace

AuthApi::AuthApi(AuthApiOptions options, store::Store& store, const ServiceAccountTokenSigner* signer,
                 const RequestAuthenticator* authenticator, const Authorizer* authorizer)
    : options_(std::move(options)),
      store_(store),
      signer_(signer),
      authenticator_(authenticator),
      authorizer_(authorizer) {}

bool AuthApi::Handles(const RequestInfo& info) { return info.is_resource_request && !KindFor(info).empty(); }

void AuthApi::Serve(const RequestInfo& info, const UserInfo& user, const http::HttpRequest& request,
                    http::HttpResponder& responder) {
  const std::string kind = KindFor(info);
  if (info.version != "v1") {
    return RespondError(responder, api::ApiError{404, "NotFound",
                                                 absl::StrCat("the server could not find the requested resource (",
                                                              info.group, "/", info.version, " ", info.resource, ")")});
  }
  if (info.verb != "create") {
    return RespondError(responder, api::MethodNotAllowed(absl::StrCat(request.method, " is not supported on ", kind,
                                                                      ": it only accepts create (POST)")));
  }
  bool namespaced = kind == "TokenRequest" || kind == "LocalSubjectAccessReview";
  if (namespaced && info.namespace_name.empty()) {
    return RespondError(responder, api::NotFound(info.group, info.resource, info.name));
  }
  // The body: JSON, or protobuf as kubectl's typed clients send it.
  const std::string* ct = request.Header("content-type");
  std::string content_type = ct == nullptr ? "application/json" : *ct;
  json body;
  if (absl::StartsWith(content_type, kProtobufContentType)) {
    auto decoded = DecodeAuthProtobuf(request.body, kind);
    if (!decoded.ok()) return RespondError(responder, api::BadRequest(std::string(decoded.status().message())));
    body = std::move(*decoded);
  } else if (absl::StartsWith(content_type, "application/json") || content_type.empty()) {
    body = json::parse(request.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return RespondError(responder, api::BadRequest(absl::StrCat("the body of a ", kind, " must be a JSON object")));
    }
  } else {
    return RespondError(responder, api::UnsupportedMediaType(content_type));
  }
  std::string sent_kind = Str(body, "kind");
  if (!sent_kind.empty() && sent_kind != kind) {
    return RespondError(responder, api::BadRequest(absl::StrCat("the body is a ", sent_kind, ", not a ", kind)));
  }
  if (body.contains("spec") && !body["spec"].is_object()) {
    return RespondError(responder, api::BadRequest(absl::StrCat("spec of a ", kind, " must be an object")));
  }
  if (kind == "TokenRequest") return TokenRequest(info, body, responder);
  if (kind == "TokenReview") return TokenReview(body, responder);
  if (kind == "SelfSubjectReview") return SelfSubjectReview(user, body, responder);
  if (kind == "SelfSubjectRulesReview") return RulesReview(user, std::move(body), responder);
  return AccessReview(info, user, std::move(body), responder);
}

void AuthApi::TokenRequest(const RequestInfo& info, const json& body, http::HttpResponder& responder) {
  if (signer_ == nullptr) {
    return RespondError(responder, api::NotFound("", "serviceaccounts/token", info.name));
  }
  const json& spec = Obj(body, "spec");
  auto sa = store_.Get(absl::StrCat("/registry/serviceaccounts/", info.namespace_name, "/", info.name));
  if (!sa.ok()) return RespondError(responder, api::FromStoreStatus(sa.status(), "", "serviceaccounts", info.name));
  json sa_obj = json::parse(sa->value_view(), nullptr, false);
  const json& sa_meta = Obj(sa_obj, "metadata");
  if (sa_meta.contains("deletionTimestamp") && !sa_meta["deletionTimestamp"].is_null()) {
    return RespondError(responder, api::NotFound("", "serviceaccounts", info.name));
  }

  std::vector<api::StatusCause> causes;
  int64_t expiration = kDefaultTokenExpirationSeconds;
  if (spec.contains("expirationSeconds") && !spec["expirationSeconds"].is_null()) {
    if (!spec["expirationSeconds"].is_number_integer()) {
      causes.push_back({"FieldValueInvalid", "must be an integer number of seconds", "spec.expirationSeconds"});
    } else {
      expiration = spec["expirationSeconds"].get<int64_t>();
      if (expiration < kMinTokenExpirationSeconds) {
        causes.push_back({"FieldValueInvalid",
                          absl::StrCat("Invalid value: ", expiration, ": may not specify a duration less than 10 minutes"),
                          "spec.expirationSeconds"});
      } else if (expiration > (int64_t{1} << 32)) {
        causes.push_back({"FieldValueInvalid",
                          absl::StrCat("Invalid value: ", expiration, ": may not specify a duration larger than 2^32 seconds"),
                          "spec.expirationSeconds"});
      }
    }
  }
  std::vector<std::string> audiences = StrList(spec, "audiences");
  if (audiences.empty()) audiences = options_.api_audiences;
  ServiceAccountClaims claims;
  const json& ref = Obj(spec, "boundObjectRef");
  if (!ref.empty()) {
    std::string kind = Str(ref, "kind");
    if (kind != "Pod") {
      causes.push_back({"FieldValueNotSupported",
                        absl::StrCat("Unsupported value: \"", kind, "\": supported values: \"Pod\""),
                        "spec.boundObjectRef.kind"});
    } else if (Str(ref, "name").empty()) {
      causes.push_back({"FieldValueRequired", "Required value", "spec.boundObjectRef.name"});
    } else {
      claims.pod_name = Str(ref, "name");
      claims.pod_uid = Str(ref, "uid");
    }
  }
  if (!causes.empty()) {
    return RespondError(responder, api::Invalid(kAuthnGroup, "TokenRequest", info.name, causes));
  }
  if (!claims.pod_name.empty()) {
    auto pod = store_.Get(absl::StrCat("/registry/pods/", info.namespace_name, "/", claims.pod_name));
    if (!pod.ok()) return RespondError(responder, api::FromStoreStatus(pod.status(), "", "pods", claims.pod_name));
    json pod_obj = json::parse(pod->value_view(), nullptr, false);
    std::string uid = Str(Obj(pod_obj, "metadata"), "uid");
    if (!claims.pod_uid.empty() && claims.pod_uid != uid) {
      return RespondError(responder,
                          api::Conflict("", "pods", claims.pod_name,
                                        absl::StrCat("the UID in the bound object reference (", claims.pod_uid,
                                                     ") does not match the UID in record. The object might have "
                                                     "been deleted and then recreated")));
    }
    claims.pod_uid = uid;
  }
  auto now = std::chrono::system_clock::now();
  int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  claims.issuer = options_.issuer;
  claims.audiences = audiences;
  claims.issued_at = now_s;
  claims.not_before = now_s;
  claims.expires_at = now_s + expiration;
  claims.token_id = api::NewUid();
  claims.namespace_name = info.namespace_name;
  claims.service_account_name = info.name;
  claims.service_account_uid = Str(sa_meta, "uid");
  auto token = signer_->Sign(claims);
  if (!token.ok()) return RespondError(responder, api::InternalError(std::string(token.status().message())));

  json out = ResponseObject(body, kAuthnGroup, "TokenRequest");
  out["metadata"]["name"] = info.name;
  out["metadata"]["namespace"] = info.namespace_name;
  json out_spec = {{"audiences", audiences}, {"expirationSeconds", expiration}};
  if (!claims.pod_name.empty()) {
    out_spec["boundObjectRef"] = {{"kind", "Pod"}, {"apiVersion", "v1"}, {"name", claims.pod_name}, {"uid", claims.pod_uid}};
  } else {
    out_spec["boundObjectRef"] = nullptr;
  }
  out["spec"] = out_spec;
  out["status"] = {{"token", *token},
                   {"expirationTimestamp", Rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(claims.expires_at)))}};
  RespondJson(responder, 201, out);
}

void AuthApi::TokenReview(const json& body, http::HttpResponder& responder) {
  const json& spec = Obj(body, "spec");
  std::string token = Str(spec, "token");
  if (token.empty()) return RespondError(responder, api::BadRequest("token is required for TokenReview in authentication"));
  if (authenticator_ == nullptr) return RespondError(responder, api::ServiceUnavailable("no token authenticator"));
  std::vector<std::string> wanted = StrList(spec, "audiences");
  AuthenticationResult r = authenticator_->AuthenticateToken(token, wanted);
  json status = {{"authenticated", r.authenticated()}};
  if (r.authenticated()) {
    status["user"] = UserInfoJson(r.user);
    const std::vector<std::string>& audiences =
        !r.audiences.empty() ? r.audiences : (wanted.empty() ? authenticator_->api_audiences() : wanted);
    status["audiences"] = audiences;
  } else {
    status["user"] = json::object();
    status["error"] = r.error.empty() ? "invalid bearer token" : r.error;
  }
  json out = ResponseObject(body, kAuthnGroup, "TokenReview");
  // The token itself is not echoed back.
  if (out.contains("spec")) out["spec"].erase("token");
  out["status"] = status;
  RespondJson(responder, 201, out);
}

void AuthApi::SelfSubjectReview(const UserInfo& user, const json& body, http::HttpResponder& responder) {
  json out = ResponseObject(body, kAuthnGroup, "SelfSubjectReview");
  out.erase("spec");
  out["status"] = {{"userInfo", UserInfoJson(user)}};
  RespondJson(responder, 201, out);
}

void AuthApi::AccessReview(const RequestInfo& info, const UserInfo& user, json body, http::HttpResponder& responder) {
  const std::string kind = KindFor(info);
  if (authorizer_ == nullptr) return RespondError(responder, api::ServiceUnavailable("no authorizer"));
  if (!body.contains("spec")) body["spec"] = json::object();
  json& spec = body["spec"];
  const json& ra = Obj(spec, "resourceAttributes");
  const json& nra = Obj(spec, "nonResourceAttributes");
  bool has_ra = spec.contains("resourceAttributes") && spec["resourceAttributes"].is_object();
  bool has_nra = spec.contains("nonResourceAttributes") && spec["nonResourceAttributes"].is_object();
  std::vector<api::StatusCause> causes;
  if (has_ra == has_nra) {
    causes.push_back({"FieldValueInvalid",
                      "Invalid value: exactly one of nonResourceAttributes or "
                      "resourceAttributes must be specified",
                      "spec.resourceAttributes"});
  }
  AuthorizationAttributes a;
  if (kind == "SelfSubjectAccessReview") {
    a.user = user;
  } else {
    a.user.name = Str(spec, "user");
    a.user.uid = Str(spec, "uid");
    a.user.groups = StrList(spec, "groups");
    const json& extra = Obj(spec, "extra");
    for (auto it = extra.begin(); it != extra.end(); ++it) a.user.extra[it.key()] = StrList(extra, it.key().c_str());
    if (a.user.name.empty() && a.user.groups.empty()) {
      causes.push_back({"FieldValueInvalid", "Invalid value: \"\": at least one of user or group must be specified",
                        "spec.user"});
    }
  }
  if (kind == "LocalSubjectAccessReview") {
    if (has_nra) {
      causes.push_back({"FieldValueForbidden", "Forbidden: disallowed on this kind of request",
                        "spec.nonResourceAttributes"});
    }
    std::string ns = Str(ra, "namespace");
    if (!ns.empty() && ns != info.namespace_name) {
      causes.push_back({"FieldValueInvalid",
                        absl::StrCat("Invalid value: \"", ns,
                                     "\": must match metadata.namespace"),
                        "spec.resourceAttributes.namespace"});
    }
    if (has_ra) spec["resourceAttributes"]["namespace"] = info.namespace_name;
  }
  if (!causes.empty()) return RespondError(responder, api::Invalid(kAuthzGroup, kind, "", causes));
  if (has_ra) {
    const json& r = spec["resourceAttributes"];
    a.resource_request = true;
    a.verb = Str(r, "verb");
    a.api_group = Str(r, "group");
    a.api_version = Str(r, "version");
    a.resource = Str(r, "resource");
    a.subresource = Str(r, "subresource");
    a.name = Str(r, "name");
    a.namespace_name = Str(r, "namespace");
  } else {
    a.resource_request = false;
    a.verb = Str(nra, "verb");
    a.path = Str(nra, "path");
  }
  AuthorizationDecision d = authorizer_->Authorize(a);
  json status = {{"allowed", d.allowed}};
  if (!d.reason.empty()) status["reason"] = d.reason;
  json out = ResponseObject(body, kAuthzGroup, kind);
  if (kind == "LocalSubjectAccessReview") out["metadata"]["namespace"] = info.namespace_name;
  out["status"] = status;
  RespondJson(responder, 201, out);
}

void AuthApi::RulesReview(const UserInfo& user, json body, http::HttpResponder& responder) {
  if (authorizer_ == nullptr) return RespondError(responder, api::ServiceUnavailable("no authorizer"));
  std::string ns = Str(Obj(body, "spec"), "namespace");
  if (ns.empty()) return RespondError(responder, api::BadRequest("no namespace on request"));
  SubjectRules rules = authorizer_->RulesFor(user, ns);
  json resource_rules = json::array();
  for (const auto& r : rules.resource_rules) {
    json j = {{"verbs", r.verbs}, {"apiGroups", r.api_groups}, {"resources", r.resources}};
    if (!r.resource_names.empty()) j["resourceNames"] = r.resource_names;
    resource_rules.push_back(std::move(j));
  }
  json non_resource_rules = json::array();
  for (const auto& r : rules.non_resource_rules) {
    non_resource_rules.push_back({{"verbs", r.verbs}, {"nonResourceURLs", r.non_resource_urls}});
  }
  json status = {{"resourceRules", resource_rules}, {"nonResourceRules", non_resource_rules}, {"incomplete", false}};
  if (!rules.errors.empty()) status["evaluationError"] = absl::StrJoin(rules.errors, ", ");
  json out = ResponseObject(body, kAuthzGroup, "SelfSubjectRulesReview");
  out["status"] = status;
  RespondJson(responder, 201, out);
}

}  // namespace kelpie::apiserver
