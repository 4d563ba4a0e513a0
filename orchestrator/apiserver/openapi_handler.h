// Serves /openapi/v2 and /openapi/v3 as kube-apiserver does: documents are
// generated once from the schema model, kept serialized with their ETag (the
// upper-case hex SHA-512 of the JSON, kube-openapi's hash), and answered
// with ETag / If-None-Match (304) and Last-Modified. The v3 discovery
// document lists each group/version at /openapi/v3/<key>?hash=<etag>; a
// request carrying the current hash is cacheable for a year
// (Cache-Control: public, immutable), a stale hash is redirected (301) to
// the current one.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "common/http/http_message.h"
#include "orchestrator/api/resource_registry.h"
#include "orchestrator/api/schema/schema.h"

namespace kelpie::apiserver {

class OpenApiHandler {
 public:
  OpenApiHandler(const api::schema::Schema& schema, const api::ResourceRegistry& registry);
  // Built from the built-in schema and registry on first use.
  static const OpenApiHandler& Builtin();

  static bool Handles(const std::string& path) { return path == "/openapi/v2" || path.rfind("/openapi/v3", 0) == 0; }
  // Answers a GET of an /openapi path (404 Status for an unknown group/version).
  http::HttpResponse Serve(const http::HttpRequest& request) const;

  struct Document {
    std::string json;
    std::string etag;  // unquoted
  };
  const Document* V2() const { return &v2_; }
  const Document* V3(const std::string& key) const;
  const Document& V3Discovery() const { return v3_discovery_; }

 private:
  Document v2_;
  Document v3_discovery_;
  std::map<std::string, Document> v3_;  // "api/v1", "apis/apps/v1", ...
  std::string last_modified_;           // RFC 1123, when the documents were built
};

}  // namespace kelpie::apiserver
