// DNS wire format: round trips, compression, and hostile inputs (bounds,
// compression loops, oversize names) that must fail cleanly.
#include "control/dns/dns_message.h"

#include <gtest/gtest.h>

#include <random>

namespace kelpie::dns {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes Header(uint16_t qd, uint16_t an = 0, uint16_t ns = 0, uint16_t ar = 0, uint16_t flags = 0x0100) {
  return {0x12, 0x34, static_cast<uint8_t>(flags >> 8), static_cast<uint8_t>(flags), 0, static_cast<uint8_t>(qd),
          0, static_cast<uint8_t>(an), 0, static_cast<uint8_t>(ns), 0, static_cast<uint8_t>(ar)};
}

Bytes Concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(DnsMessageTest, RoundTripsQueryWithCompression) {
  Message m;
  m.header.id = 0xBEEF;
  m.header.rd = true;
  m.questions.push_back({"web.shop.svc.cluster.local", rr::kSrv, kClassIn});
  m.answers.push_back({"web.shop.svc.cluster.local", rr::kSrv, kClassIn, 5, *RdataSrv(0, 100, 80, "web.shop.svc.cluster.local")});
  m.answers.push_back({"web.shop.svc.cluster.local", rr::kA, kClassIn, 5, RdataA("10.43.0.20")});
  m.authorities.push_back({"cluster.local", rr::kSoa, kClassIn, 5,
                           *RdataSoa("ns.dns.cluster.local", "hostmaster.cluster.local", 1, 2, 3, 4, 5)});
  m.additionals.push_back({"", rr::kOpt, 1232, 0, {}});
  auto bytes = EncodeMessage(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  // Owner names after the question are 2-byte pointers.
  auto uncompressed = EncodeName("web.shop.svc.cluster.local");
  ASSERT_TRUE(uncompressed.ok());
  EXPECT_LT(bytes->size(), 12 + 4 * uncompressed->size() + 100);

  auto parsed = ParseMessage(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->header.id, 0xBEEF);
  EXPECT_TRUE(parsed->header.rd);
  ASSERT_EQ(parsed->questions.size(), 1u);
  EXPECT_EQ(parsed->questions[0].name, "web.shop.svc.cluster.local");
  EXPECT_EQ(parsed->questions[0].type, rr::kSrv);
  ASSERT_EQ(parsed->answers.size(), 2u);
  auto srv = SrvFromRdata(parsed->answers[0]);
  ASSERT_TRUE(srv.has_value());
  EXPECT_EQ(srv->port, 80);
  EXPECT_EQ(srv->weight, 100);
  EXPECT_EQ(srv->target, "web.shop.svc.cluster.local");
  EXPECT_EQ(AddressFromRdata(parsed->answers[1]), "10.43.0.20");
  ASSERT_EQ(parsed->authorities.size(), 1u);
  EXPECT_EQ(parsed->authorities[0].type, rr::kSoa);
  ASSERT_NE(parsed->Opt(), nullptr);
  EXPECT_EQ(parsed->Opt()->klass, 1232);
  EXPECT_EQ(ClientUdpLimit(*parsed), 1232u);
}

TEST(DnsMessageTest, ExpandsCompressedNamesInsideRdata) {
  // Question "a.example", answer PTR whose target is "b" + pointer to "example".
  Bytes m = Concat(Header(1, 1, 0, 0, 0x8180), {1, 'a', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 12, 0, 1});
  m = Concat(m, {0xC0, 12, 0, 12, 0, 1, 0, 0, 0, 60, 0, 4, 1, 'b', 0xC0, 14});
  auto parsed = ParseMessage(m);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->answers.size(), 1u);
  EXPECT_EQ(parsed->answers[0].name, "a.example");
  EXPECT_EQ(NameFromRdata(parsed->answers[0]), "b.example");
  // Re-encoding yields a message that parses to the same records.
  auto again = EncodeMessage(*parsed);
  ASSERT_TRUE(again.ok());
  auto reparsed = ParseMessage(*again);
  ASSERT_TRUE(reparsed.ok()) << reparsed.status();
  EXPECT_EQ(NameFromRdata(reparsed->answers[0]), "b.example");
}

TEST(DnsMessageTest, EscapesDotsInsideLabels) {
  Bytes m = Concat(Header(1), {3, 'a', '.', 'b', 1, 'c', 0, 0, 1, 0, 1});
  auto parsed = ParseMessage(m);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->questions[0].name, "a\\.b.c");
  auto wire = EncodeName(parsed->questions[0].name);
  ASSERT_TRUE(wire.ok());
  EXPECT_EQ(*wire, (Bytes{3, 'a', '.', 'b', 1, 'c', 0}));
}

struct MalformedCase {
  const char* what;
  Bytes bytes;
};

class MalformedTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedTest, FailsCleanly) {
  const auto& c = GetParam();
  auto parsed = ParseMessage(c.bytes);
  EXPECT_FALSE(parsed.ok()) << c.what;
}

Bytes LongName(int labels, int label_size) {
  Bytes out;
  for (int i = 0; i < labels; ++i) {
    out.push_back(static_cast<uint8_t>(label_size));
    for (int j = 0; j < label_size; ++j) out.push_back('x');
  }
  out.push_back(0);
  return out;
}

INSTANTIATE_TEST_SUITE_P(
    Inputs, MalformedTest,
    ::testing::Values(
        MalformedCase{"empty", {}},
        MalformedCase{"short header", {0x12, 0x34, 0x01}},
        MalformedCase{"question count without question", Header(1)},
        MalformedCase{"label past the end", Concat(Header(1), {5, 'a', 'b'})},
        MalformedCase{"name without terminator", Concat(Header(1), {1, 'a'})},
        MalformedCase{"question without type/class", Concat(Header(1), {1, 'a', 0, 0})},
        MalformedCase{"pointer to itself", Concat(Header(1), {0xC0, 12, 0, 1, 0, 1})},
        MalformedCase{"pointer forwards", Concat(Header(1), {0xC0, 14, 1, 'a', 0, 0, 1, 0, 1})},
        MalformedCase{"two pointers forming a loop",
                      Concat(Header(1, 1), {1, 'a', 0xC0, 17, 0, 1, 0, 1, 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0})},
        MalformedCase{"truncated pointer", Concat(Header(1), {0xC0})},
        MalformedCase{"reserved label type", Concat(Header(1), {0x40, 'a', 0, 0, 1, 0, 1})},
        MalformedCase{"name over 255 bytes", Concat(Concat(Header(1), LongName(5, 63)), {0, 1, 0, 1})},
        MalformedCase{"rdata past the end", Concat(Header(1, 1), {0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 5, 0, 9, 1})},
        MalformedCase{"record header cut", Concat(Header(0, 1), {0, 0, 1, 0})},
        MalformedCase{"trailing garbage", Concat(Header(1), {0, 0, 1, 0, 1, 0xFF})},
        MalformedCase{"A with PTR rdata name past rdata",
                      Concat(Header(0, 1), {0, 0, 12, 0, 1, 0, 0, 0, 1, 0, 2, 3, 'a'})},
        MalformedCase{"SOA rdata with wrong length", Concat(Header(0, 1), {0, 0, 6, 0, 1, 0, 0, 0, 1, 0, 3, 0, 0, 0})}));

TEST(DnsMessageTest, ReadNameStopsChainedBackwardPointersByCount) {
  // 100 pointers, each pointing to the previous one: backward-only, but the
  // chain is longer than the jump limit.
  Bytes m(12, 0);
  m.push_back(0);  // offset 12: root
  for (int i = 0; i < 100; ++i) {
    size_t target = m.size() - (i == 0 ? 1 : 2);
    m.push_back(static_cast<uint8_t>(0xC0 | (target >> 8)));
    m.push_back(static_cast<uint8_t>(target));
  }
  size_t off = m.size() - 2;
  auto name = ReadName(m.data(), m.size(), &off);
  EXPECT_FALSE(name.ok());
}

TEST(DnsMessageTest, RandomBytesNeverCrash) {
  std::mt19937 rng(42);
  Bytes seed = *EncodeMessage(Message{{1, false, 0, false, false, true}, {{"a.b.c", rr::kA, kClassIn}}, {}, {}, {}});
  for (int i = 0; i < 20000; ++i) {
    Bytes b = seed;
    int flips = 1 + rng() % 4;
    for (int f = 0; f < flips; ++f) b[rng() % b.size()] = static_cast<uint8_t>(rng());
    if (rng() % 3 == 0) b.resize(rng() % (b.size() + 1));
    (void)ParseMessage(b);  // must return, ok or not
    (void)QuestionSectionEnd(b.data(), b.size());
  }
  SUCCEED();
}

TEST(DnsMessageTest, EncoderRejectsOversizeLabelsAndNames) {
  EXPECT_FALSE(EncodeName(std::string(64, 'a') + ".b").ok());
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += std::string(60, 'a') + ".";
  EXPECT_FALSE(EncodeName(long_name).ok());
  EXPECT_FALSE(EncodeName("a..b").ok());
  EXPECT_EQ(*EncodeName(""), Bytes{0});
}

TEST(DnsMessageTest, ClientUdpLimit) {
  Message m;
  EXPECT_EQ(ClientUdpLimit(m), 512u);
  m.additionals.push_back({"", rr::kOpt, 100, 0, {}});
  EXPECT_EQ(ClientUdpLimit(m), 512u);
  m.additionals[0].klass = 4096;
  EXPECT_EQ(ClientUdpLimit(m), 1232u);
}

}  // namespace
}  // namespace kelpie::dns
