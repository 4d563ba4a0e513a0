// RFC 6455 WebSocket, server side, as the kubelet's streaming endpoints use
// it: frame encoding and an incremental decoder (pure, unit-tested), the
// handshake's accept key, and a message-level connection over an upgraded
// HTTP connection that answers pings and close frames itself.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/http/http_upgrade.h"

namespace kelpie::kubelet {

enum class WsOpcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

struct WsFrame {
  bool fin = true;
  WsOpcode opcode = WsOpcode::kBinary;
  std::string payload;  // unmasked
};

// One frame; servers send unmasked frames, clients pass a masking key.
std::string EncodeWsFrame(WsOpcode opcode, std::string_view payload, bool fin = true,
                          std::optional<uint32_t> mask = std::nullopt);

// Sec-WebSocket-Accept for a Sec-WebSocket-Key.
std::string WebSocketAcceptKey(std::string_view client_key);

// Splits a byte stream into frames. A server requires masked frames
// (RFC 6455 5.1); frames above `max_payload` are an error.
class WsFrameDecoder {
 public:
  explicit WsFrameDecoder(bool require_mask = true, uint64_t max_payload = 16 << 20)
      : require_mask_(require_mask), max_payload_(max_payload) {}
  // Appends bytes; an error means the stream is broken for good.
  absl::Status Feed(std::string_view data);
  std::optional<WsFrame> Next();

 private:
  absl::Status Parse();
  bool require_mask_;
  uint64_t max_payload_;
  std::string buffer_;
  std::deque<WsFrame> frames_;
};

// Whole messages over an upgraded connection. ReadMessage is for one
// thread; WriteMessage and Close may be called from any thread.
class WebSocketConnection {
 public:
  explicit WebSocketConnection(http::UpgradedConnection& conn) : conn_(conn) {}
  // The next text or binary message (fragments joined); pings are
  // answered, a close frame is echoed. nullopt once the connection ended.
  std::optional<std::string> ReadMessage();
  bool WriteMessage(std::string_view payload, WsOpcode opcode = WsOpcode::kBinary);
  // Sends a close frame (once); the peer's answer ends ReadMessage.
  void SendClose(uint16_t code = 1000, std::string_view reason = "");
  // Sends a close frame (once) and closes the connection.
  void Close(uint16_t code = 1000, std::string_view reason = "");

 private:
  bool WriteFrame(WsOpcode opcode, std::string_view payload);
  http::UpgradedConnection& conn_;
  WsFrameDecoder decoder_;
  std::mutex write_mu_;
  bool close_sent_ = false;
  bool ended_ = false;
};

}  // namespace kelpie::kubelet
