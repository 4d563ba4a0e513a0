#include "orchestrator/apiserver/deadline_scheduler.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <utility>

namespace kelpie::apiserver {

struct DeadlineScheduler::State {
  std::mutex mu;
  std::condition_variable cv;
  std::condition_variable done_cv;
  std::multimap<Clock::time_point, std::pair<uint64_t, std::function<void()>>> queue;
  std::map<uint64_t, Clock::time_point> deadlines;
  uint64_t next_id = 1;
  uint64_t running = 0;  // id of the callback running now
  std::thread::id thread_id;
  bool stopping = false;

  void Run() {
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      if (queue.empty()) {
        cv.wait(lock);
        continue;
      }
      auto first = queue.begin();
      if (Clock::now() < first->first) {
        cv.wait_until(lock, first->first);
        continue;
      }
      uint64_t id = first->second.first;
      std::function<void()> callback = std::move(first->second.second);
      queue.erase(first);
      deadlines.erase(id);
      running = id;
      lock.unlock();
      callback();
      callback = nullptr;  // let go of what it holds outside the lock
      lock.lock();
      running = 0;
      done_cv.notify_all();
    }
  }
};

DeadlineScheduler::DeadlineScheduler() : state_(std::make_shared<State>()) {
  thread_ = std::thread([s = state_] { s->Run(); });
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->thread_id = thread_.get_id();
}

DeadlineScheduler::~DeadlineScheduler() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stopping = true;
    state_->queue.clear();
    state_->deadlines.clear();
  }
  state_->cv.notify_all();
  if (std::this_thread::get_id() == thread_.get_id()) {
    thread_.detach();  // it holds the state and ends after this callback
  } else {
    thread_.join();
  }
}

uint64_t DeadlineScheduler::Schedule(Clock::time_point deadline, std::function<void()> callback) {
  uint64_t id;
  bool earliest;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    id = state_->next_id++;
    earliest = state_->queue.empty() || deadline < state_->queue.begin()->first;
    state_->queue.emplace(deadline, std::make_pair(id, std::move(callback)));
    state_->deadlines[id] = deadline;
  }
  if (earliest) state_->cv.notify_all();
  return id;
}

void DeadlineScheduler::Cancel(uint64_t id) {
  std::function<void()> dropped;
  std::unique_lock<std::mutex> lock(state_->mu);
  auto it = state_->deadlines.find(id);
  if (it != state_->deadlines.end()) {
    auto range = state_->queue.equal_range(it->second);
    for (auto q = range.first; q != range.second; ++q) {
      if (q->second.first == id) {
        dropped = std::move(q->second.second);
        state_->queue.erase(q);
        break;
      }
    }
    state_->deadlines.erase(it);
  }
  if (id != 0 && state_->running == id && std::this_thread::get_id() != state_->thread_id) {
    state_->done_cv.wait(lock, [&] { return state_->running != id; });
  }
  lock.unlock();
  // `dropped` (and what it captured) is released here, outside the lock.
}

size_t DeadlineScheduler::pending() {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->queue.size();
}

}  // namespace kelpie::apiserver
