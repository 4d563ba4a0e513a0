#include "orchestrator/apiserver/openapi_handler.h"

#include <openssl/sha.h>

#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "orchestrator/apiserver/api_server.h"
#include "orchestrator/apiserver/openapi_spec.h"

namespace kelpie::apiserver {
namespace {

OpenApiHandler::Document MakeDocument(const nlohmann::json& doc) {
  OpenApiHandler::Document d;
  d.json = doc.dump();
  unsigned char digest[SHA512_DIGEST_LENGTH];
  SHA512(reinterpret_cast<const unsigned char*>(d.json.data()), d.json.size(), digest);
  d.etag = absl::AsciiStrToUpper(
      absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest))));
  return d;
}

std::string HttpDate(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

http::HttpResponse StatusResponse(int code, const std::string& reason, const std::string& message) {
  http::HttpResponse r;
  r.status = code;
  r.body = StatusJson(code, reason, message);
  r.SetHeader("Content-Type", "application/json");
  return r;
}

// Whether the Accept header admits JSON (absent, */*, application/*,
// application/json); kubectl asks v3 for JSON and v2 for protobuf only.
bool AcceptsJson(const http::HttpRequest& request) {
  const std::string* accept = request.Header("accept");
  if (accept == nullptr || accept->empty()) return true;
  for (absl::string_view part : absl::StrSplit(*accept, ',')) {
    absl::string_view media = absl::StripAsciiWhitespace(part.substr(0, part.find(';')));
    if (media == "*/*" || media == "application/*" || media == "application/json") return true;
  }
  return false;
}

// The If-None-Match header names this ETag (quoted, weak or "*").
bool NoneMatch(const http::HttpRequest& request, const std::string& etag) {
  const std::string* inm = request.Header("if-none-match");
  if (inm == nullptr) return false;
  for (absl::string_view part : absl::StrSplit(*inm, ',')) {
    absl::string_view tag = absl::StripAsciiWhitespace(part);
    absl::ConsumePrefix(&tag, "W/");
    if (tag == "*" || tag == absl::StrCat("\"", etag, "\"")) return true;
  }
  return false;
}

}  // namespace

OpenApiHandler::OpenApiHandler(const api::schema::Schema& schema, const api::ResourceRegistry& registry) {
  v2_ = MakeDocument(BuildOpenApiV2(schema, registry));
  nlohmann::json discovery_paths = nlohmann::json::object();
  for (const OpenApiGroupVersion& gv : OpenApiGroupVersions(registry)) {
    Document d = MakeDocument(BuildOpenApiV3(schema, registry, gv.group, gv.version));
    discovery_paths[gv.key] = {{"serverRelativeURL", absl::StrCat("/openapi/v3/", gv.key, "?hash=", d.etag)}};
    v3_.emplace(gv.key, std::move(d));
  }
  v3_discovery_ = MakeDocument({{"paths", std::move(discovery_paths)}});
  last_modified_ = HttpDate(std::time(nullptr));
}

const OpenApiHandler& OpenApiHandler::Builtin() {
  static const OpenApiHandler* handler =
      new OpenApiHandler(api::schema::Schema::Builtin(), api::ResourceRegistry::Builtin());
  return *handler;
}

const OpenApiHandler::Document* OpenApiHandler::V3(const std::string& key) const {
  auto it = v3_.find(key);
  return it == v3_.end() ? nullptr : &it->second;
}

http::HttpResponse OpenApiHandler::Serve(const http::HttpRequest& request) const {
  if (request.method != "GET" && request.method != "HEAD") {
    return StatusResponse(405, "MethodNotAllowed", absl::StrCat(request.method, " is not supported on ", request.path));
  }
  const Document* doc = nullptr;
  bool hashed = false;
  std::string path = request.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == "/openapi/v2") {
    doc = &v2_;
  } else if (path == "/openapi/v3") {
    doc = &v3_discovery_;
  } else if (absl::StartsWith(path, "/openapi/v3/")) {
    std::string key = path.substr(std::string("/openapi/v3/").size());
    doc = V3(key);
    if (doc != nullptr) {
      for (const auto& [k, v] : http::ParseQuery(request.query)) {
        if (k != "hash") continue;
        if (v != doc->etag) {
          // A stale hash: point the client at the current document.
          http::HttpResponse r;
          r.status = 301;
          r.SetHeader("Location", absl::StrCat("/openapi/v3/", key, "?hash=", doc->etag));
          r.SetHeader("Content-Type", "text/html; charset=utf-8");
          r.body = absl::StrCat("<a href=\"/openapi/v3/", key, "?hash=", doc->etag, "\">Moved Permanently</a>.\n");
          return r;
        }
        hashed = true;
      }
    }
  }
  if (doc == nullptr) {
    return StatusResponse(404, "NotFound",
                          absl::StrCat("the server could not find the requested resource (", request.method, " ",
                                       request.path, ")"));
  }
  if (!AcceptsJson(request)) {
    // The protobuf forms (application/com.github.proto-openapi.spec.v2@v1.0+protobuf,
    // ...v3@v1.0+protobuf) are not served.
    return StatusResponse(406, "NotAcceptable",
                          absl::StrCat("only the following media types are accepted: application/json"));
  }
  http::HttpResponse r;
  r.SetHeader("Etag", absl::StrCat("\"", doc->etag, "\""));
  r.SetHeader("Last-Modified", last_modified_);
  r.SetHeader("Vary", "Accept");
  if (hashed) {
    r.SetHeader("Cache-Control", "public, immutable");
    r.SetHeader("Expires", HttpDate(std::time(nullptr) + 365 * 24 * 3600));
  }
  if (NoneMatch(request, doc->etag)) {
    r.status = 304;
    return r;
  }
  r.status = 200;
  r.SetHeader("Content-Type", "application/json");
  if (request.method == "GET") r.body = doc->json;
  return r;
}

}  // namespace kelpie::apiserver
