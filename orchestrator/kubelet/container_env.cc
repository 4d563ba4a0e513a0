#include "orchestrator/kubelet/container_env.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/api/quantity.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_string()) return "";
  return obj[key].get<std::string>();
}

// An environment with Kubernetes' precedence: a later definition replaces
// the value but keeps the first position.
class EnvBuilder {
 public:
  void Set(const std::string& name, const std::string& value) {
    auto it = index_.find(name);
    if (it != index_.end()) {
      list_[it->second].second = value;
      return;
    }
    index_[name] = list_.size();
    list_.emplace_back(name, value);
  }
  std::optional<std::string> Get(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) return std::nullopt;
    return list_[it->second].second;
  }
  EnvList Take() { return std::move(list_); }

 private:
  EnvList list_;
  std::map<std::string, size_t> index_;
};

// Environment variable names envFrom accepts (C identifiers plus '-' and '.', as Kubernetes allows).
bool IsEnvVarName(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

std::string FormatMap(const json& map) {
  std::vector<std::string> lines;
  if (map.is_object()) {
    for (auto it = map.begin(); it != map.end(); ++it) {
      std::string v = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
      lines.push_back(absl::StrCat(it.key(), "=\"", absl::CEscape(v), "\""));
    }
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) absl::StrAppend(&out, i ? "\n" : "", lines[i]);
  return out;
}

// "metadata.labels['app']" -> ("metadata.labels", "app").
bool SubscriptedField(const std::string& path, const std::string& prefix, std::string* key) {
  if (!absl::StartsWith(path, prefix + "['") || !absl::EndsWith(path, "']")) return false;
  *key = path.substr(prefix.size() + 2, path.size() - prefix.size() - 4);
  return true;
}

// Data of a configMap (data and binaryData) or secret (base64 data, stringData) as strings.
std::map<std::string, std::string> ObjectData(const json& obj, bool secret) {
  std::map<std::string, std::string> out;
  if (obj.contains("data") && obj["data"].is_object()) {
    for (auto it = obj["data"].begin(); it != obj["data"].end(); ++it) {
      if (!it.value().is_string()) continue;
      std::string v = it.value().get<std::string>();
      if (secret) {
        std::string decoded;
        if (absl::Base64Unescape(v, &decoded)) v = decoded;
      }
      out[it.key()] = v;
    }
  }
  // stringData is write-only in Kubernetes (the API server folds it into
  // data); an object that still carries it is read the same way.
  if (secret && obj.contains("stringData") && obj["stringData"].is_object()) {
    for (auto it = obj["stringData"].begin(); it != obj["stringData"].end(); ++it) {
      if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
    }
  }
  if (!secret && obj.contains("binaryData") && obj["binaryData"].is_object()) {
    for (auto it = obj["binaryData"].begin(); it != obj["binaryData"].end(); ++it) {
      std::string decoded;
      if (it.value().is_string() && absl::Base64Unescape(it.value().get<std::string>(), &decoded)) {
        out[it.key()] = decoded;
      }
    }
  }
  return out;
}

}  // namespace

std::map<std::string, std::string> ConfigMapOrSecretData(const json& obj, bool secret) {
  return ObjectData(obj, secret);
}

std::string ExpandVars(const std::string& input,
                       const std::function<std::optional<std::string>(const std::string&)>& lookup) {
  std::string out;
  for (size_t i = 0; i < input.size(); ++i) {
    if (input[i] != '$' || i + 1 >= input.size()) {
      out.push_back(input[i]);
      continue;
    }
    char next = input[i + 1];
    if (next == '$') {
      out.push_back('$');
      ++i;
    } else if (next == '(') {
      size_t close = input.find(')', i + 2);
      if (close == std::string::npos) {
        out.append(input, i, std::string::npos);
        break;
      }
      std::string name = input.substr(i + 2, close - i - 2);
      std::optional<std::string> value = name.empty() ? std::nullopt : lookup(name);
      if (value) {
        out += *value;
      } else {
        out.append(input, i, close - i + 1);
      }
      i = close;
    } else {
      out.push_back('$');
    }
  }
  return out;
}

absl::StatusOr<std::string> PodFieldValue(const json& pod, const std::string& path, const PodEnvContext& context) {
  const json& meta = pod.contains("metadata") ? pod["metadata"] : json::object();
  const json& spec = pod.contains("spec") ? pod["spec"] : json::object();
  std::string key;
  if (path == "metadata.name") return Str(meta, "name");
  if (path == "metadata.namespace") return Str(meta, "namespace");
  if (path == "metadata.uid") return Str(meta, "uid");
  if (path == "metadata.labels") return FormatMap(meta.value("labels", json::object()));
  if (path == "metadata.annotations") return FormatMap(meta.value("annotations", json::object()));
  if (SubscriptedField(path, "metadata.labels", &key)) {
    return Str(meta.value("labels", json::object()), key.c_str());
  }
  if (SubscriptedField(path, "metadata.annotations", &key)) {
    return Str(meta.value("annotations", json::object()), key.c_str());
  }
  if (path == "spec.nodeName") return Str(spec, "nodeName");
  if (path == "spec.serviceAccountName") {
    std::string sa = Str(spec, "serviceAccountName");
    return sa.empty() ? Str(spec, "serviceAccount") : sa;
  }
  if (path == "status.podIP" || path == "status.podIPs") return context.pod_ip;
  if (path == "status.hostIP" || path == "status.hostIPs") return context.host_ip;
  return absl::InvalidArgumentError(absl::StrCat("unsupported fieldRef.fieldPath \"", path, "\""));
}

absl::StatusOr<std::string> ResourceFieldValue(const json& pod, const std::string& container_name,
                                               const std::string& resource, const std::string& divisor,
                                               const PodEnvContext& context) {
  json container;
  for (const char* list : {"containers", "initContainers"}) {
    for (const auto& c : pod["spec"].value(list, json::array())) {
      if (Str(c, "name") == container_name) container = c;
    }
  }
  if (container.is_null()) {
    return absl::InvalidArgumentError(absl::StrCat("resourceFieldRef: no container \"", container_name, "\""));
  }
  size_t dot = resource.find('.');
  if (dot == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported resourceFieldRef.resource \"", resource, "\""));
  }
  std::string kind = resource.substr(0, dot), name = resource.substr(dot + 1);
  if ((kind != "limits" && kind != "requests") ||
      (name != "cpu" && name != "memory" && name != "ephemeral-storage")) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported resourceFieldRef.resource \"", resource, "\""));
  }
  const json resources = container.value("resources", json::object());
  std::string text = Str(resources.value(kind, json::object()), name.c_str());
  // Requests default to limits; absent limits are the node's allocatable.
  if (text.empty() && kind == "requests") text = Str(resources.value("limits", json::object()), name.c_str());
  int64_t millis = 0;
  if (!text.empty()) {
    auto parsed = api::Quantity::Parse(text);
    if (!parsed.ok()) return parsed.status();
    millis = parsed->MilliValue();
  } else if (kind == "limits") {
    millis = name == "cpu" ? context.node_cpu_millis : name == "memory" ? context.node_memory_bytes * 1000 : 0;
  }
  auto div = api::Quantity::Parse(divisor.empty() ? "1" : divisor);
  if (!div.ok()) return div.status();
  const int64_t div_millis = div->MilliValue();
  if (div_millis <= 0) return absl::InvalidArgumentError("resourceFieldRef.divisor must be positive");
  int64_t value = (millis + div_millis - 1) / div_millis;
  if (name == "cpu" && value == 0 && millis > 0) value = 1;
  return std::to_string(value);
}

EnvList ServiceEnvironment(const std::vector<json>& services) {
  EnvBuilder env;
  for (const auto& svc : services) {
    const json& spec = svc.contains("spec") ? svc["spec"] : json::object();
    std::string ip = Str(spec, "clusterIP");
    if (ip.empty() || ip == "None") continue;
    std::string name = absl::AsciiStrToUpper(absl::StrReplaceAll(Str(svc["metadata"], "name"), {{"-", "_"}}));
    const json ports = spec.value("ports", json::array());
    if (ports.empty()) continue;
    env.Set(name + "_SERVICE_HOST", ip);
    env.Set(name + "_SERVICE_PORT", std::to_string(ports[0].value("port", 0)));
    for (const auto& p : ports) {
      std::string port_name = Str(p, "name");
      if (!port_name.empty()) {
        env.Set(absl::StrCat(name, "_SERVICE_PORT_",
                             absl::AsciiStrToUpper(absl::StrReplaceAll(port_name, {{"-", "_"}}))),
                std::to_string(p.value("port", 0)));
      }
    }
    std::string proto0 = absl::AsciiStrToLower(ports[0].value("protocol", "TCP"));
    env.Set(name + "_PORT", absl::StrCat(proto0, "://", ip, ":", ports[0].value("port", 0)));
    for (const auto& p : ports) {
      std::string proto = p.value("protocol", "TCP");
      std::string prefix = absl::StrCat(name, "_PORT_", p.value("port", 0), "_", absl::AsciiStrToUpper(proto));
      env.Set(prefix, absl::StrCat(absl::AsciiStrToLower(proto), "://", ip, ":", p.value("port", 0)));
      env.Set(prefix + "_PROTO", absl::AsciiStrToLower(proto));
      env.Set(prefix + "_PORT", std::to_string(p.value("port", 0)));
      env.Set(prefix + "_ADDR", ip);
    }
  }
  return env.Take();
}

absl::StatusOr<EnvList> ContainerEnvironment(const json& pod, const json& container, const PodEnvContext& context,
                                             PodApi& api) {
  std::string ns = Str(pod["metadata"], "namespace");
  const json& spec = pod["spec"];
  // Service links: the pod namespace's services (unless enableServiceLinks
  // is false) and always the master service default/kubernetes.
  std::vector<json> services;
  if (spec.value("enableServiceLinks", true)) {
    auto list = api.ListServices(ns);
    if (!list.ok()) return list.status();
    for (const auto& s : *list) services.push_back(s);
  }
  if (ns != "default" || !spec.value("enableServiceLinks", true)) {
    auto master = api.GetService("default", "kubernetes");
    if (master.ok()) services.push_back(*master);
  }
  std::sort(services.begin(), services.end(), [](const json& a, const json& b) {
    return Str(a["metadata"], "name") < Str(b["metadata"], "name");
  });
  EnvList service_env = ServiceEnvironment(services);
  std::map<std::string, std::string> service_map(service_env.begin(), service_env.end());

  // Fetched once per container build.
  std::map<std::string, absl::StatusOr<json>> config_maps, secrets;
  auto fetch = [&](bool secret, const std::string& name) -> const absl::StatusOr<json>& {
    auto& cache = secret ? secrets : config_maps;
    auto it = cache.find(name);
    if (it == cache.end()) {
      it = cache.emplace(name, secret ? api.GetSecret(ns, name) : api.GetConfigMap(ns, name)).first;
    }
    return it->second;
  };

  EnvBuilder env;
  for (const auto& from : container.value("envFrom", json::array())) {
    std::string prefix = Str(from, "prefix");
    bool secret = from.contains("secretRef");
    const json ref = secret ? from["secretRef"] : from.value("configMapRef", json::object());
    std::string name = Str(ref, "name");
    const auto& obj = fetch(secret, name);
    if (!obj.ok()) {
      if (client::IsNotFound(obj.status()) && ref.value("optional", false)) continue;
      return absl::FailedPreconditionError(absl::StrCat(secret ? "secret" : "configmap", " \"", name,
                                                   "\" not found"));
    }
    for (const auto& [k, v] : ObjectData(*obj, secret)) {
      if (IsEnvVarName(prefix + k)) env.Set(prefix + k, v);
    }
  }
  auto lookup = [&](const std::string& name) -> std::optional<std::string> {
    if (auto v = env.Get(name)) return v;
    auto it = service_map.find(name);
    if (it != service_map.end()) return it->second;
    return std::nullopt;
  };
  for (const auto& e : container.value("env", json::array())) {
    std::string name = Str(e, "name");
    if (e.contains("valueFrom") && e["valueFrom"].is_object()) {
      const json& from = e["valueFrom"];
      if (from.contains("fieldRef")) {
        auto v = PodFieldValue(pod, Str(from["fieldRef"], "fieldPath"), context);
        if (!v.ok()) return v.status();
        env.Set(name, *v);
      } else if (from.contains("resourceFieldRef")) {
        const json& r = from["resourceFieldRef"];
        std::string cname = Str(r, "containerName");
        std::string divisor = r.contains("divisor") && r["divisor"].is_number()
                                  ? std::to_string(r["divisor"].get<int64_t>())
                                  : Str(r, "divisor");
        auto v = ResourceFieldValue(pod, cname.empty() ? Str(container, "name") : cname, Str(r, "resource"),
                                    divisor, context);
        if (!v.ok()) return v.status();
        env.Set(name, *v);
      } else if (from.contains("configMapKeyRef") || from.contains("secretKeyRef")) {
        bool secret = from.contains("secretKeyRef");
        const json& ref = secret ? from["secretKeyRef"] : from["configMapKeyRef"];
        std::string obj_name = Str(ref, "name"), key = Str(ref, "key");
        bool optional = ref.value("optional", false);
        const auto& obj = fetch(secret, obj_name);
        if (!obj.ok()) {
          if (client::IsNotFound(obj.status()) && optional) continue;
          return absl::FailedPreconditionError(absl::StrCat(secret ? "secret" : "configmap", " \"", obj_name,
                                                            "\" not found"));
        }
        auto data = ObjectData(*obj, secret);
        auto it = data.find(key);
        if (it == data.end()) {
          if (optional) continue;
          return absl::FailedPreconditionError(absl::StrCat("couldn't find key ", key, " in ",
                                                            secret ? "Secret " : "ConfigMap ", ns, "/", obj_name));
        }
        env.Set(name, it->second);
      }
    } else {
      env.Set(name, ExpandVars(Str(e, "value"), lookup));
    }
  }
  for (const auto& [k, v] : service_env) {
    if (!env.Get(k)) env.Set(k, v);
  }
  return env.Take();
}

std::vector<std::string> ExpandCommand(const std::vector<std::string>& words, const EnvList& env) {
  std::map<std::string, std::string> map;
  for (const auto& [k, v] : env) map[k] = v;
  auto lookup = [&](const std::string& name) -> std::optional<std::string> {
    auto it = map.find(name);
    if (it == map.end()) return std::nullopt;
    return it->second;
  };
  std::vector<std::string> out;
  for (const auto& w : words) out.push_back(ExpandVars(w, lookup));
  return out;
}

}  // namespace kelpie::kubelet
