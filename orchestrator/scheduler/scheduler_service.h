// Everything `kelpie server` (or any host process) needs to run the
// scheduler against an API server: its REST clients, shared informers, the
// event recorder and the Scheduler, started together and stopped together.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/http/http_client.h"
#include "orchestrator/controllers/event_recorder.h"
#include "orchestrator/scheduler/scheduler.h"

namespace kelpie::scheduler {

class SchedulerService {
 public:
  // Connects with `api` (a client of the API server), waits for the
  // informers to sync (up to 60 s) and starts scheduling. `recorder` may be
  // null: events then go through a RestEventRecorder of its own.
  static absl::StatusOr<std::unique_ptr<SchedulerService>> Start(SchedulerConfig config, http::HttpClientOptions api,
                                                                 prometheus::Registry* metrics,
                                                                 controllers::EventRecorder* recorder = nullptr);
  ~SchedulerService();
  void Stop();
  Scheduler& scheduler() { return *scheduler_; }

 private:
  SchedulerService() = default;
  std::unique_ptr<client::RestClient> client_;
  std::unique_ptr<client::RestClient> events_client_;
  std::unique_ptr<controllers::SharedInformerFactory> informers_;
  std::unique_ptr<controllers::EventRecorder> own_recorder_;
  std::unique_ptr<Scheduler> scheduler_;
};

}  // namespace kelpie::scheduler
