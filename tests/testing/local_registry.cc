#include "tests/testing/local_registry.h"

#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "orchestrator/runtime/image/byte_source.h"
#include "orchestrator/runtime/image/curl_registry_transport.h"
#include "orchestrator/runtime/image/digest.h"
#include "orchestrator/runtime/image/registry_client.h"
#include "tests/testing/busybox_image.h"
#include "tests/testing/test_env.h"

namespace kelpie::testing {
namespace {

image::CurlRegistryTransport& Transport() {
  static image::CurlRegistryTransport transport([] {
    image::CurlTransportOptions o;
    o.allow_plain_http = true;
    o.connect_timeout = std::chrono::seconds(5);
    o.stall_timeout = std::chrono::seconds(30);
    return o;
  }());
  return transport;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalRegistry>> LocalRegistry::Start(const std::string& dir,
                                                                    LocalRegistryOptions options) {
  std::optional<std::string> binary = FindExecutable("docker-registry");
  if (!binary) return absl::NotFoundError("docker-registry is not installed (scripts/install-deps)");
  std::unique_ptr<LocalRegistry> registry(new LocalRegistry());
  int port = FreeTcpPort();
  registry->host_ = absl::StrCat("127.0.0.1:", port);
  registry->storage_ = dir + "/storage";
  KELPIE_RETURN_IF_ERROR(MakeDirectories(registry->storage_, 0755));
  std::string config = absl::StrCat(
      "version: 0.1\n"
      "log:\n  level: warn\n"
      "storage:\n  filesystem:\n    rootdirectory: ", registry->storage_, "\n",
      "  delete:\n    enabled: true\n"
      "http:\n  addr: ", registry->host_, "\n");
  if (!options.token_realm.empty()) {
    absl::StrAppend(&config, "auth:\n  token:\n    realm: ", options.token_realm, "\n    service: ",
                    options.token_service, "\n    issuer: ", options.token_issuer, "\n    rootcertbundle: ",
                    options.token_cert_file, "\n");
  }
  std::string config_path = dir + "/config.yml";
  KELPIE_RETURN_IF_ERROR(WriteFileAtomically(config_path, config, 0644));
  ChildProcess::Options po;
  po.stdout_path = dir + "/registry.log";
  po.kill_with_parent = true;
  KELPIE_ASSIGN_OR_RETURN(ChildProcess child, ChildProcess::Start({*binary, "serve", config_path}, po));
  registry->process_.emplace(std::move(child));
  const std::string url = absl::StrCat("http://", registry->host_, "/v2/");
  for (int i = 0; i < 200; ++i) {
    if (!registry->process_->running()) {
      auto log = ReadFileToString(po.stdout_path);
      return absl::InternalError(absl::StrCat("docker-registry exited: ", log.ok() ? *log : ""));
    }
    image::RegistryHttpRequest request;
    request.url = url;
    auto response = Transport().Send(request);
    if (response.ok() && (response->status == 200 || response->status == 401)) return registry;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError("docker-registry did not answer on " + url);
}

LocalRegistry::~LocalRegistry() = default;  // ChildProcess kills and reaps it

std::string LocalRegistry::BlobDataPath(const std::string& digest) const {
  std::string hex = image::DigestHex(digest);
  return absl::StrCat(storage_, "/docker/registry/v2/blobs/sha256/", hex.substr(0, 2), "/", hex, "/data");
}

absl::StatusOr<std::string> LocalRegistry::PushBlob(const std::string& repository, const std::string& content,
                                                    const std::optional<image::RegistryCredentials>& creds) {
  image::RegistryClient client(Transport(), host_, /*plain_http=*/true, creds);
  std::string digest = image::Sha256Digest(content);
  image::RegistryHttpRequest start;
  start.method = "POST";
  start.url = absl::StrCat(client.BaseUrl(), repository, "/blobs/uploads/");
  KELPIE_ASSIGN_OR_RETURN(auto started, client.Send(start, repository, "pull,push"));
  if (started.status != 202) {
    return absl::InternalError(absl::StrCat("start upload: HTTP ", started.status, " ", started.body));
  }
  std::string location = started.Header("location");
  if (absl::StartsWith(location, "/")) location = absl::StrCat("http://", host_, location);
  image::RegistryHttpRequest put;
  put.method = "PUT";
  put.url = absl::StrCat(location, absl::StrContains(location, "?") ? "&" : "?", "digest=", digest);
  put.headers.emplace_back("Content-Type", "application/octet-stream");
  put.body = content;
  KELPIE_ASSIGN_OR_RETURN(auto done, client.Send(put, repository, "pull,push"));
  if (done.status != 201) return absl::InternalError(absl::StrCat("upload: HTTP ", done.status, " ", done.body));
  return digest;
}

absl::StatusOr<PushedManifest> LocalRegistry::PushManifest(const std::string& repository,
                                                           const std::string& reference,
                                                           const std::string& media_type, const std::string& body,
                                                           const std::optional<image::RegistryCredentials>& creds) {
  image::RegistryClient client(Transport(), host_, /*plain_http=*/true, creds);
  image::RegistryHttpRequest put;
  put.method = "PUT";
  put.url = absl::StrCat(client.BaseUrl(), repository, "/manifests/", reference);
  put.headers.emplace_back("Content-Type", media_type);
  put.body = body;
  KELPIE_ASSIGN_OR_RETURN(auto done, client.Send(put, repository, "pull,push"));
  if (done.status != 201) {
    return absl::InternalError(absl::StrCat("put manifest: HTTP ", done.status, " ", done.body));
  }
  return PushedManifest{image::Sha256Digest(body), media_type, body.size()};
}

absl::StatusOr<PushedManifest> LocalRegistry::PushBusybox(const std::string& repository, const std::string& tag,
                                                          const std::string& architecture,
                                                          const std::optional<image::RegistryCredentials>& creds) {
  KELPIE_ASSIGN_OR_RETURN(std::string layer, BuildBusyboxLayer());
  std::string diff_id = image::Sha256Digest(layer);
  std::string compressed = image::GzipCompress(layer);
  OciImageSpec spec;
  spec.cmd = {"sh"};
  spec.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  nlohmann::json config = nlohmann::json::parse(ImageConfigJson(spec, {diff_id}));
  config["architecture"] = architecture;
  std::string config_text = config.dump();
  KELPIE_ASSIGN_OR_RETURN(std::string config_digest, PushBlob(repository, config_text, creds));
  KELPIE_ASSIGN_OR_RETURN(std::string layer_digest, PushBlob(repository, compressed, creds));
  nlohmann::json manifest = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config",
       {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", config_digest},
        {"size", config_text.size()}}},
      {"layers",
       {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"}, {"digest", layer_digest},
         {"size", compressed.size()}}}}};
  return PushManifest(repository, tag, "application/vnd.oci.image.manifest.v1+json", manifest.dump(), creds);
}

}  // namespace kelpie::testing
