#include "orchestrator/api/quantity.h"

#include <gtest/gtest.h>

namespace kelpie::api {
namespace {

int64_t Milli(const std::string& s) {
  auto q = Quantity::Parse(s);
  EXPECT_TRUE(q.ok()) << s << ": " << q.status();
  return q.ok() ? q->MilliValue() : -1;
}

int64_t Value(const std::string& s) {
  auto q = Quantity::Parse(s);
  EXPECT_TRUE(q.ok()) << s << ": " << q.status();
  return q.ok() ? q->Value() : -1;
}

TEST(QuantityTest, CpuForms) {
  EXPECT_EQ(Milli("100m"), 100);
  EXPECT_EQ(Milli("1"), 1000);
  EXPECT_EQ(Milli("1.5"), 1500);
  EXPECT_EQ(Milli("0.1"), 100);
  EXPECT_EQ(Milli("2e3"), 2000000);
  EXPECT_EQ(Milli("1E-3"), 1);
  // Sub-milli values round up, as resource.Quantity.MilliValue does.
  EXPECT_EQ(Milli("1u"), 1);
  EXPECT_EQ(Milli("100n"), 1);
  EXPECT_EQ(Milli("0"), 0);
}

TEST(QuantityTest, MemoryForms) {
  EXPECT_EQ(Value("128974848"), 128974848);
  EXPECT_EQ(Value("129e6"), 129000000);
  EXPECT_EQ(Value("129M"), 129000000);
  EXPECT_EQ(Value("123Mi"), 128974848);
  EXPECT_EQ(Value("1Gi"), 1073741824);
  EXPECT_EQ(Value("1.5Gi"), 1610612736);
  EXPECT_EQ(Value("1Ki"), 1024);
  EXPECT_EQ(Value("1k"), 1000);
  EXPECT_EQ(Value("1Pi"), int64_t{1} << 50);
  // Kept in thousandths: 1Ei (2^60 units) is beyond int64 in millis.
  EXPECT_FALSE(Quantity::Parse("1Ei").ok());
  // Whole units round up.
  EXPECT_EQ(Value("1500m"), 2);
  EXPECT_EQ(Value("-1500m"), -1);
}

TEST(QuantityTest, RejectsMalformedAndHuge) {
  for (const char* bad : {"", "m", "1x", "1.2.3", "--1", "1 Gi", "Gi", "1e", "1KiB", "0x10"}) {
    EXPECT_FALSE(Quantity::Parse(bad).ok()) << bad;
  }
  auto huge = Quantity::Parse("10E");  // 10^19 * 1000 milli: beyond int64
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_FALSE(Quantity::Parse("1e400").ok());
}

// The forms the kubelet reads (resource fields, emptyDir sizes).
TEST(QuantityTest, KubeletForms) {
  auto m = [](const std::string& s) { return Quantity::Parse(s).value().MilliValue(); };
  EXPECT_EQ(m("100m"), 100);
  EXPECT_EQ(m("2"), 2000);
  EXPECT_EQ(m("0.5"), 500);
  EXPECT_EQ(m("64Mi"), int64_t{64} * 1024 * 1024 * 1000);
  EXPECT_EQ(m("1G"), int64_t{1000000000} * 1000);
  EXPECT_EQ(m("2e3"), 2000000);
  EXPECT_FALSE(Quantity::Parse("12x").ok());
  EXPECT_FALSE(Quantity::Parse("").ok());
}

}  // namespace
}  // namespace kelpie::api
