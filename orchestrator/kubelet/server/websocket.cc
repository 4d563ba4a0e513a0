#include "orchestrator/kubelet/server/websocket.h"

#include <openssl/sha.h>

#include "absl/strings/str_cat.h"
#include "common/base64.h"

namespace kelpie::kubelet {

std::string EncodeWsFrame(WsOpcode opcode, std::string_view payload, bool fin, std::optional<uint32_t> mask) {
  std::string out;
  out.reserve(payload.size() + 14);
  out.push_back(static_cast<char>((fin ? 0x80 : 0x00) | static_cast<uint8_t>(opcode)));
  uint8_t mask_bit = mask ? 0x80 : 0x00;
  uint64_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(mask_bit | n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  }
  if (!mask) {
    out.append(payload);
    return out;
  }
  uint8_t key[4] = {static_cast<uint8_t>(*mask >> 24), static_cast<uint8_t>(*mask >> 16),
                    static_cast<uint8_t>(*mask >> 8), static_cast<uint8_t>(*mask)};
  out.append(reinterpret_cast<const char*>(key), 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    out.push_back(static_cast<char>(static_cast<uint8_t>(payload[i]) ^ key[i % 4]));
  }
  return out;
}

std::string WebSocketAcceptKey(std::string_view client_key) {
  std::string input = absl::StrCat(absl::string_view(client_key.data(), client_key.size()),
                                   "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return Base64Encode(std::string(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

absl::Status WsFrameDecoder::Feed(std::string_view data) {
  buffer_.append(data);
  return Parse();
}

std::optional<WsFrame> WsFrameDecoder::Next() {
  if (frames_.empty()) return std::nullopt;
  WsFrame f = std::move(frames_.front());
  frames_.pop_front();
  return f;
}

absl::Status WsFrameDecoder::Parse() {
  size_t pos = 0;
  auto byte = [&](size_t i) { return static_cast<uint8_t>(buffer_[i]); };
  while (buffer_.size() - pos >= 2) {
    uint8_t b0 = byte(pos), b1 = byte(pos + 1);
    if (b0 & 0x70) return absl::InvalidArgumentError("WebSocket frame with reserved bits set");
    uint8_t op = b0 & 0x0F;
    bool control = op & 0x08;
    if (!(op <= 2 || (op >= 8 && op <= 10))) {
      return absl::InvalidArgumentError(absl::StrCat("unknown WebSocket opcode ", op));
    }
    bool masked = b1 & 0x80;
    if (require_mask_ && !masked) return absl::InvalidArgumentError("unmasked WebSocket frame from a client");
    uint64_t len = b1 & 0x7F;
    size_t header = 2;
    if (len == 126) {
      if (buffer_.size() - pos < 4) break;
      len = (uint64_t{byte(pos + 2)} << 8) | byte(pos + 3);
      header = 4;
    } else if (len == 127) {
      if (buffer_.size() - pos < 10) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | byte(pos + 2 + i);
      header = 10;
    }
    if (control && (len > 125 || !(b0 & 0x80))) {
      return absl::InvalidArgumentError("fragmented or oversized WebSocket control frame");
    }
    if (len > max_payload_) {
      return absl::InvalidArgumentError(absl::StrCat("WebSocket frame of ", len, " bytes is above the limit"));
    }
    size_t mask_len = masked ? 4 : 0;
    if (buffer_.size() - pos < header + mask_len + len) break;
    WsFrame f;
    f.fin = b0 & 0x80;
    f.opcode = static_cast<WsOpcode>(op);
    f.payload.assign(buffer_, pos + header + mask_len, len);
    if (masked) {
      const uint8_t key[4] = {byte(pos + header), byte(pos + header + 1), byte(pos + header + 2),
                              byte(pos + header + 3)};
      for (size_t i = 0; i < f.payload.size(); ++i) {
        f.payload[i] = static_cast<char>(static_cast<uint8_t>(f.payload[i]) ^ key[i % 4]);
      }
    }
    frames_.push_back(std::move(f));
    pos += header + mask_len + len;
  }
  buffer_.erase(0, pos);
  return absl::OkStatus();
}

std::optional<std::string> WebSocketConnection::ReadMessage() {
  std::string message;
  bool in_message = false;
  char buf[16384];
  while (!ended_) {
    while (auto frame = decoder_.Next()) {
      switch (frame->opcode) {
        case WsOpcode::kPing:
          WriteFrame(WsOpcode::kPong, frame->payload);
          break;
        case WsOpcode::kPong:
          break;
        case WsOpcode::kClose: {
          uint16_t code = 1000;
          if (frame->payload.size() >= 2) {
            code = static_cast<uint16_t>((static_cast<uint8_t>(frame->payload[0]) << 8) |
                                         static_cast<uint8_t>(frame->payload[1]));
          }
          Close(code);
          ended_ = true;
          return std::nullopt;
        }
        case WsOpcode::kText:
        case WsOpcode::kBinary:
          message = std::move(frame->payload);
          in_message = true;
          if (frame->fin) return message;
          break;
        case WsOpcode::kContinuation:
          if (!in_message) {
            Close(1002);
            ended_ = true;
            return std::nullopt;
          }
          message += frame->payload;
          if (frame->fin) return message;
          break;
      }
    }
    size_t n = conn_.Read(buf, sizeof(buf));
    if (n == 0) {
      ended_ = true;
      break;
    }
    if (!decoder_.Feed(std::string_view(buf, n)).ok()) {
      Close(1002);
      ended_ = true;
    }
  }
  return std::nullopt;
}

bool WebSocketConnection::WriteFrame(WsOpcode opcode, std::string_view payload) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (close_sent_) return false;
  return conn_.Write(EncodeWsFrame(opcode, payload));
}

bool WebSocketConnection::WriteMessage(std::string_view payload, WsOpcode opcode) {
  return WriteFrame(opcode, payload);
}

void WebSocketConnection::SendClose(uint16_t code, std::string_view reason) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (close_sent_) return;
  close_sent_ = true;
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(reason.substr(0, 120));
  conn_.Write(EncodeWsFrame(WsOpcode::kClose, payload));
}

void WebSocketConnection::Close(uint16_t code, std::string_view reason) {
  SendClose(code, reason);
  conn_.Close();
}

}  // namespace kelpie::kubelet
