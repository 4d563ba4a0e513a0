// RFC 6455 framing: encodings, the accept key, masking, fragmentation,
// frames split across reads, and a message connection answering pings.
#include "orchestrator/kubelet/server/websocket.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>

namespace kelpie::kubelet {
namespace {

TEST(WebSocketTest, AcceptKeyMatchesTheRfcExample) {
  // RFC 6455 section 1.3.
  EXPECT_EQ(WebSocketAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketTest, EncodesTheThreeLengthForms) {
  std::string small = EncodeWsFrame(WsOpcode::kBinary, "abc");
  EXPECT_EQ(small, std::string("\x82\x03" "abc", 5));
  std::string medium = EncodeWsFrame(WsOpcode::kBinary, std::string(300, 'x'));
  ASSERT_EQ(medium.size(), 4u + 300u);
  EXPECT_EQ(static_cast<uint8_t>(medium[1]), 126);
  EXPECT_EQ((static_cast<uint8_t>(medium[2]) << 8) | static_cast<uint8_t>(medium[3]), 300);
  std::string large = EncodeWsFrame(WsOpcode::kText, std::string(70000, 'y'), false);
  ASSERT_EQ(large.size(), 10u + 70000u);
  EXPECT_EQ(static_cast<uint8_t>(large[0]), 0x01);  // no FIN, text
  EXPECT_EQ(static_cast<uint8_t>(large[1]), 127);
  EXPECT_EQ(static_cast<uint8_t>(large[7]), 0x01);
  EXPECT_EQ(static_cast<uint8_t>(large[8]), 0x11);
  EXPECT_EQ(static_cast<uint8_t>(large[9]), 0x70);
}

TEST(WebSocketTest, DecodesMaskedFramesSplitAtEveryByte) {
  std::string payload = "\x01hello from stdin";
  std::string wire = EncodeWsFrame(WsOpcode::kBinary, payload, true, 0x11223344u) +
                     EncodeWsFrame(WsOpcode::kBinary, std::string(1000, 'z'), true, 0xdeadbeefu);
  WsFrameDecoder decoder;
  std::vector<WsFrame> frames;
  for (char c : wire) {
    ASSERT_TRUE(decoder.Feed(std::string_view(&c, 1)).ok());
    while (auto f = decoder.Next()) frames.push_back(*f);
  }
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].payload, payload);
  EXPECT_EQ(frames[0].opcode, WsOpcode::kBinary);
  EXPECT_TRUE(frames[0].fin);
  EXPECT_EQ(frames[1].payload, std::string(1000, 'z'));
}

TEST(WebSocketTest, ServerRejectsUnmaskedClientFramesAndBadControlFrames) {
  WsFrameDecoder server;
  EXPECT_FALSE(server.Feed(EncodeWsFrame(WsOpcode::kBinary, "x")).ok());
  WsFrameDecoder again;
  // A ping split in fragments is a protocol error.
  EXPECT_FALSE(again.Feed(EncodeWsFrame(WsOpcode::kPing, "p", false, 1u)).ok());
  WsFrameDecoder reserved;
  std::string f = EncodeWsFrame(WsOpcode::kBinary, "x", true, 1u);
  f[0] = static_cast<char>(f[0] | 0x40);
  EXPECT_FALSE(reserved.Feed(f).ok());
  WsFrameDecoder limited(true, 10);
  EXPECT_FALSE(limited.Feed(EncodeWsFrame(WsOpcode::kBinary, std::string(11, 'a'), true, 1u)).ok());
}

// An in-memory upgraded connection: reads come from a script, writes are kept.
class ScriptedConnection : public http::UpgradedConnection {
 public:
  explicit ScriptedConnection(std::deque<std::string> reads) : reads_(std::move(reads)) {}
  size_t Read(char* data, size_t size) override {
    if (reads_.empty()) return 0;
    std::string& front = reads_.front();
    size_t n = std::min(size, front.size());
    std::memcpy(data, front.data(), n);
    front.erase(0, n);
    if (front.empty()) reads_.pop_front();
    return n;
  }
  bool Write(std::string_view data) override {
    written += data;
    return !closed;
  }
  void Close() override { closed = true; }
  std::string written;
  bool closed = false;

 private:
  std::deque<std::string> reads_;
};

TEST(WebSocketTest, ConnectionJoinsFragmentsAnswersPingsAndEchoesClose) {
  std::string wire = EncodeWsFrame(WsOpcode::kBinary, std::string("\x00par", 4), false, 7u) +
                     EncodeWsFrame(WsOpcode::kPing, "hb", true, 8u) +
                     EncodeWsFrame(WsOpcode::kContinuation, "tial", true, 9u) +
                     EncodeWsFrame(WsOpcode::kClose, std::string("\x03\xe8", 2), true, 10u);
  ScriptedConnection conn({wire.substr(0, 5), wire.substr(5)});
  WebSocketConnection ws(conn);
  auto m = ws.ReadMessage();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, std::string("\x00partial", 8));
  // The ping was answered with a pong carrying its payload.
  EXPECT_EQ(conn.written, EncodeWsFrame(WsOpcode::kPong, "hb"));
  EXPECT_FALSE(ws.ReadMessage().has_value());
  // The close was echoed (code 1000) and the connection closed.
  EXPECT_EQ(conn.written.substr(EncodeWsFrame(WsOpcode::kPong, "hb").size()),
            EncodeWsFrame(WsOpcode::kClose, std::string("\x03\xe8", 2)));
  EXPECT_TRUE(conn.closed);
  EXPECT_FALSE(ws.WriteMessage("late"));
}

}  // namespace
}  // namespace kelpie::kubelet
