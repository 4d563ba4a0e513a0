// SPDY/3.1 framing and header blocks as port-forward uses them.
#include "orchestrator/kubelet/server/spdy.h"

#include <gtest/gtest.h>
#include <zlib.h>

namespace kelpie::kubelet {
namespace {

TEST(SpdyTest, DictionaryIsTheSpdy3One) {
  const std::string& d = SpdyDictionary();
  EXPECT_EQ(d.size(), 1423u);
  EXPECT_EQ(d.substr(0, 11), std::string("\0\0\0\x07options", 11));
  EXPECT_EQ(d.substr(d.size() - 6), "enq=0.");
}

TEST(SpdyTest, HeaderBlocksRoundTripAcrossOneStreamPerDirection) {
  SpdyHeaderCompressor client;
  SpdyHeaderDecompressor server;
  SpdyHeaders h1 = {{"streamtype", "error"}, {"port", "8080"}, {"requestid", "0"}};
  SpdyHeaders h2 = {{"streamtype", "data"}, {"port", "8080"}, {"requestid", "0"}};
  // The second block depends on the first (shared zlib window).
  std::string b1 = client.Compress(h1);
  std::string b2 = client.Compress(h2);
  auto d1 = server.Decompress(b1);
  ASSERT_TRUE(d1.ok()) << d1.status();
  EXPECT_EQ(*d1, h1);
  auto d2 = server.Decompress(b2);
  ASSERT_TRUE(d2.ok()) << d2.status();
  EXPECT_EQ(*d2, h2);
  // The stream names the dictionary (FDICT) with its Adler-32.
  ASSERT_GE(b1.size(), 6u);
  EXPECT_TRUE(static_cast<uint8_t>(b1[1]) & 0x20);
  const std::string& d = SpdyDictionary();
  uLong adler = adler32(0L, Z_NULL, 0);
  adler = adler32(adler, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size()));
  uint32_t dictid = (uint32_t{static_cast<uint8_t>(b1[2])} << 24) | (uint32_t{static_cast<uint8_t>(b1[3])} << 16) |
                    (uint32_t{static_cast<uint8_t>(b1[4])} << 8) | uint32_t{static_cast<uint8_t>(b1[5])};
  EXPECT_EQ(dictid, static_cast<uint32_t>(adler));
}

TEST(SpdyTest, GarbageHeaderBlockIsAnError) {
  SpdyHeaderDecompressor server;
  EXPECT_FALSE(server.Decompress("not zlib at all").ok());
}

TEST(SpdyTest, FramesRoundTripThroughTheDecoderInPieces) {
  SpdyHeaderCompressor c;
  std::string wire = EncodeSpdySynStream(1, c.Compress({{"port", "80"}}), false) +
                     EncodeSpdyData(1, "payload", false) + EncodeSpdyData(3, "", true) +
                     EncodeSpdyControl(SpdyType::kPing, 0, std::string("\0\0\0\x05", 4)) +
                     EncodeSpdyRstStream(5, 5) + EncodeSpdyGoAway(7, 0);
  SpdyFrameDecoder dec;
  std::vector<std::unique_ptr<SpdyFrame>> frames;
  for (size_t i = 0; i < wire.size(); i += 3) {
    ASSERT_TRUE(dec.Feed(std::string_view(wire).substr(i, 3)).ok());
    while (auto f = dec.Next()) frames.push_back(std::move(f));
  }
  ASSERT_EQ(frames.size(), 6u);
  EXPECT_TRUE(frames[0]->control);
  EXPECT_EQ(frames[0]->type, SpdyType::kSynStream);
  EXPECT_EQ(frames[0]->stream_id, 1u);
  EXPECT_FALSE(frames[1]->control);
  EXPECT_EQ(frames[1]->payload, "payload");
  EXPECT_EQ(frames[2]->stream_id, 3u);
  EXPECT_EQ(frames[2]->flags & kSpdyFlagFin, kSpdyFlagFin);
  EXPECT_EQ(frames[3]->type, SpdyType::kPing);
  EXPECT_EQ(frames[4]->type, SpdyType::kRstStream);
  EXPECT_EQ(frames[4]->stream_id, 5u);
  EXPECT_EQ(frames[5]->type, SpdyType::kGoAway);
  // Another version is refused.
  std::string v2 = EncodeSpdyControl(SpdyType::kPing, 0, "abcd");
  v2[1] = 2;
  SpdyFrameDecoder d2;
  EXPECT_FALSE(d2.Feed(v2).ok());
}

}  // namespace
}  // namespace kelpie::kubelet
