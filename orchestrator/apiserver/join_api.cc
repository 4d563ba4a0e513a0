#include "orchestrator/apiserver/join_api.h"

#include <arpa/inet.h>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "orchestrator/api/api_error.h"
#include "orchestrator/api/object_meta.h"
#include "orchestrator/pki/join_token.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;

constexpr char kCaPath[] = "/cacerts";
constexpr char kCredentialsPath[] = "/kelpie/v1/node-credentials";

http::HttpResponse Respond(int status, const std::string& content_type, std::string body) {
  http::HttpResponse r;
  r.status = status;
  r.SetHeader("Content-Type", content_type);
  r.SetHeader("Cache-Control", "no-cache, private");
  r.body = std::move(body);
  return r;
}

http::HttpResponse Error(const api::ApiError& e) { return Respond(e.code, "application/json", e.ToJson()); }

bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

bool JoinApi::Handles(const std::string& path) { return path == kCaPath || path == kCredentialsPath; }

http::HttpResponse JoinApi::Serve(const http::HttpRequest& request) const {
  if (request.path == kCaPath) {
    if (request.method != "GET" && request.method != "HEAD") {
      return Error(api::MethodNotAllowed(absl::StrCat(request.method, " is not supported on ", kCaPath)));
    }
    return Respond(200, "application/x-pem-file", ca_.certificate_pem);
  }
  if (request.method != "POST") {
    return Error(api::MethodNotAllowed(absl::StrCat(request.method, " is not supported on ", kCredentialsPath)));
  }
  return IssueNodeCredentials(request);
}

http::HttpResponse JoinApi::IssueNodeCredentials(const http::HttpRequest& request) const {
  const std::string* auth = request.Header("authorization");
  if (auth == nullptr || !absl::StartsWithIgnoreCase(*auth, "Bearer ") ||
      !pki::SecretsEqual(auth->substr(7), secret_)) {
    spdlog::warn("node credentials refused to {}: {}", request.remote_address,
                 auth == nullptr ? "no join token" : "wrong join token");
    return Error(api::Unauthorized("the join token is not this cluster's (see <data-dir>/token on the server)"));
  }
  json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) return Error(api::BadRequest("the request body is not a JSON object"));
  const json& name = body["nodeName"];
  const json& key = body["publicKey"];
  if (!name.is_string() || !api::IsDns1123Subdomain(name.get<std::string>())) {
    return Error(api::BadRequest("nodeName: a lowercase RFC 1123 subdomain is required"));
  }
  if (!key.is_string() || key.get<std::string>().empty()) {
    return Error(api::BadRequest("publicKey: a PEM public key is required"));
  }
  const std::string node = name.get<std::string>();
  std::vector<std::string> addresses;
  if (body.contains("addresses")) {
    if (!body["addresses"].is_array()) return Error(api::BadRequest("addresses: a list of IP addresses is expected"));
    for (const auto& a : body["addresses"]) {
      if (!a.is_string() || !IsIpAddress(a.get<std::string>())) {
        return Error(api::BadRequest(absl::StrCat("addresses: ", a.dump(), " is not an IP address")));
      }
      addresses.push_back(a.get<std::string>());
    }
  }
  tls::CertificateRequest client;
  client.common_name = "system:node:" + node;
  client.organizations = {"system:nodes"};
  client.client_auth = true;
  auto client_cert = tls::IssueCertificateForPublicKey(ca_, client, key.get<std::string>());
  if (!client_cert.ok()) {
    return Error(api::BadRequest(absl::StrCat("publicKey: ", client_cert.status().message())));
  }
  tls::CertificateRequest serving;
  serving.common_name = "system:node:" + node;
  serving.organizations = {"system:nodes"};
  serving.server_auth = true;
  serving.dns_names = {node};
  serving.ip_addresses = addresses;
  auto serving_cert = tls::IssueCertificateForPublicKey(ca_, serving, key.get<std::string>());
  if (!serving_cert.ok()) return Error(api::InternalError(std::string(serving_cert.status().message())));
  spdlog::info("issued node credentials for {} to {}", node, request.remote_address);
  json out = {{"caCertificate", ca_.certificate_pem},
              {"clientCertificate", *client_cert},
              {"servingCertificate", *serving_cert}};
  return Respond(200, "application/json", out.dump());
}

}  // namespace kelpie::apiserver
