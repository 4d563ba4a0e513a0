// Store benchmark: the embedded backend, the etcd backend (Kelpie's Store
// layer over etcd) and etcd alone (the same gRPC stubs, no Kelpie layer),
// measured in one run on this machine against a private etcd process, and
// printed as one table with ratios.
//
//   store_bench [--seconds S] [--rounds N] [--watchers N] [--range-keys N] [--smoke] [--dir PATH]
//
// Durability is on everywhere: the embedded store fsyncs each group commit,
// etcd fsyncs its WAL. Data lives under --dir (default: a temporary folder
// in the current directory, so on a real disk rather than tmpfs).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "orchestrator/store/embedded_store.h"
#include "orchestrator/store/etcd_store.h"
#include "proto/etcd/etcdserverpb/rpc.grpc.pb.h"
#include "tests/unit/store/etcd_process.h"

namespace kelpie::store {
namespace {

using Clock = std::chrono::steady_clock;

struct Settings {
  double seconds = 2.0;  // per write measurement
  int write_rounds = 3;
  int watchers = 1000;
  int watch_writes = 200;
  int range_keys = 10000;
  int range_repeats = 10;
  std::string dir;
};

// What the benchmark needs from each contender.
class Target {
 public:
  virtual ~Target() = default;
  virtual void Put(std::string key, std::string value, std::function<void(bool)> done) = 0;
  // Returns the number of keys read.
  virtual size_t RangeAll(const std::string& prefix) = 0;
  // Starts a watch whose callback receives each event's value.
  virtual bool Watch(const std::string& prefix, std::function<void(std::string_view)> on_value) = 0;
  virtual void StopWatches() = 0;
};

class StoreTarget : public Target {
 public:
  explicit StoreTarget(std::unique_ptr<Store> store) : store_(std::move(store)) {}
  void Put(std::string key, std::string value, std::function<void(bool)> done) override {
    store_->PutAsync(std::move(key), std::move(value), 0,
                     [done = std::move(done)](absl::StatusOr<WriteResult> r) {
                       if (!r.ok()) std::cerr << "put: " << r.status() << "\n";
                       done(r.ok());
                     });
  }
  size_t RangeAll(const std::string& prefix) override {
    auto r = store_->Range(prefix, {});
    if (!r.ok()) std::cerr << "range: " << r.status() << "\n";
    return r.ok() ? r->kvs.size() : 0;
  }
  bool Watch(const std::string& prefix, std::function<void(std::string_view)> on_value) override {
    WatchOptions options;
    options.prefix = prefix;
    options.prev_kv = false;
    auto w = store_->Watch(options, {[on_value](WatchBatch batch) {
                                       for (const Event& e : batch.events) {
                                         on_value(e.kv.value_view());
                                       }
                                     },
                                     nullptr});
    if (!w.ok()) {
      std::cerr << "watch: " << w.status() << "\n";
      return false;
    }
    watches_.push_back(std::move(*w));
    return true;
  }
  void StopWatches() override { watches_.clear(); }

 private:
  std::unique_ptr<Store> store_;
  std::vector<std::unique_ptr<WatchHandle>> watches_;
};

// etcd through its gRPC API directly: the anchor.
class RawEtcdTarget : public Target {
 public:
  explicit RawEtcdTarget(const std::string& endpoint) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    channel_ = grpc::CreateCustomChannel(endpoint.substr(endpoint.find("//") + 2),
                                         grpc::InsecureChannelCredentials(), args);
    kv_ = etcdserverpb::KV::NewStub(channel_);
    watch_ = etcdserverpb::Watch::NewStub(channel_);
  }
  ~RawEtcdTarget() override { StopWatches(); }

  void Put(std::string key, std::string value, std::function<void(bool)> done) override {
    struct Call {
      grpc::ClientContext context;
      etcdserverpb::PutRequest request;
      etcdserverpb::PutResponse response;
    };
    auto call = std::make_shared<Call>();
    call->request.set_key(std::move(key));
    call->request.set_value(std::move(value));
    kv_->async()->Put(&call->context, &call->request, &call->response,
                      [call, done = std::move(done)](grpc::Status s) mutable {
                        // Release the ClientContext before reporting, so the
                        // channel outlives every call state.
                        call.reset();
                        if (!s.ok()) std::cerr << "put: " << s.error_message() << "\n";
                        done(s.ok());
                      });
  }
  size_t RangeAll(const std::string& prefix) override {
    grpc::ClientContext context;
    etcdserverpb::RangeRequest request;
    request.set_key(prefix);
    request.set_range_end(PrefixEnd(prefix));
    etcdserverpb::RangeResponse response;
    grpc::Status s = kv_->Range(&context, request, &response);
    if (!s.ok()) std::cerr << "range: " << s.error_message() << "\n";
    return static_cast<size_t>(response.kvs_size());
  }

  class Reactor : public grpc::ClientBidiReactor<etcdserverpb::WatchRequest,
                                                 etcdserverpb::WatchResponse> {
   public:
    Reactor(etcdserverpb::Watch::Stub* stub, const std::string& prefix,
            std::function<void(std::string_view)> on_value)
        : on_value_(std::move(on_value)) {
      auto* create = request_.mutable_create_request();
      create->set_key(prefix);
      create->set_range_end(PrefixEnd(prefix));
      stub->async()->Watch(&context_, this);
      StartWrite(&request_);
      StartRead(&response_);
      StartCall();
    }
    bool WaitCreated() {
      std::unique_lock lock(mu_);
      return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return created_; });
    }
    void OnReadDone(bool ok) override {
      if (!ok) return;
      if (response_.created()) {
        std::lock_guard lock(mu_);
        created_ = true;
        cv_.notify_all();
      }
      for (const auto& e : response_.events()) on_value_(e.kv().value());
      response_.Clear();
      StartRead(&response_);
    }
    void OnWriteDone(bool) override {}
    void OnDone(const grpc::Status&) override {
      std::lock_guard lock(mu_);
      done_ = true;
      cv_.notify_all();
    }
    void Stop() {
      context_.TryCancel();
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return done_; });
    }

   private:
    std::function<void(std::string_view)> on_value_;
    grpc::ClientContext context_;
    etcdserverpb::WatchRequest request_;
    etcdserverpb::WatchResponse response_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool created_ = false;
    bool done_ = false;
  };

  bool Watch(const std::string& prefix, std::function<void(std::string_view)> on_value) override {
    auto reactor = std::make_unique<Reactor>(watch_.get(), prefix, std::move(on_value));
    bool ok = reactor->WaitCreated();
    reactors_.push_back(std::move(reactor));
    return ok;
  }
  void StopWatches() override {
    for (auto& r : reactors_) r->Stop();
    reactors_.clear();
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch_;
  std::vector<std::unique_ptr<Reactor>> reactors_;
};

// Keeps `writers` writes in flight for `seconds`; returns completed writes/s.
double MeasureWrites(Target& target, const std::string& prefix, int writers, double seconds) {
  const std::string value(1024, 'v');
  std::mutex mu;
  std::condition_variable cv;
  int64_t completed = 0;
  int in_flight = 0;
  std::atomic<bool> stop{false};
  std::function<void(int, int64_t)> issue = [&](int writer, int64_t n) {
    {
      std::lock_guard lock(mu);
      ++in_flight;
    }
    target.Put(absl::StrCat(prefix, writer, "/", n % 64), value, [&, writer, n](bool) {
      bool again = !stop.load();
      {
        std::lock_guard lock(mu);
        ++completed;
        --in_flight;
        cv.notify_all();
      }
      if (again) issue(writer, n + 1);
    });
  };
  auto start = Clock::now();
  for (int w = 0; w < writers; ++w) issue(w, 0);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  int64_t done_at_stop;
  {
    std::lock_guard lock(mu);
    done_at_stop = completed;
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return in_flight == 0; });
  return static_cast<double>(done_at_stop) / elapsed;
}

// Loads `keys` keys of 1 KiB, then times full reads; returns ms per range.
double MeasureRange(Target& target, const std::string& prefix, const Settings& settings) {
  const std::string value(1024, 'r');
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  for (int i = 0; i < settings.range_keys; ++i) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight < 64; });
      ++in_flight;
    }
    target.Put(absl::StrFormat("%s%08d", prefix, i), value, [&](bool) {
      std::lock_guard lock(mu);
      --in_flight;
      cv.notify_all();
    });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return in_flight == 0; });
  }
  target.RangeAll(prefix);  // warm
  auto start = Clock::now();
  for (int r = 0; r < settings.range_repeats; ++r) {
    size_t n = target.RangeAll(prefix);
    if (n != static_cast<size_t>(settings.range_keys)) {
      std::cerr << "range returned " << n << " keys, expected " << settings.range_keys << "\n";
    }
  }
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count() /
         settings.range_repeats;
}

struct Latency {
  double p50_ms = 0;
  double p99_ms = 0;
  double delivered = 0;  // fraction of expected deliveries
};

// `watchers` watches on one prefix; writes carry their issue time; the
// latency of a delivery is from issuing the (durable) write to the event
// reaching the watcher's callback.
Latency MeasureWatch(Target& target, const std::string& prefix, const Settings& settings) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<double> samples;
  const size_t expected = static_cast<size_t>(settings.watchers) * settings.watch_writes;
  samples.reserve(expected);
  auto on_value = [&](std::string_view value) {
    auto now = Clock::now().time_since_epoch().count();
    int64_t sent = std::atoll(std::string(value).c_str());
    std::lock_guard lock(mu);
    samples.push_back(static_cast<double>(now - sent) / 1e6);
    if (samples.size() == expected) cv.notify_all();
  };
  for (int i = 0; i < settings.watchers; ++i) {
    if (!target.Watch(prefix, on_value)) break;
  }
  for (int i = 0; i < settings.watch_writes; ++i) {
    std::mutex wmu;
    std::condition_variable wcv;
    bool acked = false;
    std::string value = std::to_string(Clock::now().time_since_epoch().count());
    value.resize(64, ' ');
    target.Put(absl::StrCat(prefix, i % 16), value, [&](bool) {
      std::lock_guard lock(wmu);
      acked = true;
      wcv.notify_all();
    });
    std::unique_lock lock(wmu);
    wcv.wait(lock, [&] { return acked; });
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Latency out;
  {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(30), [&] { return samples.size() >= expected; });
    out.delivered = static_cast<double>(samples.size()) / static_cast<double>(expected);
    std::sort(samples.begin(), samples.end());
    if (!samples.empty()) {
      out.p50_ms = samples[samples.size() / 2];
      out.p99_ms = samples[std::min(samples.size() - 1, samples.size() * 99 / 100)];
    }
  }
  target.StopWatches();
  return out;
}

struct Row {
  std::string name;
  double values[3];
  bool higher_is_better;
};

int Main(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--seconds") {
      settings.seconds = std::atof(next().c_str());
    } else if (arg == "--rounds") {
      settings.write_rounds = std::max(1, std::atoi(next().c_str()));
    } else if (arg == "--watchers") {
      settings.watchers = std::atoi(next().c_str());
    } else if (arg == "--range-keys") {
      settings.range_keys = std::atoi(next().c_str());
    } else if (arg == "--dir") {
      settings.dir = next();
    } else if (arg == "--smoke") {
      settings.seconds = 0.3;
      settings.write_rounds = 1;
      settings.watchers = 20;
      settings.watch_writes = 10;
      settings.range_keys = 200;
      settings.range_repeats = 2;
    } else {
      std::cerr << "usage: store_bench [--seconds S] [--rounds N] [--watchers N] [--range-keys N] [--smoke] "
                   "[--dir PATH]\n";
      return 2;
    }
  }
  bool own_dir = settings.dir.empty();
  if (own_dir) {
    std::string templ = (std::filesystem::current_path() / "store-bench-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    settings.dir = templ;
  }
  int rc = 0;
  {
    auto etcd = testing::EtcdProcess::Start(settings.dir + "/etcd");
    if (!etcd.ok()) {
      std::cerr << "cannot start etcd: " << etcd.status() << "\n";
      return 1;
    }
    EmbeddedStoreOptions embedded_options;
    embedded_options.data_dir = settings.dir + "/embedded";
    auto embedded = EmbeddedStore::Open(embedded_options);
    EtcdStoreOptions etcd_options;
    etcd_options.endpoints = {(*etcd)->endpoint()};
    auto etcd_backend = EtcdStore::Open(etcd_options);
    if (!embedded.ok() || !etcd_backend.ok()) {
      std::cerr << "open: " << embedded.status() << " / " << etcd_backend.status() << "\n";
      return 1;
    }
    StoreTarget embedded_target(std::move(*embedded));
    StoreTarget etcd_backend_target(std::move(*etcd_backend));
    RawEtcdTarget raw_target((*etcd)->endpoint());
    Target* targets[3] = {&embedded_target, &etcd_backend_target, &raw_target};
    const char* names[3] = {"embedded", "etcd-backend", "etcd-alone"};

    std::vector<Row> rows;
    for (int writers : {1, 16, 64}) {
      Row row{absl::StrCat("durable writes/s, ", writers, " writer", writers > 1 ? "s" : "",
                           " (1 KiB)"),
              {},
              true};
      // The disk is shared with whatever else runs on the machine: rounds
      // alternate between contenders and the median of each is reported.
      std::vector<double> samples[3];
      for (int round = 0; round < settings.write_rounds; ++round) {
        for (int t = 0; t < 3; ++t) {
          samples[t].push_back(MeasureWrites(
              *targets[t], absl::StrCat("/bench/", names[t], "/w", writers, "/"), writers,
              settings.seconds));
        }
      }
      for (int t = 0; t < 3; ++t) {
        std::sort(samples[t].begin(), samples[t].end());
        row.values[t] = samples[t][samples[t].size() / 2];
      }
      rows.push_back(row);
    }
    Row range{absl::StrCat("range of ", settings.range_keys, " keys (ms)"), {}, false};
    for (int t = 0; t < 3; ++t) {
      range.values[t] =
          MeasureRange(*targets[t], absl::StrCat("/bench/", names[t], "/range/"), settings);
    }
    rows.push_back(range);
    Row p50{absl::StrCat("watch p50, ", settings.watchers, " watchers (ms)"), {}, false};
    Row p99{absl::StrCat("watch p99, ", settings.watchers, " watchers (ms)"), {}, false};
    for (int t = 0; t < 3; ++t) {
      Latency l = MeasureWatch(*targets[t], absl::StrCat("/bench/", names[t], "/watch/"), settings);
      p50.values[t] = l.p50_ms;
      p99.values[t] = l.p99_ms;
      if (l.delivered < 1.0) {
        std::cerr << names[t] << ": only " << l.delivered * 100 << "% of watch events arrived\n";
        rc = 1;
      }
    }
    rows.push_back(p50);
    rows.push_back(p99);

    std::printf("\n| %-40s | %12s | %12s | %12s | %20s | %20s |\n", "metric", "embedded",
                "etcd backend", "etcd alone", "embedded vs backend", "backend vs etcd alone");
    std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(42, '-').c_str(),
                std::string(14, '-').c_str(), std::string(14, '-').c_str(),
                std::string(14, '-').c_str(), std::string(22, '-').c_str(),
                std::string(22, '-').c_str());
    for (const Row& row : rows) {
      // Ratios read "times better": throughput divides one way, latency the other.
      auto better = [&](double a, double b) {
        if (a <= 0 || b <= 0) return 0.0;
        return row.higher_is_better ? a / b : b / a;
      };
      std::printf("| %-40s | %12.1f | %12.1f | %12.1f | %19.2fx | %19.2fx |\n", row.name.c_str(),
                  row.values[0], row.values[1], row.values[2], better(row.values[0], row.values[1]),
                  better(row.values[1], row.values[2]));
    }
    std::printf("\nRatios are \"times better\" (higher throughput or lower latency). Goals: "
                "embedded >= 3x the etcd backend at 64 writers; watch p99 <= 10 ms.\n");
  }
  if (own_dir) std::filesystem::remove_all(settings.dir);
  return rc;
}

}  // namespace
}  // namespace kelpie::store

int main(int argc, char** argv) { return kelpie::store::Main(argc, argv); }
