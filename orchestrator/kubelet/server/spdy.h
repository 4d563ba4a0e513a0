// SPDY/3.1 framing as Kubernetes' port-forward protocol uses it (kubectl
// speaks it directly after an `Upgrade: SPDY/3.1` or tunneled inside
// WebSocket binary messages with the subprotocol
// `SPDY/3.1+portforward.k8s.io`): frame encoding, an incremental decoder and
// the zlib header-block codec with the SPDY/3 dictionary.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace kelpie::kubelet {

enum class SpdyType : uint16_t {
  kSynStream = 1,
  kSynReply = 2,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoAway = 7,
  kHeaders = 8,
  kWindowUpdate = 9,
};

constexpr uint8_t kSpdyFlagFin = 0x01;

struct SpdyFrame {
  bool control = false;
  SpdyType type = SpdyType::kSynStream;  // control frames only
  uint8_t flags = 0;
  uint32_t stream_id = 0;  // data frames; for control frames that carry one, parsed from the payload
  std::string payload;     // everything after the 8-byte frame header
};

using SpdyHeaders = std::vector<std::pair<std::string, std::string>>;

// The SPDY/3 zlib dictionary (1423 bytes).
const std::string& SpdyDictionary();

class SpdyFrameDecoder {
 public:
  absl::Status Feed(std::string_view data);
  std::unique_ptr<SpdyFrame> Next();

 private:
  std::string buffer_;
  std::deque<std::unique_ptr<SpdyFrame>> frames_;
};

// Header blocks of one direction share one zlib stream for the whole
// connection, so each side keeps one codec per direction.
class SpdyHeaderCompressor {
 public:
  SpdyHeaderCompressor();
  ~SpdyHeaderCompressor();
  std::string Compress(const SpdyHeaders& headers);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

class SpdyHeaderDecompressor {
 public:
  SpdyHeaderDecompressor();
  ~SpdyHeaderDecompressor();
  absl::StatusOr<SpdyHeaders> Decompress(std::string_view block);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string EncodeSpdyData(uint32_t stream_id, std::string_view data, bool fin);
std::string EncodeSpdyControl(SpdyType type, uint8_t flags, std::string_view payload);
std::string EncodeSpdySynStream(uint32_t stream_id, const std::string& compressed_headers, bool fin);
std::string EncodeSpdySynReply(uint32_t stream_id, const std::string& compressed_headers, bool fin);
std::string EncodeSpdyRstStream(uint32_t stream_id, uint32_t status);
std::string EncodeSpdyGoAway(uint32_t last_stream_id, uint32_t status);

}  // namespace kelpie::kubelet
