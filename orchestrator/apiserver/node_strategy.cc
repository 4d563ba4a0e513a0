#include "orchestrator/apiserver/node_strategy.h"

#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace kelpie::apiserver {
namespace {

using nlohmann::json;

constexpr char kPrefix[] = "/registry/ranges/podcidrs/";

std::string NodeName(const json& node) {
  return node.contains("metadata") && node["metadata"].is_object() ? node["metadata"].value("name", "") : "";
}

api::ApiError InvalidNode(const json& node, std::vector<api::StatusCause> causes) {
  return api::Invalid("", "Node", NodeName(node), std::move(causes));
}

std::string SpecPodCidr(const json& node) {
  if (!node.contains("spec") || !node["spec"].is_object()) return "";
  const json& spec = node["spec"];
  return spec.contains("podCIDR") && spec["podCIDR"].is_string() ? spec["podCIDR"].get<std::string>() : "";
}

}  // namespace

NodeStrategy::NodeStrategy(store::Store& store, net::Ipv4Cidr cluster_cidr, int node_mask_size)
    : store_(store), cluster_cidr_(cluster_cidr), node_mask_size_(node_mask_size) {}

std::string NodeStrategy::CidrKey(const std::string& cidr) {
  return absl::StrCat(kPrefix, absl::StrReplaceAll(cidr, {{"/", "-"}}));
}

absl::Status NodeStrategy::PrepareCreate(json& node, WriteExtras* extras, api::ApiError* error) {
  std::string requested = SpecPodCidr(node);
  std::string chosen;
  if (!requested.empty()) {
    auto parsed = net::Ipv4Cidr::Parse(requested);
    if (!parsed.ok()) {
      *error = InvalidNode(node, {{"FieldValueInvalid",
                                   absl::StrCat("Invalid value: \"", requested, "\": ", parsed.status().message()),
                                   "spec.podCIDR"}});
      return parsed.status();
    }
    chosen = parsed->ToString();
    // A range inside the cluster CIDR is reserved so nobody else gets it;
    // one outside it is the user's business.
    if (!cluster_cidr_.Contains(parsed->network())) chosen.clear();
    if (!chosen.empty() && store_.Get(CidrKey(chosen)).ok()) {
      *error = InvalidNode(node, {{"FieldValueInvalid",
                                   absl::StrCat("Invalid value: \"", requested, "\": already allocated to another node"),
                                   "spec.podCIDR"}});
      return absl::AlreadyExistsError("cidr taken");
    }
  } else {
    if (node_mask_size_ < cluster_cidr_.prefix_length()) {
      *error = InvalidNode(node, {{"FieldValueInvalid", "the cluster CIDR is smaller than one node's range",
                                   "spec.podCIDR"}});
      return absl::FailedPreconditionError("mask");
    }
    auto used = store_.Range(kPrefix, {});
    if (!used.ok()) {
      *error = api::FromStoreStatus(used.status(), "", "nodes", NodeName(node));
      return used.status();
    }
    std::set<std::string> taken;
    for (const auto& kv : used->kvs) taken.insert(kv.key);
    uint64_t block = uint64_t{1} << (32 - node_mask_size_);
    uint64_t blocks = cluster_cidr_.size() / block;
    for (uint64_t i = 0; i < blocks; ++i) {
      std::string cidr = absl::StrCat(net::Ipv4ToString(cluster_cidr_.network() + static_cast<uint32_t>(i * block)),
                                      "/", node_mask_size_);
      if (!taken.count(CidrKey(cidr))) {
        chosen = cidr;
        break;
      }
    }
    if (chosen.empty()) {
      *error = InvalidNode(node, {{"FieldValueInvalid",
                                   absl::StrCat("no pod CIDR left in ", cluster_cidr_.ToString(), " for a /",
                                                node_mask_size_),
                                   "spec.podCIDR"}});
      return absl::ResourceExhaustedError("cidrs");
    }
    node["spec"]["podCIDR"] = chosen;
    node["spec"]["podCIDRs"] = json::array({chosen});
  }
  if (!chosen.empty()) {
    // Taken concurrently: the create retries (and picks another range).
    extras->compares.push_back({CidrKey(chosen), store::Compare::Target::kCreateRevision,
                                store::Compare::Result::kEqual, 0});
    extras->ops.push_back(store::Op::Put(CidrKey(chosen), NodeName(node)));
  }
  return absl::OkStatus();
}

absl::Status NodeStrategy::PrepareUpdate(const json& old_node, json& node, WriteExtras* extras,
                                         api::ApiError* error) {
  std::string before = SpecPodCidr(old_node);
  std::string after = SpecPodCidr(node);
  if (!before.empty() && after != before) {
    *error = InvalidNode(node, {{"FieldValueForbidden",
                                 "Forbidden: node updates may not change podCIDR except from \"\" to valid",
                                 "spec.podCIDRs"}});
    return absl::InvalidArgumentError("podCIDR is immutable");
  }
  if (before.empty() && !after.empty()) {
    // From "" to a range: reserved like a range requested at creation.
    json copy = node;
    absl::Status st = PrepareCreate(copy, extras, error);
    if (st.ok()) node = std::move(copy);
    return st;
  }
  return absl::OkStatus();
}

void NodeStrategy::PrepareDelete(const json& node, WriteExtras* extras) {
  std::string cidr = SpecPodCidr(node);
  if (cidr.empty()) return;
  auto parsed = net::Ipv4Cidr::Parse(cidr);
  if (parsed.ok() && cluster_cidr_.Contains(parsed->network())) {
    extras->ops.push_back(store::Op::Delete(CidrKey(parsed->ToString())));
  }
}

}  // namespace kelpie::apiserver
