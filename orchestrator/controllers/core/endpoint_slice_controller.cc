#include "orchestrator/controllers/core/endpoint_slice_controller.h"

#include <algorithm>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/controllers/core/service_endpoints.h"

namespace kelpie::controllers {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr char kSliceServiceIndex[] = "endpointslice-service";
// Slices by the pods of their endpoints: "ns/service|pod name".
constexpr char kSlicePodIndex[] = "endpointslice-pod";
// A tracked write the cache never shows (someone else changed the slice in
// between) stops blocking syncs after this long.
constexpr auto kTrackerExpiry = 5s;

int64_t ResourceVersionOf(const json& obj) {
  int64_t rv = 0;
  if (!obj.contains("metadata")) return 0;
  if (!absl::SimpleAtoi(obj["metadata"].value("resourceVersion", ""), &rv)) return 0;
  return rv;
}

std::pair<std::string, std::string> SplitKey(const std::string& key) {
  auto slash = key.find('/');
  if (slash == std::string::npos) return {"", key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

bool ManagedByUs(const json& slice) {
  const json labels = slice.value("metadata", json::object()).value("labels", json::object());
  return labels.value(kManagedByLabel, "") == kEndpointSliceControllerName && labels.contains(kServiceNameLabel);
}

// The fields of an endpoint this controller writes, to compare what is
// stored with what is wanted regardless of server-side defaults.
json NormalizeEndpoint(const json& ep) {
  json out = json::object();
  out["addresses"] = ep.value("addresses", json::array());
  const json c = ep.value("conditions", json::object());
  out["conditions"] = {{"ready", c.value("ready", false)},
                       {"serving", c.value("serving", false)},
                       {"terminating", c.value("terminating", false)}};
  if (ep.contains("targetRef") && ep["targetRef"].is_object()) {
    const json& t = ep["targetRef"];
    out["targetRef"] = {{"kind", t.value("kind", "")},
                        {"namespace", t.value("namespace", "")},
                        {"name", t.value("name", "")},
                        {"uid", t.value("uid", "")}};
  }
  if (ep.contains("nodeName") && ep["nodeName"].is_string()) out["nodeName"] = ep["nodeName"];
  if (ep.contains("hostname") && ep["hostname"].is_string()) out["hostname"] = ep["hostname"];
  return out;
}

json NormalizePorts(const json& ports) {
  json out = json::array();
  if (!ports.is_array()) return out;
  for (const auto& p : ports) {
    json e = {{"name", p.value("name", "")}, {"port", p.value("port", 0)}, {"protocol", p.value("protocol", "TCP")}};
    if (p.contains("appProtocol") && p["appProtocol"].is_string()) e["appProtocol"] = p["appProtocol"];
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) { return a.dump() < b.dump(); });
  return out;
}

std::string EndpointKey(const json& ep) {
  const json addresses = ep.value("addresses", json::array());
  return addresses.empty() ? "" : addresses[0].get<std::string>();
}

std::string SliceGroup(const json& slice) {
  return slice.value("addressType", "IPv4") + "|" + NormalizePorts(slice.value("ports", json::array())).dump();
}

std::string PodIndexValue(const std::string& service_key, const std::string& pod_name) {
  return service_key + "|" + pod_name;
}

// The endpoint a pod contributes to a Service, and the group (address type
// and resolved ports) whose slices hold it.
struct DesiredEndpoint {
  std::string group;
  std::string address_type;
  json ports;
  json ep;
};

std::optional<DesiredEndpoint> EndpointFor(const json& svc, const api::LabelSelector& selector, const json& pod) {
  const json meta = pod.value("metadata", json::object());
  if (!selector.Matches(meta.value("labels", json::object()))) return std::nullopt;
  if (!PodIsEndpoint(pod, /*include_terminating=*/true)) return std::nullopt;
  const json svc_meta = svc.value("metadata", json::object());
  const std::string ns = svc_meta.value("namespace", "");
  const std::string name = svc_meta.value("name", "");
  const json spec = svc.value("spec", json::object());
  const bool publish_not_ready = spec.value("publishNotReadyAddresses", false);
  json ports = json::array();
  for (const auto& sp : spec.value("ports", json::array())) {
    auto port = ResolveTargetPort(sp, pod);
    if (!port) continue;
    json p = {{"name", sp.value("name", "")}, {"port", *port}, {"protocol", sp.value("protocol", "TCP")}};
    if (sp.contains("appProtocol") && sp["appProtocol"].is_string()) p["appProtocol"] = sp["appProtocol"];
    ports.push_back(std::move(p));
  }
  DesiredEndpoint d;
  d.ports = NormalizePorts(ports);
  const json pod_spec = pod.value("spec", json::object());
  const std::string ip = pod["status"].value("podIP", "");
  d.address_type = ip.find(':') != std::string::npos ? "IPv6" : "IPv4";
  const bool ready = PodIsReady(pod);
  const bool terminating = PodIsTerminating(pod);
  d.ep = {{"addresses", json::array({ip})},
          {"conditions",
           {{"ready", publish_not_ready || (ready && !terminating)},
            {"serving", publish_not_ready || ready},
            {"terminating", terminating}}},
          {"targetRef",
           {{"kind", "Pod"}, {"namespace", ns}, {"name", meta.value("name", "")}, {"uid", meta.value("uid", "")}}}};
  if (!pod_spec.value("nodeName", "").empty()) d.ep["nodeName"] = pod_spec["nodeName"];
  if (!pod_spec.value("hostname", "").empty() && pod_spec.value("subdomain", "") == name) {
    d.ep["hostname"] = pod_spec["hostname"];
  }
  d.group = d.address_type + "|" + d.ports.dump();
  return d;
}

struct Group {
  std::string address_type;
  json ports;
  std::map<std::string, json> endpoints;  // by address
};

struct SliceState {
  json obj;
  std::string group;
  std::vector<json> endpoints;
  bool changed = false;
  bool remove = false;
  bool create = false;
};

}  // namespace

EndpointSliceController::EndpointSliceController(ControllerContext& ctx, int max_endpoints_per_slice)
    : QueueController("endpointslice", ctx),
      max_per_slice_(max_endpoints_per_slice),
      services_(ctx.informers.For(client::resources::kServices)),
      pods_(ctx.informers.For(client::resources::kPods)),
      slices_(ctx.informers.For(client::resources::kEndpointSlices)) {
  slices_.AddIndexer(kSliceServiceIndex, [](const json& slice) -> std::vector<std::string> {
    if (!ManagedByUs(slice)) return {};
    const json meta = slice.value("metadata", json::object());
    return {ObjectKey(meta.value("namespace", ""), meta["labels"].value(kServiceNameLabel, ""))};
  });
  slices_.AddIndexer(kSlicePodIndex, [](const json& slice) -> std::vector<std::string> {
    if (!ManagedByUs(slice)) return {};
    const json& meta = slice["metadata"];
    const std::string service_key = ObjectKey(meta.value("namespace", ""), meta["labels"].value(kServiceNameLabel, ""));
    std::vector<std::string> out;
    auto endpoints = slice.find("endpoints");
    if (endpoints == slice.end() || !endpoints->is_array()) return out;
    for (const auto& ep : *endpoints) {
      auto ref = ep.find("targetRef");
      if (ref == ep.end() || !ref->is_object() || ref->value("kind", "") != "Pod") continue;
      out.push_back(PodIndexValue(service_key, ref->value("name", "")));
    }
    return out;
  });
  ServiceChangeOptions change;
  change.on_change = [this](const std::string& service_key, const std::string* pod_key) {
    NoteChange(service_key, pod_key);
  };
  EnqueueServicesOnChange(services_, pods_, queue(), std::move(change));
  EventHandlers slice;
  slice.on_add = [this](const json& s) { OnSlice(s, false); };
  slice.on_update = [this](const json&, const json& s) { OnSlice(s, false); };
  slice.on_delete = [this](const json& s, bool) { OnSlice(s, true); };
  slices_.AddEventHandler(std::move(slice));
}

void EndpointSliceController::OnSlice(const json& slice, bool deleted) {
  if (!ManagedByUs(slice)) return;
  const json meta = slice.value("metadata", json::object());
  const std::string service_key = ObjectKey(meta.value("namespace", ""), meta["labels"].value(kServiceNameLabel, ""));
  {
    // Our own writes coming back need no sync.
    std::lock_guard<std::mutex> lock(mu_);
    auto it = written_.find(service_key);
    if (it != written_.end()) {
      auto w = it->second.find(meta.value("name", ""));
      if (w != it->second.end() && w->second.rv == (deleted ? -1 : ResourceVersionOf(slice))) return;
    }
  }
  queue().Add(service_key);
}

void EndpointSliceController::Track(const std::string& service_key, const std::string& slice_name, int64_t rv) {
  std::lock_guard<std::mutex> lock(mu_);
  written_[service_key][slice_name] = {rv, std::chrono::steady_clock::now()};
}

bool EndpointSliceController::CacheCaughtUp(const std::string& service_key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = written_.find(service_key);
  if (it == written_.end()) return true;
  const std::string ns = SplitKey(service_key).first;
  const auto now = std::chrono::steady_clock::now();
  bool caught_up = true;
  for (auto w = it->second.begin(); w != it->second.end();) {
    auto cached = slices_.store().Get(ObjectKey(ns, w->first));
    bool seen = w->second.rv < 0 ? !cached.has_value() : (cached && ResourceVersionOf(*cached) >= w->second.rv);
    bool expired = now - w->second.at > kTrackerExpiry;
    if (seen || expired) {
      w = it->second.erase(w);
    } else {
      caught_up = false;
      ++w;
    }
  }
  if (it->second.empty()) written_.erase(it);
  return caught_up;
}

absl::Status EndpointSliceController::DeleteSlicesOf(const std::string& ns, const std::string& service_key) {
  for (const auto& slice : slices_.store().ByIndex(kSliceServiceIndex, service_key)) {
    const std::string name = slice["metadata"].value("name", "");
    auto r = ctx_.client.Delete(client::resources::kEndpointSlices, ns, name);
    if (!r.ok() && !client::IsNotFound(r.status())) return r.status();
    Track(service_key, name, -1);
  }
  return absl::OkStatus();
}

void EndpointSliceController::NoteChange(const std::string& service_key, const std::string* pod_key) {
  std::lock_guard<std::mutex> lock(mu_);
  Pending& p = pending_[service_key];
  if (pod_key == nullptr) {
    p.full = true;
    p.pods.clear();
  } else if (!p.full) {
    p.pods.insert(*pod_key);
  }
}

absl::Status EndpointSliceController::Sync(const std::string& key) {
  if (!CacheCaughtUp(key)) {
    queue().AddAfter(key, std::chrono::milliseconds(5));
    return absl::OkStatus();
  }
  // What changed since the last sync; a sync nothing was noted for (a slice
  // changed by someone else, a retry) recomputes everything.
  Pending changes{.full = true, .pods = {}};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(key);
    if (it != pending_.end()) {
      changes = std::move(it->second);
      pending_.erase(it);
    }
    if (!synced_.count(key)) changes.full = true;
  }
  absl::Status status = [&]() -> absl::Status {
    const auto [ns, name] = SplitKey(key);
    auto service = services_.store().Get(key);
    if (!service) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        synced_.erase(key);
      }
      return DeleteSlicesOf(ns, key);
    }
    auto selector = ServicePodSelector(*service);
    if (!selector) return absl::OkStatus();
    if (!changes.full) {
      if (auto done = IncrementalSync(key, *service, *selector, changes.pods)) return *done;
    }
    absl::Status full = FullSync(key, *service, *selector);
    if (full.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      synced_.insert(key);
    }
    return full;
  }();
  if (!status.ok()) {
    // The retry cannot know which changes this sync failed to write.
    std::lock_guard<std::mutex> lock(mu_);
    pending_[key].full = true;
  }
  return status;
}

std::optional<absl::Status> EndpointSliceController::IncrementalSync(const std::string& key, const json& svc,
                                                                     const api::LabelSelector& selector,
                                                                     const std::set<std::string>& pod_keys) {
  const std::string ns = SplitKey(key).first;
  std::map<std::string, json> slices;  // slice name -> new content
  std::set<std::string> changed;
  for (const auto& pod_key : pod_keys) {
    const std::string pod_name = SplitKey(pod_key).second;
    std::optional<DesiredEndpoint> want;
    if (auto pod = pods_.store().Get(pod_key)) want = EndpointFor(svc, selector, *pod);
    auto holding = slices_.store().ByIndex(kSlicePodIndex, PodIndexValue(key, pod_name));
    if (holding.size() > 1) return std::nullopt;  // a duplicate to clean up
    if (holding.empty()) {
      if (!want) continue;      // was not an endpoint and is not one
      return std::nullopt;      // a new endpoint: placing it is the full sync's job
    }
    const std::string slice_name = holding[0]["metadata"].value("name", "");
    auto it = slices.find(slice_name);
    if (it == slices.end()) it = slices.emplace(slice_name, std::move(holding[0])).first;
    json& slice = it->second;
    json& endpoints = slice["endpoints"];
    int index = -1;
    for (size_t i = 0; i < endpoints.size(); ++i) {
      const json& ref = endpoints[i].value("targetRef", json::object());
      if (ref.value("kind", "") == "Pod" && ref.value("name", "") == pod_name) {
        if (index >= 0) return std::nullopt;
        index = static_cast<int>(i);
      }
    }
    if (index < 0) return std::nullopt;
    if (!want) {
      endpoints.erase(endpoints.begin() + index);
      if (endpoints.empty()) return std::nullopt;  // emptied slices are the full sync's job
      changed.insert(slice_name);
      continue;
    }
    if (want->group != SliceGroup(slice) || EndpointKey(endpoints[index]) != EndpointKey(want->ep)) {
      return std::nullopt;  // moves to another slice, or changes address
    }
    if (NormalizeEndpoint(endpoints[index]) == want->ep) continue;
    endpoints[index] = std::move(want->ep);
    changed.insert(slice_name);
  }
  absl::Status first_error;
  for (const auto& slice_name : changed) {
    auto written = ctx_.client.Update(client::resources::kEndpointSlices, ns, slices[slice_name]);
    if (!written.ok()) {
      if (first_error.ok()) first_error = written.status();
      continue;
    }
    Track(key, slice_name, ResourceVersionOf(*written));
  }
  if (!first_error.ok() && !client::IsConflict(first_error)) {
    ctx_.recorder.Event(svc, EventType::kWarning, "FailedToUpdateEndpointSlices",
                        absl::StrCat("Error updating Endpoint Slices for Service ", key, ": ",
                                     std::string(first_error.message())));
  }
  return first_error;
}

absl::Status EndpointSliceController::FullSync(const std::string& key, const json& svc,
                                               const api::LabelSelector& selector) {
  const auto [ns, name] = SplitKey(key);
  const json spec = svc.value("spec", json::object());

  // What the slices should hold, grouped by address type and ports.
  std::map<std::string, Group> desired;
  for (const auto& pod : pods_.store().ByIndex(kNamespaceIndex, ns)) {
    auto d = EndpointFor(svc, selector, pod);
    if (!d) continue;
    Group& g = desired[d->group];
    g.address_type = d->address_type;
    g.ports = std::move(d->ports);
    const std::string ip = EndpointKey(d->ep);
    g.endpoints[ip] = std::move(d->ep);
  }
  // A Service without endpoints keeps one empty placeholder slice.
  bool placeholder = desired.empty();
  if (placeholder) desired["IPv4|[]"] = Group{"IPv4", json::array(), {}};

  json labels = svc["metadata"].value("labels", json::object());
  if (!labels.is_object()) labels = json::object();
  labels[kServiceNameLabel] = name;
  labels[kManagedByLabel] = kEndpointSliceControllerName;
  if (spec.value("clusterIP", "") == "None") labels["service.kubernetes.io/headless"] = "";
  const json owner = json::array({{{"apiVersion", "v1"},
                                   {"kind", "Service"},
                                   {"name", name},
                                   {"uid", svc["metadata"].value("uid", "")},
                                   {"controller", true},
                                   {"blockOwnerDeletion", true}}});

  std::vector<SliceState> states;
  for (auto& slice : slices_.store().ByIndex(kSliceServiceIndex, key)) {
    SliceState s;
    s.group = SliceGroup(slice);
    s.obj = std::move(slice);
    states.push_back(std::move(s));
  }
  std::sort(states.begin(), states.end(), [](const SliceState& a, const SliceState& b) {
    return a.obj["metadata"].value("name", "") < b.obj["metadata"].value("name", "");
  });

  // Keep endpoints where they are.
  std::map<std::string, std::set<std::string>> placed;  // group -> addresses
  for (auto& s : states) {
    auto g = desired.find(s.group);
    if (g == desired.end()) {
      s.remove = true;
      continue;
    }
    for (const auto& ep : s.obj.value("endpoints", json::array())) {
      const std::string k = EndpointKey(ep);
      auto d = g->second.endpoints.find(k);
      if (d == g->second.endpoints.end() || placed[s.group].count(k)) {
        s.changed = true;  // gone (or a duplicate)
        continue;
      }
      if (NormalizeEndpoint(ep) != d->second) s.changed = true;
      s.endpoints.push_back(d->second);
      placed[s.group].insert(k);
    }
    const json meta = s.obj["metadata"];
    if (meta.value("labels", json::object()) != labels || meta.value("ownerReferences", json::array()) != owner) {
      s.changed = true;
    }
  }
  // New endpoints fill slices being written anyway, then slices with room,
  // then new slices.
  for (auto& [group_key, g] : desired) {
    std::vector<json> remaining;
    for (const auto& [address, ep] : g.endpoints) {
      if (!placed[group_key].count(address)) remaining.push_back(ep);
    }
    size_t next = 0;
    for (int pass = 0; pass < 2 && next < remaining.size(); ++pass) {
      for (auto& s : states) {
        if (s.remove || s.group != group_key || (pass == 0 && !s.changed)) continue;
        while (next < remaining.size() && static_cast<int>(s.endpoints.size()) < max_per_slice_) {
          s.endpoints.push_back(remaining[next++]);
          s.changed = true;
        }
      }
    }
    while (next < remaining.size()) {
      SliceState s;
      s.create = true;
      s.group = group_key;
      s.obj = {{"apiVersion", "discovery.k8s.io/v1"},
               {"kind", "EndpointSlice"},
               {"metadata", {{"generateName", name + "-"}, {"namespace", ns}}},
               {"addressType", g.address_type}};
      while (next < remaining.size() && static_cast<int>(s.endpoints.size()) < max_per_slice_) {
        s.endpoints.push_back(remaining[next++]);
      }
      states.push_back(std::move(s));
    }
    // Emptied slices go, except one placeholder.
    bool kept_placeholder = false;
    for (auto& s : states) {
      if (s.remove || s.group != group_key || !s.endpoints.empty()) continue;
      if (placeholder && !kept_placeholder) {
        kept_placeholder = true;
        continue;
      }
      s.remove = true;
    }
    if (placeholder && !kept_placeholder) {
      SliceState s;
      s.create = true;
      s.group = group_key;
      s.obj = {{"apiVersion", "discovery.k8s.io/v1"},
               {"kind", "EndpointSlice"},
               {"metadata", {{"generateName", name + "-"}, {"namespace", ns}}},
               {"addressType", g.address_type}};
      states.push_back(std::move(s));
    }
  }

  // Write: creates and updates first, deletes last.
  absl::Status first_error;
  for (int phase = 0; phase < 2; ++phase) {
    for (auto& s : states) {
      if (s.remove || (phase == 0) != s.create) continue;
      if (!s.create && !s.changed) continue;
      const Group& g = desired[s.group];
      json body = s.obj;
      body["metadata"]["labels"] = labels;
      body["metadata"]["ownerReferences"] = owner;
      body["endpoints"] = s.endpoints;
      body["ports"] = g.ports;
      auto written = s.create ? ctx_.client.Create(client::resources::kEndpointSlices, ns, body)
                              : ctx_.client.Update(client::resources::kEndpointSlices, ns, body);
      if (!written.ok()) {
        if (first_error.ok()) first_error = written.status();
        continue;
      }
      Track(key, (*written)["metadata"].value("name", ""), ResourceVersionOf(*written));
    }
  }
  for (auto& s : states) {
    if (!s.remove || s.create) continue;
    const std::string slice_name = s.obj["metadata"].value("name", "");
    auto r = ctx_.client.Delete(client::resources::kEndpointSlices, ns, slice_name);
    if (!r.ok() && !client::IsNotFound(r.status())) {
      if (first_error.ok()) first_error = r.status();
      continue;
    }
    Track(key, slice_name, -1);
  }
  if (!first_error.ok()) {
    // A conflict only means the cache was behind: the retry sees the change.
    if (!client::IsConflict(first_error)) {
      ctx_.recorder.Event(svc, EventType::kWarning, "FailedToUpdateEndpointSlices",
                          absl::StrCat("Error updating Endpoint Slices for Service ", key, ": ",
                                       std::string(first_error.message())));
    }
    return first_error;
  }
  return absl::OkStatus();
}

}  // namespace kelpie::controllers
