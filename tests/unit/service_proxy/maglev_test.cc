// Maglev tables: same input, same table on every node; every backend gets
// about 1/N of the entries; removing one backend moves little else.
#include "control/service_proxy/maglev.h"

#include <gtest/gtest.h>

#include <map>

namespace kelpie::service_proxy {
namespace {

std::vector<std::string> Names(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("10.42.0." + std::to_string(i + 2) + ":8080/tcp");
  return out;
}

TEST(MaglevTest, RejectsNonPrimeSize) {
  EXPECT_FALSE(MaglevTable(Names(3), 1000).ok());
  EXPECT_TRUE(MaglevTable(Names(3), 1021).ok());
  EXPECT_TRUE(IsPrime(16381));
  EXPECT_FALSE(IsPrime(16383));
}

TEST(MaglevTest, FillsEveryEntryEvenlyAndIndependentlyOfOrder) {
  auto names = Names(5);
  auto t = MaglevTable(names, 1021);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->size(), 1021u);
  std::map<uint32_t, int> per;
  for (uint32_t i : *t) per[i]++;
  ASSERT_EQ(per.size(), 5u);
  for (const auto& [i, n] : per) {
    EXPECT_GE(n, 1021 / 5 - 1);
    EXPECT_LE(n, 1021 / 5 + 1);
  }
  std::vector<std::string> reversed(names.rbegin(), names.rend());
  auto r = MaglevTable(reversed, 1021);
  ASSERT_TRUE(r.ok());
  for (size_t e = 0; e < t->size(); ++e) EXPECT_EQ(names[(*t)[e]], reversed[(*r)[e]]) << e;
}

TEST(MaglevTest, RemovingOneBackendKeepsMostEntries) {
  auto names = Names(10);
  auto before = MaglevTable(names, 4093);
  auto fewer = names;
  fewer.erase(fewer.begin() + 3);
  auto after = MaglevTable(fewer, 4093);
  ASSERT_TRUE(before.ok() && after.ok());
  int moved = 0;
  for (size_t e = 0; e < before->size(); ++e) {
    const std::string& b = names[(*before)[e]];
    if (b == names[3]) continue;  // had to move
    if (b != fewer[(*after)[e]]) ++moved;
  }
  // The removed backend's 1/10 must move; others move only a little.
  EXPECT_LT(moved, 4093 / 10) << moved;
}

TEST(MaglevTest, EmptyBackendsGiveEmptyTable) {
  auto t = MaglevTable({}, 251);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->empty());
}

}  // namespace
}  // namespace kelpie::service_proxy
