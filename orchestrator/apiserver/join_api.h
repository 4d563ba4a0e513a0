// How an agent becomes a node (`kelpie agent --server URL --token TOKEN`),
// served by the API server beside the Kubernetes API, as k3s serves its
// agents:
//
//   GET  /cacerts                      the cluster CA (PEM), open to all: the
//                                      agent checks it against the hash in
//                                      its token before trusting it
//   POST /kelpie/v1/node-credentials   Authorization: Bearer <join secret>;
//                                      body {"nodeName", "publicKey" (PEM),
//                                      "addresses" [IPs]}; answers
//                                      {"caCertificate", "clientCertificate",
//                                      "servingCertificate"} for the agent's
//                                      own key: the client certificate is
//                                      system:node:<name> in system:nodes,
//                                      the serving one is for its kubelet
//
// The private key never leaves the agent. Errors are Kubernetes Status
// objects: 401 for a wrong secret, 400 for a malformed request.
#pragma once

#include <string>

#include "common/http/http_message.h"
#include "common/tls/certificates.h"

namespace kelpie::apiserver {

class JoinApi {
 public:
  JoinApi(tls::KeyPairPem ca, std::string secret) : ca_(std::move(ca)), secret_(std::move(secret)) {}

  static bool Handles(const std::string& path);
  http::HttpResponse Serve(const http::HttpRequest& request) const;

 private:
  http::HttpResponse IssueNodeCredentials(const http::HttpRequest& request) const;

  const tls::KeyPairPem ca_;
  const std::string secret_;
};

}  // namespace kelpie::apiserver
