#include "orchestrator/runtime/network/cni_network.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/log.h"
#include "common/net/ip_cidr.h"
#include "common/subprocess.h"

namespace kelpie::runtime {
namespace {

using nlohmann::json;

constexpr const char* kCniVersion = "1.0.0";

}  // namespace

std::string CniNetwork::BuildConflist(const CniOptions& options) {
  json bridge = {
      {"type", "bridge"},
      {"bridge", options.bridge},
      {"isGateway", true},
      {"ipMasq", false},
      {"hairpinMode", true},
      {"ipam",
       {{"type", "host-local"},
        {"ranges", json::array({json::array({{{"subnet", options.pod_cidr}}})})},
        {"routes", json::array({{{"dst", "0.0.0.0/0"}}})},
        {"dataDir", options.state_dir + "/ipam"}}},
  };
  if (options.mtu > 0) bridge["mtu"] = options.mtu;
  json portmap = {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}, {"snat", true}};
  json list = {{"cniVersion", kCniVersion},
               {"name", options.network_name},
               {"plugins", json::array({bridge, portmap})}};
  return list.dump(2);
}

CniNetwork::CniNetwork(CniOptions options) : options_(std::move(options)) {
  conflist_ = BuildConflist(options_);
}

absl::StatusOr<CniNetwork> CniNetwork::Create(const CniOptions& options) {
  if (options.pod_cidr.empty()) return absl::InvalidArgumentError("CNI: a pod CIDR is required");
  auto cidr = net::Ipv4Cidr::Parse(options.pod_cidr);
  if (!cidr.ok()) return absl::InvalidArgumentError(absl::StrCat("CNI pod CIDR: ", cidr.status().message()));
  if (options.state_dir.empty()) return absl::InvalidArgumentError("CNI: a state directory is required");
  if (options.bridge.empty() || options.bridge.size() > 15) {
    return absl::InvalidArgumentError(
        absl::StrCat("CNI bridge name '", options.bridge, "' must have 1 to 15 characters"));
  }
  for (const char* plugin : {"bridge", "host-local", "portmap", "loopback"}) {
    if (!PathExists(options.plugin_dir + "/" + plugin)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "CNI plugin ", plugin, " not found in ", options.plugin_dir,
          " (install containernetworking-plugins)"));
    }
  }
  CniNetwork network(options);
  if (auto s = MakeDirectories(options.state_dir + "/ipam", 0700); !s.ok()) return s;
  if (auto s = WriteFileAtomically(network.conflist_path(), network.conflist_, 0644); !s.ok()) return s;
  return network;
}

bool CniNetwork::Runs(const json& plugin, const CniAttachment& attachment) {
  // portmap without mappings passes the previous result through and has
  // nothing to undo: a process (and an iptables lock) saved per pod.
  bool port_mapper = plugin.contains("capabilities") && plugin["capabilities"].value("portMappings", false);
  if (!port_mapper) return true;
  return std::any_of(attachment.port_mappings.begin(), attachment.port_mappings.end(),
                     [](const PortMapping& m) { return m.host_port > 0; });
}

std::string CniNetwork::conflist_path() const {
  return absl::StrCat(options_.state_dir, "/", options_.network_name, ".conflist");
}

std::string CniNetwork::ipam_data_dir() const {
  return absl::StrCat(options_.state_dir, "/ipam/", options_.network_name);
}

std::string CniNetwork::PluginConf(size_t index, const CniAttachment& attachment,
                                   const std::string& prev_result) const {
  json list = json::parse(conflist_);
  json conf = list["plugins"][index];
  conf["cniVersion"] = kCniVersion;
  conf["name"] = options_.network_name;
  if (conf.contains("capabilities") && conf["capabilities"].value("portMappings", false)) {
    json mappings = json::array();
    for (const PortMapping& m : attachment.port_mappings) {
      if (m.host_port <= 0) continue;
      json pm = {{"hostPort", m.host_port}, {"containerPort", m.container_port},
                 {"protocol", m.protocol.empty() ? "tcp" : m.protocol}};
      if (!m.host_ip.empty()) pm["hostIP"] = m.host_ip;
      mappings.push_back(pm);
    }
    conf["runtimeConfig"] = {{"portMappings", mappings}};
  }
  if (!prev_result.empty()) conf["prevResult"] = json::parse(prev_result, nullptr, false);
  return conf.dump();
}

absl::StatusOr<std::string> CniNetwork::Invoke(const std::string& command,
                                               const std::string& plugin_conf,
                                               const CniAttachment& attachment,
                                               const std::string& ifname) const {
  json conf = json::parse(plugin_conf);
  std::string type = conf.value("type", "");
  SubprocessOptions options;
  options.timeout = std::chrono::seconds(60);
  options.stdin_text = plugin_conf;
  options.env = {
      {"CNI_COMMAND", command},
      {"CNI_CONTAINERID", attachment.container_id},
      {"CNI_NETNS", attachment.netns_path},
      {"CNI_IFNAME", ifname},
      {"CNI_PATH", options_.plugin_dir},
      {"CNI_ARGS", absl::StrCat("IgnoreUnknown=1;K8S_POD_NAMESPACE=", attachment.pod_namespace,
                                ";K8S_POD_NAME=", attachment.pod_name,
                                ";K8S_POD_INFRA_CONTAINER_ID=", attachment.container_id)},
  };
  auto result = RunSubprocess({options_.plugin_dir + "/" + type}, options);
  if (!result.ok()) return result.status();
  if (!result->Succeeded()) {
    std::string message = result->stderr_text;
    json err = json::parse(result->stdout_text, nullptr, false);
    if (!err.is_discarded() && err.is_object()) {
      message = absl::StrCat("code ", err.value("code", 0), ": ", err.value("msg", ""),
                             err.contains("details") ? absl::StrCat(" (", err.value("details", ""), ")") : "");
    }
    if (result->timed_out) message = "timed out";
    return absl::InternalError(absl::StrCat("CNI ", command, " of plugin ", type, " for ",
                                            attachment.container_id, ": ", message));
  }
  return result->stdout_text;
}

absl::StatusOr<CniResult> CniNetwork::Add(const CniAttachment& attachment, StepTimings* timings) const {
  // "lo" and the list's interface are independent: the loopback plugin runs
  // on its own thread beside the list (bridge + host-local, which locks its
  // own lease store).
  absl::Status lo_status;
  std::thread lo_thread([&] {
    json loopback = {{"cniVersion", kCniVersion}, {"name", "cni-loopback"}, {"type", "loopback"}};
    ScopedStep lo_step(timings, "cni loopback (parallel)");
    auto lo = Invoke("ADD", loopback.dump(), attachment, "lo");
    if (!lo.ok()) lo_status = lo.status();
  });

  json list = json::parse(conflist_);
  std::string prev;
  absl::Status list_status;
  for (size_t i = 0; i < list["plugins"].size(); ++i) {
    if (!Runs(list["plugins"][i], attachment)) continue;
    ScopedStep plugin_step(timings, absl::StrCat("cni ", list["plugins"][i].value("type", "")));
    auto out = Invoke("ADD", PluginConf(i, attachment, prev), attachment, attachment.ifname);
    if (!out.ok()) {
      list_status = out.status();
      break;
    }
    prev = *out;
  }
  lo_thread.join();
  if (!list_status.ok() || !lo_status.ok()) {
    absl::Status cleanup = Delete(attachment, prev);
    if (!cleanup.ok()) spdlog::warn("CNI: undoing a failed ADD: {}", cleanup.message());
    return list_status.ok() ? lo_status : list_status;
  }
  auto parsed = ParseResult(prev);
  if (!parsed.ok()) {
    (void)Delete(attachment, prev);
    return parsed.status();
  }
  parsed->raw_json = prev;
  return parsed;
}

absl::Status CniNetwork::Delete(const CniAttachment& attachment, const std::string& prev_result_json) const {
  json list = json::parse(conflist_);
  absl::Status first;
  for (size_t i = list["plugins"].size(); i-- > 0;) {
    if (!Runs(list["plugins"][i], attachment)) continue;
    auto out = Invoke("DEL", PluginConf(i, attachment, prev_result_json), attachment, attachment.ifname);
    if (!out.ok() && first.ok()) first = out.status();
  }
  return first;
}

absl::StatusOr<CniResult> CniNetwork::ParseResult(const std::string& text) {
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InternalError(absl::StrCat("CNI result is not a JSON object: ", text.substr(0, 200)));
  }
  CniResult result;
  if (doc.contains("ips") && doc["ips"].is_array()) {
    for (const json& ip : doc["ips"]) {
      std::string address = ip.value("address", "");
      if (address.empty() || address.find(':') != std::string::npos) continue;  // IPv6 later
      result.ip = address.substr(0, address.find('/'));
      result.gateway = ip.value("gateway", "");
      break;
    }
  }
  if (result.ip.empty()) {
    return absl::InternalError(absl::StrCat("CNI result has no IPv4 address: ", text.substr(0, 200)));
  }
  return result;
}

}  // namespace kelpie::runtime
