// Runs a set of controllers the way kube-controller-manager does: with
// leader election (a coordination.k8s.io Lease, by default
// kube-system/kube-controller-manager) so that of several servers only one
// runs controllers; the leader builds a SharedInformerFactory, an event
// recorder and the controllers enabled by --controllers, starts the
// informers, waits for them to sync and runs every controller. Losing the
// lease (or Stop) stops the controllers and informers; leading again starts
// fresh ones.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/controller.h"
#include "orchestrator/controllers/leader_elector.h"
#include "orchestrator/controllers/rest_event_recorder.h"

namespace CLI {
class App;
}

namespace kelpie::controllers {

// Builds one controller from the manager's shared parts. Called each time
// this manager starts leading, before the informers start.
using ControllerFactory = std::function<absl::StatusOr<std::unique_ptr<Controller>>(ControllerContext&)>;

struct ControllerDescriptor {
  std::string name;  // as in --controllers, e.g. "endpointslice"
  ControllerFactory factory;
  bool enabled_by_default = true;
  int workers = 5;
};

struct ControllerManagerOptions {
  // kube-controller-manager's --controllers: "*" (all enabled by default),
  // "name" (enable), "-name" (disable).
  std::vector<std::string> controllers = {"*"};
  bool leader_elect = true;
  std::string lease_namespace = "kube-system";
  std::string lease_name = "kube-controller-manager";
  std::string identity;  // default: host name + "_" + a random suffix
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
  std::chrono::milliseconds sync_timeout{60000};
  std::string event_host;  // source.host of events
  int workers = 0;         // workers per controller; 0: each descriptor's own
};

// The names from `flag` selected among `known` (the manager's descriptors);
// unknown names are an InvalidArgument error naming them.
absl::StatusOr<std::set<std::string>> SelectControllers(const std::vector<std::string>& flag,
                                                        const std::vector<ControllerDescriptor>& known);

class ControllerManager {
 public:
  ControllerManager(client::RestClient& client, ControllerManagerOptions options,
                    std::vector<ControllerDescriptor> controllers, prometheus::Registry* metrics = nullptr);
  ~ControllerManager();
  ControllerManager(const ControllerManager&) = delete;
  ControllerManager& operator=(const ControllerManager&) = delete;

  // Validates --controllers and starts leader election (or, without it,
  // the controllers). Returns at once; controllers start in the background.
  absl::Status Start();
  // Stops the controllers, informers and event recorder and releases the lease.
  void Stop();

  bool IsLeading() const { return leading_.load(); }
  // Names of the controllers currently running (empty unless leading).
  std::vector<std::string> Running() const;
  // Blocks until controllers run (leading and synced) or `timeout` passes.
  bool WaitUntilRunning(std::chrono::milliseconds timeout) const;

 private:
  void Loop();
  void StartControllers();
  void StopControllers();

  client::RestClient& client_;
  const ControllerManagerOptions options_;
  const std::vector<ControllerDescriptor> descriptors_;
  prometheus::Registry* metrics_;
  std::set<std::string> enabled_;

  std::unique_ptr<LeaderElector> elector_;
  std::thread loop_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool want_running_ = false;
  bool stop_ = false;
  bool running_ = false;
  std::atomic<bool> leading_{false};
  std::vector<std::string> running_names_;

  // Present while leading.
  std::unique_ptr<SharedInformerFactory> informers_;
  std::unique_ptr<RestEventRecorder> recorder_;
  std::vector<std::unique_ptr<ControllerContext>> contexts_;
  std::vector<std::unique_ptr<Controller>> controllers_;
};

// Flags of the controller manager inside `kelpie server`.
struct ControllerManagerFlags {
  bool enabled = true;
  std::vector<std::string> controllers = {"*"};
  bool leader_elect = true;
  std::string lease_duration = "15s";
  std::string renew_deadline = "10s";
  std::string retry_period = "2s";
  int workers = 5;
};
void AddControllerManagerFlags(CLI::App& app, ControllerManagerFlags& flags);
// Durations such as "40s", "500ms", "5m" (Go's time.ParseDuration forms).
absl::StatusOr<std::chrono::milliseconds> ParseFlagDuration(const std::string& flag, const std::string& text);
absl::Status ApplyControllerManagerFlags(const ControllerManagerFlags& flags, ControllerManagerOptions* options);

}  // namespace kelpie::controllers
