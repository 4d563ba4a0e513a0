#include "tests/testing/fake_nodes.h"

#include "absl/strings/str_cat.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/controllers/shared_informer.h"
#include "orchestrator/controllers/workloads/workload_util.h"

namespace kelpie::testing {

using nlohmann::json;
namespace res = client::resources;
using controllers::workloads::FormatTime;
using controllers::workloads::StringAt;

FakeNodes::FakeNodes(client::RestClient& client, FakeNodesOptions options)
    : client_(client), options_(std::move(options)), ready_(options_.ready) {}

FakeNodes::~FakeNodes() { Stop(); }

absl::Status FakeNodes::AddNode(const std::string& name, const json& labels, const json& taints) {
  json l = labels;
  l["kubernetes.io/hostname"] = name;
  json node = {{"apiVersion", "v1"},
               {"kind", "Node"},
               {"metadata", {{"name", name}, {"labels", l}}},
               {"spec", {{"taints", taints}}}};
  auto created = client_.Create(res::kNodes, "", node);
  if (!created.ok()) return created.status();
  const std::string now = FormatTime(std::chrono::system_clock::now());
  json status = {{"status",
                  {{"conditions", json::array({{{"type", "Ready"},
                                                {"status", "True"},
                                                {"reason", "KubeletReady"},
                                                {"lastHeartbeatTime", now},
                                                {"lastTransitionTime", now}}})},
                   {"capacity", {{"cpu", "64"}, {"memory", "256Gi"}, {"pods", "1100"}}},
                   {"allocatable", {{"cpu", "64"}, {"memory", "256Gi"}, {"pods", "1100"}}}}}};
  auto patched = client_.Patch(res::kNodes, "", name, client::PatchType::kMerge, status, "status");
  if (!patched.ok()) return patched.status();
  std::lock_guard<std::mutex> lock(nodes_mu_);
  nodes_.push_back(name);
  return absl::OkStatus();
}

absl::Status FakeNodes::RemoveNode(const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(nodes_mu_);
    std::erase(nodes_, name);
  }
  auto deleted = client_.Delete(res::kNodes, "", name);
  if (!deleted.ok() && !client::IsNotFound(deleted.status())) return deleted.status();
  auto pods = client_.ListAll(res::kPods, "", {.field_selector = "spec.nodeName=" + name});
  if (!pods.ok()) return pods.status();
  for (const json& pod : (*pods)["items"]) {
    // A delete racing another write of the pod is a conflict: try again.
    absl::Status last;
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto d = client_.Delete(res::kPods, StringAt(pod, "/metadata/namespace"), StringAt(pod, "/metadata/name"),
                              {.grace_period_seconds = 0});
      last = d.ok() || client::IsNotFound(d.status()) ? absl::OkStatus() : d.status();
      if (!client::IsConflict(last)) break;
    }
    if (!last.ok()) return last;
  }
  return absl::OkStatus();
}

absl::Status FakeNodes::Start() {
  controllers::InformerOptions options;
  options.resource = res::kPods;
  pods_ = std::make_unique<controllers::SharedInformer>(client_, options);
  pods_->AddEventHandler({
      .on_add = [this](const json& pod) { Enqueue(controllers::ObjectKey(pod)); },
      .on_update = [this](const json&, const json& pod) { Enqueue(controllers::ObjectKey(pod)); },
      .on_delete = nullptr,
  });
  pods_->Start();
  for (int i = 0; i < std::max(1, options_.workers); ++i) threads_.emplace_back([this] { Work(); });
  if (!pods_->WaitForSync(std::chrono::seconds(30))) return absl::DeadlineExceededError("pod informer did not sync");
  return absl::OkStatus();
}

void FakeNodes::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (pods_) pods_->Stop();
}

void FakeNodes::SetReady(bool ready) {
  ready_ = ready;
  if (!pods_) return;
  for (const std::string& key : pods_->store().ListKeys()) Enqueue(key);
}

void FakeNodes::Enqueue(const std::string& key) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!queued_.insert(key).second) return;
    queue_.push_back(key);
  }
  cv_.notify_one();
}

void FakeNodes::Work() {
  while (true) {
    std::string key;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      key = queue_.front();
      queue_.pop_front();
      queued_.erase(key);
    }
    Process(key);
  }
}

std::string FakeNodes::ChooseNode(const json& pod) {
  std::lock_guard<std::mutex> lock(nodes_mu_);
  if (nodes_.empty()) return "";
  // A DaemonSet pod names its node in a required nodeAffinity term.
  const json::json_pointer terms(
      "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms");
  if (pod.contains(terms) && pod.at(terms).is_array()) {
    for (const json& term : pod.at(terms)) {
      for (const json& f : term.value("matchFields", json::array())) {
        if (f.value("key", "") != "metadata.name" || f.value("operator", "") != "In") continue;
        for (const json& v : f.value("values", json::array())) {
          if (std::find(nodes_.begin(), nodes_.end(), v.get<std::string>()) != nodes_.end()) return v;
        }
        return "";  // its node is gone
      }
    }
  }
  return nodes_[next_node_++ % nodes_.size()];
}

absl::Status FakeNodes::SetPodStatus(const std::string& ns, const std::string& name, const std::string& phase,
                                     bool ready) {
  const std::string now = FormatTime(std::chrono::system_clock::now());
  json conditions = json::array({{{"type", "PodScheduled"}, {"status", "True"}, {"lastTransitionTime", now}},
                                 {{"type", "Ready"},
                                  {"status", ready && phase == "Running" ? "True" : "False"},
                                  {"lastTransitionTime", now}}});
  json patch = {{"status", {{"phase", phase}, {"conditions", conditions}, {"startTime", now}}}};
  auto r = client_.Patch(res::kPods, ns, name, client::PatchType::kMerge, patch, "status");
  return r.ok() ? absl::OkStatus() : r.status();
}

void FakeNodes::Process(const std::string& key) {
  if (!pods_) return;
  auto cached = pods_->store().Get(key);
  if (!cached) return;
  const json& pod = *cached;
  const std::string ns = StringAt(pod, "/metadata/namespace");
  const std::string name = StringAt(pod, "/metadata/name");
  if (pod["metadata"].contains("deletionTimestamp")) {
    // The kubelet's part of a graceful deletion: containers stopped, gone.
    (void)client_.Delete(res::kPods, ns, name, {.grace_period_seconds = 0});
    return;
  }
  const std::string node = StringAt(pod, "/spec/nodeName");
  if (node.empty()) {
    const std::string target = ChooseNode(pod);
    if (target.empty()) return;
    json binding = {{"apiVersion", "v1"},
                    {"kind", "Binding"},
                    {"metadata", {{"name", name}, {"namespace", ns}}},
                    {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", target}}}};
    auto r = client_.Request("POST", res::kPods.Path(ns, name, "binding"), "application/json", binding.dump());
    if (r.ok()) ++bindings_;
    return;
  }
  std::string phase = options_.phase_for ? options_.phase_for(pod) : "Running";
  if (phase.empty()) return;
  const std::string current = StringAt(pod, "/status/phase");
  if (current == "Succeeded" || current == "Failed") return;
  const bool want_ready = phase == "Running" && ready_.load();
  bool is_ready = false;
  for (const json& c : json(pod.value("status", json::object())).value("conditions", json::array())) {
    if (c.value("type", "") == "Ready") is_ready = c.value("status", "") == "True";
  }
  if (current == phase && is_ready == want_ready) return;
  (void)SetPodStatus(ns, name, phase, want_ready);
}

}  // namespace kelpie::testing
