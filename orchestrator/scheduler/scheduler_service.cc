#include "orchestrator/scheduler/scheduler_service.h"

#include "absl/strings/str_cat.h"
#include "orchestrator/controllers/rest_event_recorder.h"

namespace kelpie::scheduler {

absl::StatusOr<std::unique_ptr<SchedulerService>> SchedulerService::Start(SchedulerConfig config,
                                                                          http::HttpClientOptions api,
                                                                          prometheus::Registry* metrics,
                                                                          controllers::EventRecorder* recorder) {
  std::unique_ptr<SchedulerService> s(new SchedulerService());
  auto c = client::RestClient::Create(api);
  if (!c.ok()) return c.status();
  s->client_ = std::move(*c);
  s->informers_ = std::make_unique<controllers::SharedInformerFactory>(*s->client_);
  if (!recorder) {
    auto ec = client::RestClient::Create(api);
    if (!ec.ok()) return ec.status();
    s->events_client_ = std::move(*ec);
    controllers::EventRecorderOptions eo;
    eo.component = config.scheduler_name;
    s->own_recorder_ = std::make_unique<controllers::RestEventRecorder>(*s->events_client_, eo, metrics);
    recorder = s->own_recorder_.get();
  }
  SchedulerDeps deps{*s->client_, *s->informers_, *recorder, metrics,
                     [api]() { return client::RestClient::Create(api); }};
  auto sched = Scheduler::Create(std::move(config), std::move(deps));
  if (!sched.ok()) return sched.status();
  s->scheduler_ = std::move(*sched);
  s->informers_->Start();
  if (!s->informers_->WaitForSync(std::chrono::seconds(60))) {
    return absl::DeadlineExceededError("scheduler: informers did not sync within 60 s");
  }
  s->scheduler_->Run();
  return s;
}

SchedulerService::~SchedulerService() { Stop(); }

void SchedulerService::Stop() {
  if (scheduler_) scheduler_->Stop();
  if (informers_) informers_->Stop();
}

}  // namespace kelpie::scheduler
