#include "orchestrator/kubelet/pod_manager.h"

#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;

std::string PodUid(const json& pod) {
  return pod.contains("metadata") ? pod["metadata"].value("uid", "") : "";
}

controllers::InformerOptions PodInformerOptions(const std::string& node) {
  controllers::InformerOptions o;
  o.resource = client::resources::kPods;
  o.field_selector = absl::StrCat("spec.nodeName=", node);
  return o;
}

}  // namespace

PodManager::PodManager(PodWorkerOptions options, client::RestClient& client, runtime::PodRuntime& runtime,
                       image::ImageStore* images)
    : options_(std::move(options)),
      runtime_(runtime),
      images_(images),
      start_limiter_(options_.max_parallel_starts),
      api_(client),
      informer_(client, PodInformerOptions(options_.node_name)) {
  informer_.AddEventHandler({
      .on_add = [this](const json& pod) { OnPod(pod); },
      .on_update = [this](const json&, const json& pod) { OnPod(pod); },
      .on_delete = [this](const json& pod, bool) { OnDelete(pod); },
  });
}

PodManager::~PodManager() { Stop(); }

void PodManager::Start() {
  informer_.Start();
  housekeeping_ = std::thread([this] { Housekeeping(); });
}

void PodManager::Stop() {
  informer_.Stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (housekeeping_.joinable()) housekeeping_.join();
  std::map<std::string, std::unique_ptr<PodWorker>> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  for (auto& [uid, worker] : workers) worker->Stop();
}

size_t PodManager::WorkerCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return workers_.size();
}

void PodManager::OnPod(const json& pod) {
  std::string uid = PodUid(pod);
  if (uid.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return;
  auto it = workers_.find(uid);
  if (it != workers_.end()) {
    it->second->Update(pod);
    return;
  }
  workers_[uid] = std::make_unique<PodWorker>(options_, runtime_, images_, api_, pod, &start_limiter_);
}

void PodManager::OnDelete(const json& pod) {
  std::string uid = PodUid(pod);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = workers_.find(uid);
  if (it != workers_.end()) it->second->MarkDeleted();
}

void PodManager::RemoveOrphans() {
  std::set<std::string> live;
  for (const auto& pod : informer_.store().List()) live.insert(PodUid(pod));
  auto sandboxes = runtime_.ListPodSandboxes();
  if (sandboxes.ok()) {
    for (const auto& s : *sandboxes) {
      if (live.count(s.config.uid)) continue;
      spdlog::info("kubelet: removing sandbox {} of pod {}/{} ({}), which no longer exists", s.id,
                   s.config.pod_namespace, s.config.name, s.config.uid);
      if (absl::Status st = runtime_.RemovePodSandbox(s.id); !st.ok()) {
        spdlog::warn("kubelet: removing sandbox {}: {}", s.id, st.message());
      }
    }
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.pods_dir, ec)) {
    std::string uid = entry.path().filename().string();
    if (live.count(uid)) continue;
    if (absl::Status st = PodVolumes::Teardown(entry.path().string()); !st.ok()) {
      spdlog::warn("kubelet: removing pod folder {}: {}", entry.path().string(), st.message());
    }
  }
}

void PodManager::Housekeeping() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (!orphans_removed_ && informer_.HasSynced()) {
      lock.unlock();
      RemoveOrphans();
      lock.lock();
      orphans_removed_ = true;
    }
    // Workers of removed pods are joined here, off the informer's thread.
    std::vector<std::unique_ptr<PodWorker>> finished;
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->second->done()) {
        finished.push_back(std::move(it->second));
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    lock.unlock();
    finished.clear();
    lock.lock();
    cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stop_; });
  }
}

}  // namespace kelpie::kubelet
