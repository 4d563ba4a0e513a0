#include "orchestrator/client/kubeconfig.h"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include "absl/strings/str_cat.h"
#include "common/base64.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace kelpie::client {
namespace {

const YAML::Node FindNamed(const YAML::Node& list, const std::string& name) {
  if (list && list.IsSequence()) {
    for (const auto& entry : list) {
      if (entry["name"] && entry["name"].as<std::string>() == name) return entry;
    }
  }
  return YAML::Node();
}

// A *-data field (base64) or its file counterpart, relative to the kubeconfig.
absl::StatusOr<std::string> ReadDataOrFile(const YAML::Node& node, const std::string& data_key,
                                           const std::string& file_key, const std::string& config_path) {
  if (node[data_key]) {
    auto decoded = Base64Decode(node[data_key].as<std::string>());
    if (!decoded) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_path, ": field ", data_key, " is not valid base64"));
    }
    return *decoded;
  }
  if (node[file_key]) {
    std::string file = node[file_key].as<std::string>();
    if (!file.empty() && file[0] != '/') {
      auto slash = config_path.rfind('/');
      if (slash != std::string::npos) file = config_path.substr(0, slash + 1) + file;
    }
    return ReadFileToString(file);
  }
  return std::string();
}

}  // namespace

absl::Status WriteKubeconfig(const std::string& path, const KubeconfigContents& c, mode_t mode) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "apiVersion" << YAML::Value << "v1";
  out << YAML::Key << "kind" << YAML::Value << "Config";
  out << YAML::Key << "clusters" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << c.cluster_name;
  out << YAML::Key << "cluster" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "server" << YAML::Value << c.server;
  out << YAML::Key << "certificate-authority-data" << YAML::Value << Base64Encode(c.ca_certificate_pem);
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "users" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << c.user_name;
  out << YAML::Key << "user" << YAML::Value << YAML::BeginMap;
  if (!c.client_certificate_pem.empty()) {
    out << YAML::Key << "client-certificate-data" << YAML::Value
        << Base64Encode(c.client_certificate_pem);
    out << YAML::Key << "client-key-data" << YAML::Value << Base64Encode(c.client_key_pem);
  }
  if (!c.token.empty()) out << YAML::Key << "token" << YAML::Value << c.token;
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "contexts" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << c.cluster_name;
  out << YAML::Key << "context" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "cluster" << YAML::Value << c.cluster_name;
  out << YAML::Key << "user" << YAML::Value << c.user_name;
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "current-context" << YAML::Value << c.cluster_name;
  out << YAML::Key << "preferences" << YAML::Value << YAML::BeginMap << YAML::EndMap;
  out << YAML::EndMap;
  return WriteFileAtomically(path, std::string(out.c_str()) + "\n", mode);
}

absl::StatusOr<KubeconfigContents> LoadKubeconfig(const std::string& path) {
  KELPIE_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ":", e.mark.line + 1, ":",
                                                   e.mark.column + 1, ": invalid YAML: ", e.msg));
  }
  try {
    std::string context_name = root["current-context"] ? root["current-context"].as<std::string>() : "";
    if (context_name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": no current-context set"));
    }
    YAML::Node context = FindNamed(root["contexts"], context_name);
    if (!context || !context["context"]) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": context \"", context_name, "\" not found"));
    }
    KubeconfigContents c;
    c.cluster_name = context["context"]["cluster"].as<std::string>("");
    c.user_name = context["context"]["user"].as<std::string>("");
    YAML::Node cluster = FindNamed(root["clusters"], c.cluster_name);
    if (!cluster || !cluster["cluster"] || !cluster["cluster"]["server"]) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": cluster \"", c.cluster_name, "\" not found or has no server"));
    }
    c.server = cluster["cluster"]["server"].as<std::string>();
    KELPIE_ASSIGN_OR_RETURN(c.ca_certificate_pem,
                            ReadDataOrFile(cluster["cluster"], "certificate-authority-data",
                                           "certificate-authority", path));
    YAML::Node user = FindNamed(root["users"], c.user_name);
    if (user && user["user"]) {
      KELPIE_ASSIGN_OR_RETURN(c.client_certificate_pem,
                              ReadDataOrFile(user["user"], "client-certificate-data",
                                             "client-certificate", path));
      KELPIE_ASSIGN_OR_RETURN(c.client_key_pem, ReadDataOrFile(user["user"], "client-key-data",
                                                               "client-key", path));
      if (user["user"]["token"]) c.token = user["user"]["token"].as<std::string>();
    }
    return c;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ":", e.mark.line + 1, ":",
                                                   e.mark.column + 1, ": ", e.msg));
  }
}

http::HttpClientOptions ClientOptionsFromKubeconfig(const KubeconfigContents& c) {
  http::HttpClientOptions o;
  o.server = c.server;
  o.tls.ca_pem = c.ca_certificate_pem;
  o.tls.certificate_pem = c.client_certificate_pem;
  o.tls.private_key_pem = c.client_key_pem;
  o.bearer_token = c.token;
  return o;
}

}  // namespace kelpie::client
