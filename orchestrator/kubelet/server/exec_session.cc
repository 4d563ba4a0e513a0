// Exec over the WebSocket channel protocols (v4/v5.channel.k8s.io).
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "orchestrator/kubelet/server/stream_sessions.h"
#include "orchestrator/kubelet/server/websocket.h"

namespace kelpie::kubelet {
namespace {

constexpr char kStdin = 0, kStdout = 1, kStderr = 2, kError = 3, kResize = 4;
constexpr uint8_t kCloseSignal = 255;  // v5: [255, channel] ends that channel

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Copies `fd` to `channel` until EOF; without a consumer the output is
// read and dropped so the process never blocks on a full pipe.
void PumpOutput(int fd, char channel, bool forward, WebSocketConnection& ws) {
  if (fd < 0) return;
  std::string buf(32 * 1024 + 1, '\0');
  buf[0] = channel;
  bool open = true;
  while (true) {
    ssize_t n = ::read(fd, buf.data() + 1, buf.size() - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (forward && open) open = ws.WriteMessage(std::string_view(buf.data(), static_cast<size_t>(n) + 1));
  }
}

}  // namespace

std::string ExecStatusJson(int exit_code, const std::vector<std::string>& command) {
  nlohmann::json j = {{"metadata", nlohmann::json::object()}};
  if (exit_code == 0) {
    j["status"] = "Success";
    return j.dump();
  }
  j["status"] = "Failure";
  j["message"] = absl::StrCat("command terminated with non-zero exit code: error executing command [",
                              absl::StrJoin(command, " "), "], exit code ", exit_code);
  j["reason"] = "NonZeroExitCode";
  j["details"] = {{"causes", {{{"reason", "ExitCode"}, {"message", std::to_string(exit_code)}}}}};
  return j.dump();
}

void RunExecSession(http::UpgradedConnection& conn, const std::string& protocol, runtime::ExecSession& session,
                    const ExecStreams& streams, const std::vector<std::string>& command) {
  WebSocketConnection ws(conn);
  const bool v5 = protocol == "v5.channel.k8s.io";
  std::mutex mu;
  std::condition_variable cv;
  bool reader_done = false;
  bool process_done = false;
  // Client -> process. Ends when the client closes (then the process is
  // killed unless it already finished).
  std::thread reader([&] {
    while (auto message = ws.ReadMessage()) {
      if (message->empty()) continue;
      uint8_t channel = static_cast<uint8_t>((*message)[0]);
      if (v5 && channel == kCloseSignal) {
        if (message->size() >= 2 && (*message)[1] == kStdin) session.CloseStdin();
        continue;
      }
      if (channel == kStdin && session.stdin_fd() >= 0) {
        if (!WriteAll(session.stdin_fd(), std::string_view(*message).substr(1))) session.CloseStdin();
      }
      // kResize: no terminal to resize (exec runs without a tty).
      (void)kResize;
    }
    std::lock_guard<std::mutex> lock(mu);
    reader_done = true;
    if (!process_done) session.Kill();
    cv.notify_all();
  });
  std::thread err_pump([&] { PumpOutput(session.stderr_fd(), kStderr, streams.stderr, ws); });
  PumpOutput(session.stdout_fd(), kStdout, streams.stdout, ws);
  err_pump.join();
  auto exit_code = session.Wait(std::chrono::hours(24 * 365));
  {
    std::lock_guard<std::mutex> lock(mu);
    process_done = true;
  }
  std::string status = exit_code.ok()
                           ? ExecStatusJson(*exit_code, command)
                           : nlohmann::json({{"metadata", nlohmann::json::object()},
                                             {"status", "Failure"},
                                             {"message", std::string(exit_code.status().message())},
                                             {"reason", "InternalError"}})
                                 .dump();
  ws.WriteMessage(std::string(1, kError) + status);
  ws.SendClose(1000);
  {
    // The client answers the close; a client that does not is cut off.
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(5), [&] { return reader_done; });
  }
  conn.Close();
  reader.join();
}

}  // namespace kelpie::kubelet
