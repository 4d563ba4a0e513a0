#include "orchestrator/scheduler/pod_info.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "orchestrator/api/quantity.h"

namespace kelpie::scheduler {
namespace {

using nlohmann::json;

const json& Field(const json& obj, const char* key) {
  static const json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

std::string Str(const json& obj, const char* key, const std::string& fallback = "") {
  const json& v = Field(obj, key);
  return v.is_string() ? v.get<std::string>() : fallback;
}

Labels DecodeLabels(const json& obj) {
  Labels out;
  if (!obj.is_object()) return out;
  for (const auto& [k, v] : obj.items()) {
    if (v.is_string()) out.emplace(k, v.get<std::string>());
  }
  return out;
}

// A v1.ResourceList into Resources; `what` names the field in errors.
absl::StatusOr<Resources> DecodeResourceList(const json& list, const std::string& what) {
  Resources r;
  if (!list.is_object()) return r;
  for (const auto& [name, value] : list.items()) {
    std::string text;
    if (value.is_string()) {
      text = value.get<std::string>();
    } else if (value.is_number_integer()) {
      text = std::to_string(value.get<int64_t>());
    } else if (value.is_number()) {
      text = value.dump();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(what, ".", name, ": not a quantity"));
    }
    auto q = api::Quantity::Parse(text);
    if (!q.ok()) return absl::InvalidArgumentError(absl::StrCat(what, ".", name, ": ", q.status().message()));
    if (name == "cpu") {
      r.milli_cpu = q->MilliValue();
    } else if (name == "memory") {
      r.memory = q->Value();
    } else if (name == "ephemeral-storage") {
      r.ephemeral_storage = q->Value();
    } else if (name == "pods") {
      r.pods = q->Value();
    } else {
      r.scalar[name] = q->Value();
    }
  }
  return r;
}

// A container's requests, with limits standing in for unset requests as API
// defaulting fills them in.
absl::StatusOr<Resources> ContainerRequests(const json& container, const std::string& what) {
  const json& resources = Field(container, "resources");
  json requests = Field(resources, "requests").is_object() ? Field(resources, "requests") : json::object();
  const json& limits = Field(resources, "limits");
  if (limits.is_object()) {
    for (const auto& [k, v] : limits.items()) {
      if (!requests.contains(k)) requests[k] = v;
    }
  }
  return DecodeResourceList(requests, what);
}

absl::StatusOr<SelectorRequirement::Op> DecodeOp(const std::string& op, const std::string& what) {
  if (op == "In") return SelectorRequirement::Op::kIn;
  if (op == "NotIn") return SelectorRequirement::Op::kNotIn;
  if (op == "Exists") return SelectorRequirement::Op::kExists;
  if (op == "DoesNotExist") return SelectorRequirement::Op::kDoesNotExist;
  if (op == "Gt") return SelectorRequirement::Op::kGt;
  if (op == "Lt") return SelectorRequirement::Op::kLt;
  return absl::InvalidArgumentError(absl::StrCat(what, ": \"", op, "\" is not a valid selector operator"));
}

absl::StatusOr<std::vector<SelectorRequirement>> DecodeRequirements(const json& list, const std::string& what) {
  std::vector<SelectorRequirement> out;
  if (!list.is_array()) return out;
  for (const json& e : list) {
    SelectorRequirement r;
    r.key = Str(e, "key");
    auto op = DecodeOp(Str(e, "operator"), what);
    if (!op.ok()) return op.status();
    r.op = *op;
    const json& values = Field(e, "values");
    if (values.is_array()) {
      for (const json& v : values) {
        if (v.is_string()) r.values.push_back(v.get<std::string>());
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

// metav1.LabelSelector; null matches nothing, {} matches everything.
absl::StatusOr<LabelSelector> DecodeLabelSelector(const json& sel, const std::string& what) {
  LabelSelector out;
  if (sel.is_null()) {
    out.matches_nothing = true;
    return out;
  }
  for (const auto& [k, v] : DecodeLabels(Field(sel, "matchLabels"))) {
    out.requirements.push_back({k, SelectorRequirement::Op::kIn, {v}});
  }
  auto exprs = DecodeRequirements(Field(sel, "matchExpressions"), what);
  if (!exprs.ok()) return exprs.status();
  for (auto& r : *exprs) out.requirements.push_back(std::move(r));
  return out;
}

absl::StatusOr<NodeSelectorTerm> DecodeNodeSelectorTerm(const json& term, const std::string& what) {
  NodeSelectorTerm out;
  auto exprs = DecodeRequirements(Field(term, "matchExpressions"), what);
  if (!exprs.ok()) return exprs.status();
  out.match_expressions = std::move(*exprs);
  auto fields = DecodeRequirements(Field(term, "matchFields"), what);
  if (!fields.ok()) return fields.status();
  out.match_fields = std::move(*fields);
  return out;
}

absl::StatusOr<PodAffinityTerm> DecodePodAffinityTerm(const json& term, const std::string& what) {
  PodAffinityTerm out;
  auto sel = DecodeLabelSelector(Field(term, "labelSelector"), what);
  if (!sel.ok()) return sel.status();
  out.selector = std::move(*sel);
  const json& namespaces = Field(term, "namespaces");
  if (namespaces.is_array()) {
    for (const json& n : namespaces) {
      if (n.is_string()) out.namespaces.push_back(n.get<std::string>());
    }
  }
  const json& ns_sel = Field(term, "namespaceSelector");
  if (!ns_sel.is_null()) {
    auto s = DecodeLabelSelector(ns_sel, what);
    if (!s.ok()) return s.status();
    out.namespace_selector = std::move(*s);
  }
  out.topology_key = Str(term, "topologyKey");
  if (out.topology_key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ".topologyKey: Required value"));
  }
  return out;
}

absl::Status DecodePodAffinity(const json& affinity, const std::string& what, std::vector<PodAffinityTerm>* required,
                               std::vector<WeightedPodAffinityTerm>* preferred) {
  const json& req = Field(affinity, "requiredDuringSchedulingIgnoredDuringExecution");
  if (req.is_array()) {
    for (const json& t : req) {
      auto term = DecodePodAffinityTerm(t, what);
      if (!term.ok()) return term.status();
      required->push_back(std::move(*term));
    }
  }
  const json& pref = Field(affinity, "preferredDuringSchedulingIgnoredDuringExecution");
  if (pref.is_array()) {
    for (const json& t : pref) {
      auto term = DecodePodAffinityTerm(Field(t, "podAffinityTerm"), what);
      if (!term.ok()) return term.status();
      const json& w = Field(t, "weight");
      preferred->push_back({w.is_number_integer() ? w.get<int32_t>() : 0, std::move(*term)});
    }
  }
  return absl::OkStatus();
}

bool MatchesRequirement(const SelectorRequirement& r, const Labels& labels) {
  auto it = labels.find(r.key);
  switch (r.op) {
    case SelectorRequirement::Op::kIn:
      return it != labels.end() && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
    case SelectorRequirement::Op::kNotIn:
      return it == labels.end() || std::find(r.values.begin(), r.values.end(), it->second) == r.values.end();
    case SelectorRequirement::Op::kExists:
      return it != labels.end();
    case SelectorRequirement::Op::kDoesNotExist:
      return it == labels.end();
    case SelectorRequirement::Op::kGt:
    case SelectorRequirement::Op::kLt: {
      if (it == labels.end() || r.values.size() != 1) return false;
      int64_t have = 0;
      int64_t want = 0;
      if (!absl::SimpleAtoi(it->second, &have) || !absl::SimpleAtoi(r.values[0], &want)) return false;
      return r.op == SelectorRequirement::Op::kGt ? have > want : have < want;
    }
  }
  return false;
}

}  // namespace

void Resources::Add(const Resources& r) {
  milli_cpu += r.milli_cpu;
  memory += r.memory;
  ephemeral_storage += r.ephemeral_storage;
  pods += r.pods;
  for (const auto& [k, v] : r.scalar) scalar[k] += v;
}

void Resources::Subtract(const Resources& r) {
  milli_cpu -= r.milli_cpu;
  memory -= r.memory;
  ephemeral_storage -= r.ephemeral_storage;
  pods -= r.pods;
  for (const auto& [k, v] : r.scalar) scalar[k] -= v;
}

void Resources::SetMax(const Resources& r) {
  milli_cpu = std::max(milli_cpu, r.milli_cpu);
  memory = std::max(memory, r.memory);
  ephemeral_storage = std::max(ephemeral_storage, r.ephemeral_storage);
  pods = std::max(pods, r.pods);
  for (const auto& [k, v] : r.scalar) scalar[k] = std::max(scalar[k], v);
}

bool LabelSelector::Matches(const Labels& labels) const {
  if (matches_nothing) return false;
  for (const auto& r : requirements) {
    if (!MatchesRequirement(r, labels)) return false;
  }
  return true;
}

bool NodeSelectorTerm::Matches(const std::string& node_name, const Labels& node_labels) const {
  // A term with no requirements matches nothing (v1.NodeSelectorTerm).
  if (match_expressions.empty() && match_fields.empty()) return false;
  for (const auto& r : match_expressions) {
    if (!MatchesRequirement(r, node_labels)) return false;
  }
  if (!match_fields.empty()) {
    Labels fields{{"metadata.name", node_name}};
    for (const auto& r : match_fields) {
      if (r.key != "metadata.name") return false;
      if (!MatchesRequirement(r, fields)) return false;
    }
  }
  return true;
}

bool NodeSelector::Matches(const std::string& node_name, const Labels& node_labels) const {
  for (const auto& t : terms) {
    if (t.Matches(node_name, node_labels)) return true;
  }
  return false;
}

std::string NormalizedImageName(const std::string& image) {
  // Docker's reference rules: a first path component without '.' or ':'
  // (and not "localhost") is not a registry, so docker.io is implied, and
  // single names live under library/.
  std::string full = image;
  size_t first_slash = image.find('/');
  if (first_slash == std::string::npos) {
    full = "docker.io/library/" + image;
  } else {
    std::string first = image.substr(0, first_slash);
    if (first.find('.') == std::string::npos && first.find(':') == std::string::npos && first != "localhost") {
      full = "docker.io/" + image;
    }
  }
  // A tag is a ':' after the last '/'; a digest has '@'.
  size_t slash = full.rfind('/');
  size_t colon = full.rfind(':');
  bool has_tag = colon != std::string::npos && (slash == std::string::npos || colon > slash);
  if (full.find('@') != std::string::npos || has_tag) return full;
  return full + ":latest";
}

absl::StatusOr<PodInfo> DecodePod(const json& pod) {
  PodInfo p;
  const json& meta = Field(pod, "metadata");
  const json& spec = Field(pod, "spec");
  const json& status = Field(pod, "status");
  p.namespace_name = Str(meta, "namespace", "default");
  p.name = Str(meta, "name");
  p.uid = Str(meta, "uid");
  p.resource_version = Str(meta, "resourceVersion");
  p.labels = DecodeLabels(Field(meta, "labels"));
  p.terminating = Field(meta, "deletionTimestamp").is_string();
  p.creation_timestamp = Str(meta, "creationTimestamp");
  p.node_name = Str(spec, "nodeName");
  p.scheduler_name = Str(spec, "schedulerName", "default-scheduler");
  if (p.scheduler_name.empty()) p.scheduler_name = "default-scheduler";
  p.priority_class_name = Str(spec, "priorityClassName");
  if (Field(spec, "priority").is_number_integer()) p.priority = Field(spec, "priority").get<int32_t>();
  if (Field(spec, "terminationGracePeriodSeconds").is_number_integer()) {
    p.termination_grace_seconds = Field(spec, "terminationGracePeriodSeconds").get<int64_t>();
  }
  p.phase = Str(status, "phase");
  p.preempt_never = Str(spec, "preemptionPolicy") == "Never";
  if (const json& conds = Field(status, "conditions"); conds.is_array()) {
    for (const json& c : conds) {
      if (Str(c, "type") == "PodScheduled" && Str(c, "status") == "False") p.unschedulable_message = Str(c, "message");
    }
  }
  p.scheduling_gated = Field(spec, "schedulingGates").is_array() && !Field(spec, "schedulingGates").empty();
  p.fingerprint = std::hash<std::string>{}(spec.dump() + Field(meta, "labels").dump());
  p.nominated_node_name = Str(status, "nominatedNodeName");
  std::string where = absl::StrCat("pod ", p.namespace_name, "/", p.name);

  // Effective requests: running containers (plus sidecars) against each init
  // container (plus the sidecars started before it), the larger of the two,
  // plus the pod overhead — the rule kubelet admission and kube-scheduler use.
  Resources running;
  Resources running_non_zero;
  Resources init_max;
  Resources init_max_non_zero;
  Resources sidecars;
  Resources sidecars_non_zero;
  auto non_zero = [](Resources r) {
    if (r.milli_cpu == 0) r.milli_cpu = kDefaultMilliCpuRequest;
    if (r.memory == 0) r.memory = kDefaultMemoryRequest;
    return r;
  };
  auto add_ports_and_image = [&](const json& c) {
    std::string image = Str(c, "image");
    if (!image.empty()) p.images.push_back(image);
    const json& ports = Field(c, "ports");
    if (!ports.is_array()) return;
    for (const json& port : ports) {
      const json& hp = Field(port, "hostPort");
      if (!hp.is_number_integer() || hp.get<int32_t>() <= 0) continue;
      p.host_ports.push_back({Str(port, "hostIP"), Str(port, "protocol", "TCP"), hp.get<int32_t>()});
    }
  };
  const json& containers = Field(spec, "containers");
  if (containers.is_array()) {
    for (size_t i = 0; i < containers.size(); ++i) {
      auto r = ContainerRequests(containers[i], absl::StrCat(where, " spec.containers[", i, "].resources"));
      if (!r.ok()) return r.status();
      running.Add(*r);
      running_non_zero.Add(non_zero(*r));
      add_ports_and_image(containers[i]);
    }
  }
  const json& init = Field(spec, "initContainers");
  if (init.is_array()) {
    for (size_t i = 0; i < init.size(); ++i) {
      auto r = ContainerRequests(init[i], absl::StrCat(where, " spec.initContainers[", i, "].resources"));
      if (!r.ok()) return r.status();
      Resources nz = non_zero(*r);
      if (Str(init[i], "restartPolicy") == "Always") {
        running.Add(*r);
        running_non_zero.Add(nz);
        sidecars.Add(*r);
        sidecars_non_zero.Add(nz);
        init_max.SetMax(sidecars);
        init_max_non_zero.SetMax(sidecars_non_zero);
      } else {
        Resources with_sidecars = *r;
        with_sidecars.Add(sidecars);
        init_max.SetMax(with_sidecars);
        Resources nz_with_sidecars = nz;
        nz_with_sidecars.Add(sidecars_non_zero);
        init_max_non_zero.SetMax(nz_with_sidecars);
      }
      add_ports_and_image(init[i]);
    }
  }
  running.SetMax(init_max);
  running_non_zero.SetMax(init_max_non_zero);
  auto overhead = DecodeResourceList(Field(spec, "overhead"), absl::StrCat(where, " spec.overhead"));
  if (!overhead.ok()) return overhead.status();
  running.Add(*overhead);
  running_non_zero.Add(*overhead);
  p.requests = running;
  p.requests.pods = 0;
  p.non_zero_requests = running_non_zero;
  p.has_any_request = p.requests.milli_cpu != 0 || p.requests.memory != 0 || p.requests.ephemeral_storage != 0 ||
                      !p.requests.scalar.empty();

  p.node_selector = DecodeLabels(Field(spec, "nodeSelector"));
  const json& affinity = Field(spec, "affinity");
  const json& node_affinity = Field(affinity, "nodeAffinity");
  const json& required = Field(node_affinity, "requiredDuringSchedulingIgnoredDuringExecution");
  if (required.is_object()) {
    NodeSelector ns;
    const json& terms = Field(required, "nodeSelectorTerms");
    if (terms.is_array()) {
      for (const json& t : terms) {
        auto term = DecodeNodeSelectorTerm(t, absl::StrCat(where, " nodeAffinity"));
        if (!term.ok()) return term.status();
        ns.terms.push_back(std::move(*term));
      }
    }
    p.required_node_affinity = std::move(ns);
  }
  const json& preferred = Field(node_affinity, "preferredDuringSchedulingIgnoredDuringExecution");
  if (preferred.is_array()) {
    for (const json& t : preferred) {
      auto term = DecodeNodeSelectorTerm(Field(t, "preference"), absl::StrCat(where, " nodeAffinity"));
      if (!term.ok()) return term.status();
      const json& w = Field(t, "weight");
      p.preferred_node_affinity.push_back({w.is_number_integer() ? w.get<int32_t>() : 0, std::move(*term)});
    }
  }
  if (auto s = DecodePodAffinity(Field(affinity, "podAffinity"), absl::StrCat(where, " podAffinity"),
                                 &p.required_affinity, &p.preferred_affinity);
      !s.ok()) {
    return s;
  }
  if (auto s = DecodePodAffinity(Field(affinity, "podAntiAffinity"), absl::StrCat(where, " podAntiAffinity"),
                                 &p.required_anti_affinity, &p.preferred_anti_affinity);
      !s.ok()) {
    return s;
  }

  const json& tolerations = Field(spec, "tolerations");
  if (tolerations.is_array()) {
    for (const json& t : tolerations) {
      Toleration tol;
      tol.key = Str(t, "key");
      tol.op = Str(t, "operator", "Equal");
      if (tol.op.empty()) tol.op = "Equal";
      tol.value = Str(t, "value");
      tol.effect = Str(t, "effect");
      p.tolerations.push_back(std::move(tol));
    }
  }

  const json& spread = Field(spec, "topologySpreadConstraints");
  if (spread.is_array()) {
    for (const json& c : spread) {
      TopologySpreadConstraint tsc;
      const json& skew = Field(c, "maxSkew");
      tsc.max_skew = skew.is_number_integer() ? skew.get<int32_t>() : 1;
      tsc.topology_key = Str(c, "topologyKey");
      std::string when = Str(c, "whenUnsatisfiable", "DoNotSchedule");
      if (when != "DoNotSchedule" && when != "ScheduleAnyway") {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " topologySpreadConstraints.whenUnsatisfiable: unsupported value \"", when, "\""));
      }
      if (tsc.topology_key.empty() || tsc.max_skew <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " topologySpreadConstraints: topologyKey is required and maxSkew must be positive"));
      }
      tsc.do_not_schedule = when == "DoNotSchedule";
      auto sel = DecodeLabelSelector(Field(c, "labelSelector"), absl::StrCat(where, " topologySpreadConstraints"));
      if (!sel.ok()) return sel.status();
      tsc.selector = std::move(*sel);
      const json& min_domains = Field(c, "minDomains");
      if (min_domains.is_number_integer()) tsc.min_domains = std::max(1, min_domains.get<int32_t>());
      tsc.honor_node_affinity = Str(c, "nodeAffinityPolicy", "Honor") != "Ignore";
      tsc.honor_node_taints = Str(c, "nodeTaintsPolicy", "Ignore") == "Honor";
      p.spread_constraints.push_back(std::move(tsc));
    }
  }
  return p;
}

absl::StatusOr<NodeInfo> DecodeNode(const json& node) {
  NodeInfo n;
  const json& meta = Field(node, "metadata");
  const json& spec = Field(node, "spec");
  const json& status = Field(node, "status");
  n.name = Str(meta, "name");
  n.labels = DecodeLabels(Field(meta, "labels"));
  n.unschedulable = Field(spec, "unschedulable").is_boolean() && Field(spec, "unschedulable").get<bool>();
  const json& taints = Field(spec, "taints");
  if (taints.is_array()) {
    for (const json& t : taints) n.taints.push_back({Str(t, "key"), Str(t, "value"), Str(t, "effect")});
  }
  auto alloc = DecodeResourceList(Field(status, "allocatable"), absl::StrCat("node ", n.name, " status.allocatable"));
  if (!alloc.ok()) return alloc.status();
  n.allocatable = std::move(*alloc);
  const json& images = Field(status, "images");
  if (images.is_array()) {
    for (const json& img : images) {
      const json& size = Field(img, "sizeBytes");
      int64_t bytes = size.is_number_integer() ? size.get<int64_t>() : 0;
      const json& names = Field(img, "names");
      if (!names.is_array()) continue;
      for (const json& name : names) {
        if (name.is_string()) n.image_sizes[name.get<std::string>()] = bytes;
      }
    }
  }
  return n;
}

}  // namespace kelpie::scheduler
