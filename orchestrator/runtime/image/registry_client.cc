#include "orchestrator/runtime/image/registry_client.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/http/http_message.h"
#include "common/status_macros.h"
#include "orchestrator/runtime/image/digest.h"

namespace kelpie::image {
namespace {

constexpr size_t kMaxManifestSize = 4 << 20;

constexpr const char* kManifestAccept =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

absl::Status HttpError(const RegistryHttpResponse& response, absl::string_view what) {
  std::string message = absl::StrCat(what, ": HTTP ", response.status, ": ", RegistryErrorMessage(response));
  switch (response.status) {
    case 401:
      return absl::UnauthenticatedError(message);
    case 403:
      return absl::PermissionDeniedError(message);
    case 404:
      return absl::NotFoundError(message);
    case 429:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

}  // namespace

std::optional<AuthChallenge> ParseAuthChallenge(absl::string_view header) {
  header = absl::StripAsciiWhitespace(header);
  auto space = header.find(' ');
  AuthChallenge challenge;
  challenge.scheme = absl::AsciiStrToLower(header.substr(0, space));
  if (challenge.scheme.empty()) return std::nullopt;
  if (space == absl::string_view::npos) return challenge;
  absl::string_view rest = header.substr(space + 1);
  // key=value or key="quoted, value" pairs separated by commas.
  while (!rest.empty()) {
    rest = absl::StripLeadingAsciiWhitespace(rest);
    auto eq = rest.find('=');
    if (eq == absl::string_view::npos) break;
    std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(rest.substr(0, eq)));
    rest.remove_prefix(eq + 1);
    std::string value;
    if (!rest.empty() && rest.front() == '"') {
      size_t i = 1;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value.push_back(rest[i]);
      }
      rest.remove_prefix(std::min(rest.size(), i + 1));
    } else {
      auto comma = rest.find(',');
      value = std::string(absl::StripAsciiWhitespace(rest.substr(0, comma)));
      rest.remove_prefix(comma == absl::string_view::npos ? rest.size() : comma);
    }
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (!rest.empty() && rest.front() == ',') rest.remove_prefix(1);
    if (key == "realm") challenge.realm = value;
    if (key == "service") challenge.service = value;
    if (key == "scope") challenge.scope = value;
  }
  return challenge;
}

std::string RegistryErrorMessage(const RegistryHttpResponse& response) {
  nlohmann::json doc = nlohmann::json::parse(response.body, nullptr, false);
  if (doc.is_object() && doc.contains("errors") && doc["errors"].is_array()) {
    std::vector<std::string> parts;
    for (const auto& e : doc["errors"]) {
      if (!e.is_object()) continue;
      std::string code = e.value("code", "");
      std::string message = e.value("message", "");
      parts.push_back(code.empty() ? message : absl::StrCat(absl::AsciiStrToLower(code), ": ", message));
    }
    if (!parts.empty()) return absl::StrJoin(parts, "; ");
  }
  std::string body(absl::StripAsciiWhitespace(response.body.substr(0, 200)));
  return body.empty() ? "(no details)" : body;
}

RegistryClient::RegistryClient(RegistryTransport& transport, std::string api_host, bool plain_http,
                               std::optional<RegistryCredentials> credentials)
    : transport_(transport),
      api_host_(std::move(api_host)),
      plain_http_(plain_http),
      credentials_(std::move(credentials)) {}

std::string RegistryClient::BaseUrl() const {
  return absl::StrCat(plain_http_ ? "http://" : "https://", api_host_, "/v2/");
}

void RegistryClient::AddAuthorization(RegistryHttpRequest& request) const {
  if (!bearer_token_.empty()) {
    request.headers.emplace_back("Authorization", absl::StrCat("Bearer ", bearer_token_));
  } else if (use_basic_ && credentials_) {
    request.basic_user = credentials_->username;
    request.basic_password = credentials_->password;
  }
}

absl::Status RegistryClient::Authenticate(const AuthChallenge& challenge, const std::string& repository,
                                          const std::string& actions) {
  if (challenge.scheme == "basic") {
    if (!credentials_ || credentials_->username.empty()) {
      return absl::UnauthenticatedError(absl::StrCat("registry ", api_host_,
                                                     " asks for basic auth and no credentials were given"));
    }
    use_basic_ = true;
    return absl::OkStatus();
  }
  if (challenge.scheme != "bearer") {
    return absl::UnimplementedError(absl::StrCat("registry ", api_host_, " asks for unsupported auth scheme \"",
                                                 challenge.scheme, "\""));
  }
  if (challenge.realm.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("registry ", api_host_, " sent a Bearer challenge without realm"));
  }
  // Ask for the scope this request needs (the challenge's may be narrower
  // or absent, e.g. on /v2/).
  std::string scope = absl::StrCat("repository:", repository, ":", actions);
  RegistryHttpRequest token_request;
  const bool refresh = credentials_ && !credentials_->identity_token.empty();
  if (refresh) {
    // OAuth2 refresh-token grant (docker login's identity token).
    token_request.method = "POST";
    token_request.url = challenge.realm;
    token_request.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    token_request.body = absl::StrCat("grant_type=refresh_token&client_id=kelpie&service=",
                                      http::PercentEncode(challenge.service), "&scope=", http::PercentEncode(scope),
                                      "&refresh_token=", http::PercentEncode(credentials_->identity_token));
  } else {
    token_request.url = absl::StrCat(challenge.realm, absl::StrContains(challenge.realm, "?") ? "&" : "?",
                                     "service=", http::PercentEncode(challenge.service),
                                     "&scope=", http::PercentEncode(scope));
    if (credentials_ && !credentials_->username.empty()) {
      token_request.basic_user = credentials_->username;
      token_request.basic_password = credentials_->password;
    }
  }
  KELPIE_ASSIGN_OR_RETURN(RegistryHttpResponse response, transport_.Send(token_request));
  if (response.status != 200) {
    return HttpError(response, absl::StrCat("token endpoint ", challenge.realm));
  }
  nlohmann::json doc = nlohmann::json::parse(response.body, nullptr, false);
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("token endpoint ", challenge.realm, " answered no JSON object"));
  }
  std::string token = doc.value("token", "");
  if (token.empty()) token = doc.value("access_token", "");
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("token endpoint ", challenge.realm, " answered no token"));
  }
  bearer_token_ = token;
  return absl::OkStatus();
}

absl::StatusOr<RegistryHttpResponse> RegistryClient::Send(
    RegistryHttpRequest request, const std::string& repository, const std::string& actions,
    const std::function<absl::Status(absl::string_view)>* sink) {
  const size_t base_headers = request.headers.size();
  for (int attempt = 0; attempt < 2; ++attempt) {
    request.headers.resize(base_headers);
    request.basic_user.clear();
    request.basic_password.clear();
    AddAuthorization(request);
    KELPIE_ASSIGN_OR_RETURN(RegistryHttpResponse response, transport_.Send(request, sink));
    if (response.status != 401 || attempt == 1) return response;
    std::optional<AuthChallenge> challenge = ParseAuthChallenge(response.Header("www-authenticate"));
    if (!challenge) return response;
    KELPIE_RETURN_IF_ERROR(Authenticate(*challenge, repository, actions));
  }
  return absl::InternalError("unreachable");
}

absl::StatusOr<FetchedManifest> RegistryClient::GetManifest(const std::string& repository,
                                                            const std::string& reference) {
  RegistryHttpRequest request;
  request.url = absl::StrCat(BaseUrl(), repository, "/manifests/", reference);
  request.headers.emplace_back("Accept", kManifestAccept);
  std::string body;
  std::function<absl::Status(absl::string_view)> sink = [&](absl::string_view data) {
    if (body.size() + data.size() > kMaxManifestSize) {
      return absl::InvalidArgumentError(absl::StrCat("manifest ", repository, ":", reference, " is over ",
                                                     kMaxManifestSize, " bytes"));
    }
    body.append(data.data(), data.size());
    return absl::OkStatus();
  };
  std::string what = absl::StrCat("manifest ", api_host_, "/", repository,
                                  absl::StartsWith(reference, "sha256:") ? "@" : ":", reference);
  KELPIE_ASSIGN_OR_RETURN(RegistryHttpResponse response, Send(request, repository, "pull", &sink));
  if (response.status != 200) return HttpError(response, what);
  FetchedManifest manifest;
  manifest.body = std::move(body);
  manifest.digest = Sha256Digest(manifest.body);
  nlohmann::json doc = nlohmann::json::parse(manifest.body, nullptr, false);
  if (!doc.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, " is not a JSON object"));
  manifest.media_type = doc.value("mediaType", "");
  if (manifest.media_type.empty()) {
    std::string content_type = response.Header("content-type");
    manifest.media_type = content_type.substr(0, content_type.find(';'));
  }
  if (doc.value("schemaVersion", 0) == 1 || absl::StrContains(manifest.media_type, "distribution.manifest.v1")) {
    return absl::UnimplementedError(absl::StrCat(what, " is a Docker schema 1 manifest, which is not supported"));
  }
  // A registry names the digest of what it served; a different one means
  // the bytes changed on the way.
  if (std::string served = response.Header("docker-content-digest");
      !served.empty() && absl::StartsWith(served, "sha256:") && served != manifest.digest) {
    return absl::DataLossError(absl::StrCat(what, ": the registry says its digest is ", served,
                                            " but the content hashes to ", manifest.digest));
  }
  return manifest;
}

absl::Status RegistryClient::FetchBlob(const std::string& repository, const std::string& digest,
                                       const std::function<absl::Status(absl::string_view)>& sink) {
  RegistryHttpRequest request;
  request.url = absl::StrCat(BaseUrl(), repository, "/blobs/", digest);
  KELPIE_ASSIGN_OR_RETURN(RegistryHttpResponse response, Send(request, repository, "pull", &sink));
  if (response.status != 200) {
    return HttpError(response, absl::StrCat("blob ", digest, " of ", api_host_, "/", repository));
  }
  return absl::OkStatus();
}

}  // namespace kelpie::image
