// `kelpie observe`: reads flows from a node's observability endpoint
// (GET /v1/flows) with Hubble-style filters, as a table or JSON lines;
// --follow keeps streaming new flows until interrupted.
#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cmd/commands.h"
#include "common/http/http_client.h"
#include "common/http/http_message.h"
#include "exporters/flows/flow_format.h"

namespace kelpie::cmd {
namespace {

struct ObserveFlags {
  std::string server = "https://127.0.0.1:9965";
  std::string ca_file;
  std::vector<std::string> namespaces, pods, from_pods, to_pods, labels, services, verdicts, protocols, drop_reasons;
  std::vector<int> ports;
  size_t last = 0;
  std::string since, until;
  bool follow = false;
  std::string output = "table";
};

std::string Query(const ObserveFlags& f) {
  std::vector<std::pair<std::string, std::string>> params;
  auto add = [&](const char* key, const std::vector<std::string>& values) {
    for (const auto& v : values) params.emplace_back(key, v);
  };
  add("namespace", f.namespaces);
  add("pod", f.pods);
  add("from-pod", f.from_pods);
  add("to-pod", f.to_pods);
  add("label", f.labels);
  add("service", f.services);
  add("verdict", f.verdicts);
  add("protocol", f.protocols);
  add("drop-reason", f.drop_reasons);
  for (int p : f.ports) params.emplace_back("port", std::to_string(p));
  if (f.last) params.emplace_back("last", std::to_string(f.last));
  if (!f.since.empty()) params.emplace_back("since", f.since);
  if (!f.until.empty()) params.emplace_back("until", f.until);
  if (f.follow) params.emplace_back("follow", "1");
  std::string q;
  for (const auto& [k, v] : params) absl::StrAppend(&q, q.empty() ? "?" : "&", k, "=", http::PercentEncode(v));
  return q;
}

int RunObserve(const ObserveFlags& f) {
  http::HttpClientOptions options;
  options.server = f.server;
  options.tls.ca_file = f.ca_file;
  options.request_timeout = f.follow ? std::chrono::hours(24 * 365) : std::chrono::seconds(30);
  auto client = http::HttpClient::Create(options);
  if (!client.ok()) {
    std::cerr << "kelpie observe: " << client.status().message() << "\n";
    return 2;
  }
  bool table = f.output == "table";
  if (table) std::cout << flows::TableHeader() << "\n" << std::flush;
  std::string pending;
  std::string error_body;
  int status = 0;
  bool bad_line = false;
  auto r = (*client)->Stream({.method = "GET", .target = "/v1/flows" + Query(f)}, [&](std::string_view data) {
    pending.append(data);
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string line = pending.substr(start, nl - start);
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) {
        // Not a flow: an error message from the endpoint.
        error_body += line + "\n";
        bad_line = true;
        continue;
      }
      if (!table) {
        std::cout << line << "\n";
      } else if (auto flow = flows::FlowFromJson(j); flow.ok()) {
        std::cout << flows::FlowToTableRow(*flow) << "\n";
      }
    }
    pending.erase(0, start);
    std::cout << std::flush;
    return true;
  });
  if (!r.ok()) {
    std::cerr << "kelpie observe: " << f.server << ": " << r.status().message() << "\n";
    return 1;
  }
  status = r->status;
  if (status != 200 || bad_line) {
    std::cerr << "kelpie observe: HTTP " << status << ": " << error_body << pending;
    return 1;
  }
  return 0;
}

}  // namespace

CommandRunner RegisterObserveCommand(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "observe", "Show network flows a node's eBPF dataplane recorded, named by pod and service (like "
                 "`hubble observe`); filters of one kind are ORed, different kinds ANDed");
  auto f = std::make_shared<ObserveFlags>();
  app->add_option("--server", f->server, "The node's observability endpoint")->capture_default_str();
  app->add_option("--ca-file", f->ca_file,
                  "CA certificate of the endpoint (<data-dir>/observability/ca.crt on the node)")
      ->required();
  app->add_option("--namespace,-n", f->namespaces, "Flows with an end in this namespace");
  app->add_option("--pod", f->pods, "Flows with an end in this pod ([namespace/]name, name* for a prefix)");
  app->add_option("--from-pod", f->from_pods, "Flows from this pod");
  app->add_option("--to-pod", f->to_pods, "Flows to this pod");
  app->add_option("--label,-l", f->labels, "Flows with an end carrying these labels (k=v,k2=v2)");
  app->add_option("--service", f->services, "Flows to this service ([namespace/]name)");
  app->add_option("--verdict", f->verdicts, "FORWARDED or DROPPED");
  app->add_option("--protocol", f->protocols, "TCP or UDP");
  app->add_option("--port", f->ports, "Flows with an end on this port")->check(CLI::Range(1, 65535));
  app->add_option("--drop-reason", f->drop_reasons, "Kernel drop reason (NETFILTER_DROP, NO_SOCKET, ...)");
  app->add_option("--last", f->last, "Only the last N stored flows that match");
  app->add_option("--since", f->since, "Flows after this time (RFC 3339) or this long ago (30s, 5m)");
  app->add_option("--until", f->until, "Flows before this time (RFC 3339) or this long ago");
  app->add_flag("--follow,-f", f->follow, "Keep streaming new flows");
  app->add_option("--output,-o", f->output, "table or json (one flow per line)")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  return [f] { return RunObserve(*f); };
}

}  // namespace kelpie::cmd
