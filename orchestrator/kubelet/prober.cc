#include "orchestrator/kubelet/prober.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

int ResolvePort(const json& port, const json& container) {
  if (port.is_number_integer()) return port.get<int>();
  if (!port.is_string()) return 0;
  std::string name = port.get<std::string>();
  int number = 0;
  if (absl::SimpleAtoi(name, &number)) return number;
  for (const auto& p : container.value("ports", json::array())) {
    if (p.value("name", "") == name) return p.value("containerPort", 0);
  }
  return 0;
}

int Remaining(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// A non-blocking connect bounded by `deadline`; -1 and `error` on failure.
int Connect(const std::string& host, int port, Clock::time_point deadline, std::string* error) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    *error = absl::StrCat("\"", host, "\" is not an IPv4 address");
    return -1;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::strerror(errno);
    return -1;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno != EINPROGRESS) {
    *error = absl::StrCat("dial tcp ", host, ":", port, ": ", std::strerror(errno));
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  int ready = ::poll(&p, 1, Remaining(deadline));
  int so_error = 0;
  socklen_t len = sizeof(so_error);
  if (ready <= 0) {
    *error = absl::StrCat("dial tcp ", host, ":", port, ": i/o timeout");
    ::close(fd);
    return -1;
  }
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) {
    *error = absl::StrCat("dial tcp ", host, ":", port, ": ", std::strerror(so_error));
    ::close(fd);
    return -1;
  }
  return fd;
}

ProbeResult HttpGet(const ProbeSpec& probe, const std::string& host, Clock::time_point deadline) {
  if (absl::AsciiStrToUpper(probe.scheme) != "HTTP") {
    return {false, "HTTPS probes are not supported by this kubelet"};
  }
  std::string error;
  int fd = Connect(host, probe.port, deadline, &error);
  if (fd < 0) return {false, absl::StrCat("Get \"http://", host, ":", probe.port, probe.path, "\": ", error)};
  std::string request = absl::StrCat("GET ", probe.path.empty() ? "/" : probe.path, " HTTP/1.1\r\n");
  bool has_host = false, has_agent = false;
  for (const auto& [k, v] : probe.headers) {
    absl::StrAppend(&request, k, ": ", v, "\r\n");
    if (absl::AsciiStrToLower(k) == "host") has_host = true;
    if (absl::AsciiStrToLower(k) == "user-agent") has_agent = true;
  }
  if (!has_host) absl::StrAppend(&request, "Host: ", host, ":", probe.port, "\r\n");
  if (!has_agent) absl::StrAppend(&request, "User-Agent: kube-probe/1.32\r\n");
  absl::StrAppend(&request, "Accept: */*\r\nConnection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, Remaining(deadline)) <= 0) break;
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string response;
  while (response.find("\r\n") == std::string::npos && response.size() < 4096) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, Remaining(deadline)) <= 0) break;
    char buf[1024];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  // "HTTP/1.1 200 OK"
  size_t space = response.find(' ');
  int code = 0;
  if (space == std::string::npos || !absl::SimpleAtoi(response.substr(space + 1, 3), &code)) {
    return {false, absl::StrCat("Get \"http://", host, ":", probe.port, probe.path,
                                "\": no HTTP response before the timeout")};
  }
  if (code >= 200 && code < 400) return {true, ""};
  return {false, absl::StrCat("HTTP probe failed with statuscode: ", code)};
}

}  // namespace

ProbeSpec ParseProbe(const json& probe, const json& container) {
  ProbeSpec spec;
  if (!probe.is_object()) return spec;
  if (probe.contains("exec") && probe["exec"].is_object()) {
    spec.kind = ProbeSpec::Kind::kExec;
    for (const auto& w : probe["exec"].value("command", json::array())) {
      if (w.is_string()) spec.command.push_back(w.get<std::string>());
    }
  } else if (probe.contains("httpGet") && probe["httpGet"].is_object()) {
    const json& h = probe["httpGet"];
    spec.kind = ProbeSpec::Kind::kHttpGet;
    spec.host = h.value("host", "");
    spec.port = ResolvePort(h.value("port", json()), container);
    spec.path = h.value("path", "/");
    spec.scheme = h.value("scheme", "HTTP");
    for (const auto& hdr : h.value("httpHeaders", json::array())) {
      spec.headers.emplace_back(hdr.value("name", ""), hdr.value("value", ""));
    }
  } else if (probe.contains("tcpSocket") && probe["tcpSocket"].is_object()) {
    spec.kind = ProbeSpec::Kind::kTcpSocket;
    spec.host = probe["tcpSocket"].value("host", "");
    spec.port = ResolvePort(probe["tcpSocket"].value("port", json()), container);
  }
  spec.initial_delay_seconds = probe.value("initialDelaySeconds", 0);
  spec.period_seconds = std::max(1, probe.value("periodSeconds", 10));
  spec.timeout_seconds = std::max(1, probe.value("timeoutSeconds", 1));
  spec.success_threshold = std::max(1, probe.value("successThreshold", 1));
  spec.failure_threshold = std::max(1, probe.value("failureThreshold", 3));
  return spec;
}

ProbeResult RunProbe(const ProbeSpec& probe, runtime::PodRuntime& runtime, const std::string& container_id,
                     const std::string& pod_ip, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string host = probe.host.empty() ? pod_ip : probe.host;
  switch (probe.kind) {
    case ProbeSpec::Kind::kNone:
      return {true, ""};
    case ProbeSpec::Kind::kExec: {
      auto r = runtime.ExecSync(container_id, probe.command, timeout);
      if (!r.ok()) return {false, std::string(r.status().message())};
      if (r->timed_out) return {false, absl::StrCat("command timed out after ", timeout.count(), "ms")};
      if (r->exit_code != 0) {
        return {false, absl::StrCat("command exited with ", r->exit_code, ": ", r->stdout_text, r->stderr_text)};
      }
      return {true, ""};
    }
    case ProbeSpec::Kind::kHttpGet:
      if (host.empty()) return {false, "the pod has no IP"};
      return HttpGet(probe, host, deadline);
    case ProbeSpec::Kind::kTcpSocket: {
      if (host.empty()) return {false, "the pod has no IP"};
      std::string error;
      int fd = Connect(host, probe.port, deadline, &error);
      if (fd < 0) return {false, error};
      ::close(fd);
      return {true, ""};
    }
  }
  return {false, "unknown probe"};
}

}  // namespace kelpie::kubelet
