#include "orchestrator/kubelet/node_bootstrap.h"

#include <chrono>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/http/http_client.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/tls/certificates.h"
#include "orchestrator/client/kubeconfig.h"
#include "orchestrator/pki/join_token.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;

struct Paths {
  std::string kubeconfig, pki, ca, key, serving_cert, serving_key;
};

Paths PathsUnder(const std::string& dir) {
  Paths p;
  p.kubeconfig = dir + "/kubeconfig.yaml";
  p.pki = dir + "/pki";
  p.ca = p.pki + "/ca.crt";
  p.key = p.pki + "/node.key";
  p.serving_cert = p.pki + "/kubelet.crt";
  p.serving_key = p.pki + "/kubelet.key";
  return p;
}

// The files of an earlier join still fit when they are for this node, this
// server and this CA, and the client certificate is not about to expire.
bool ExistingCredentialsFit(const Paths& p, const NodeBootstrapOptions& o, const pki::JoinToken& token) {
  if (!PathExists(p.kubeconfig) || !PathExists(p.serving_cert) || !PathExists(p.serving_key)) return false;
  auto kc = client::LoadKubeconfig(p.kubeconfig);
  if (!kc.ok() || kc->server != o.server) return false;
  auto hash = tls::PublicKeySha256(kc->ca_certificate_pem);
  if (!hash.ok() || *hash != token.ca_hash) return false;
  auto cert = tls::ParseCertificate(kc->client_certificate_pem);
  if (!cert.ok() || cert->common_name != "system:node:" + o.node_name) return false;
  return cert->not_after > std::chrono::system_clock::now() + std::chrono::hours(24 * 30);
}

absl::StatusOr<std::string> FetchPinnedCa(const std::string& server, const pki::JoinToken& token) {
  http::HttpClientOptions co;
  co.server = server;
  co.tls.skip_server_verification = true;  // the CA is checked against the token below
  KELPIE_ASSIGN_OR_RETURN(auto client, http::HttpClient::Create(co));
  auto r = client->Do({.method = "GET", .target = "/cacerts"});
  if (!r.ok()) return absl::UnavailableError(absl::StrCat("reaching ", server, ": ", r.status().message()));
  if (r->status != 200) {
    return absl::FailedPreconditionError(
        absl::StrCat(server, " did not hand out its CA (HTTP ", r->status, "): is it a kelpie server?"));
  }
  auto hash = tls::PublicKeySha256(r->body);
  if (!hash.ok()) return absl::FailedPreconditionError(absl::StrCat(server, "/cacerts is not a PEM certificate"));
  if (*hash != token.ca_hash) {
    return absl::PermissionDeniedError(absl::StrCat("the CA of ", server, " (sha256:", *hash,
                                                    ") is not the one the token pins: wrong server or wrong token"));
  }
  return r->body;
}

}  // namespace

absl::StatusOr<NodeCredentials> BootstrapNodeCredentials(const NodeBootstrapOptions& o) {
  KELPIE_ASSIGN_OR_RETURN(pki::JoinToken token, pki::ParseJoinToken(o.token));
  const Paths p = PathsUnder(o.directory);
  NodeCredentials out{p.kubeconfig, p.ca, p.serving_cert, p.serving_key, false};
  if (ExistingCredentialsFit(p, o, token)) return out;

  KELPIE_ASSIGN_OR_RETURN(std::string ca, FetchPinnedCa(o.server, token));
  KELPIE_ASSIGN_OR_RETURN(std::string key, tls::GeneratePrivateKeyPem());
  KELPIE_ASSIGN_OR_RETURN(std::string public_key, tls::PublicKeyPemOf(key));
  http::HttpClientOptions co;
  co.server = o.server;
  co.tls.ca_pem = ca;
  co.bearer_token = token.secret;
  KELPIE_ASSIGN_OR_RETURN(auto client, http::HttpClient::Create(co));
  json request = {{"nodeName", o.node_name}, {"publicKey", public_key}, {"addresses", o.addresses}};
  auto r = client->Do({.method = "POST",
                       .target = "/kelpie/v1/node-credentials",
                       .headers = {{"Content-Type", "application/json"}},
                       .body = request.dump()});
  if (!r.ok()) return absl::UnavailableError(absl::StrCat("asking ", o.server, " for node credentials: ", r.status().message()));
  json answer = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (r->status != 200) {
    std::string message = answer.is_object() ? answer.value("message", r->body) : r->body;
    if (r->status == 401) return absl::PermissionDeniedError(absl::StrCat("the server refused the token: ", message));
    return absl::FailedPreconditionError(absl::StrCat("node credentials (HTTP ", r->status, "): ", message));
  }
  if (!answer.is_object() || !answer["clientCertificate"].is_string() || !answer["servingCertificate"].is_string()) {
    return absl::InternalError("the server's node credentials answer is malformed");
  }
  KELPIE_RETURN_IF_ERROR(MakeDirectories(p.pki, 0700));
  KELPIE_RETURN_IF_ERROR(WriteFileAtomically(p.ca, ca, 0644));
  KELPIE_RETURN_IF_ERROR(WriteFileAtomically(p.key, key, 0600));
  KELPIE_RETURN_IF_ERROR(WriteFileAtomically(p.serving_cert, answer["servingCertificate"].get<std::string>(), 0644));
  KELPIE_RETURN_IF_ERROR(WriteFileAtomically(p.serving_key, key, 0600));
  client::KubeconfigContents kc;
  kc.user_name = "system:node:" + o.node_name;
  kc.server = o.server;
  kc.ca_certificate_pem = ca;
  kc.client_certificate_pem = answer["clientCertificate"].get<std::string>();
  kc.client_key_pem = key;
  KELPIE_RETURN_IF_ERROR(client::WriteKubeconfig(p.kubeconfig, kc, 0600));
  out.issued = true;
  return out;
}

}  // namespace kelpie::kubelet
