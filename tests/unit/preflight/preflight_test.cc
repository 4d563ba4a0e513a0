// Capability parsing, runc version parsing and the table/JSON output of
// `kelpie check`, without running any check.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "control/preflight/preflight.h"

namespace kelpie {
namespace {

TEST(PreflightFormatTest, CapabilitiesFromProcStatus) {
  std::string status = "Name:\tkelpie\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
  EXPECT_TRUE(preflight::HasCapability(status, 39));
  EXPECT_TRUE(preflight::HasCapability(status, 12));
  std::string none = "CapEff:\t0000000000000000\n";
  EXPECT_FALSE(preflight::HasCapability(none, 21));
  std::string only_net_admin = "CapEff:\t0000000000001000\n";
  EXPECT_TRUE(preflight::HasCapability(only_net_admin, 12));
  EXPECT_FALSE(preflight::HasCapability(only_net_admin, 21));
  EXPECT_FALSE(preflight::HasCapability("garbage", 12));
}

TEST(PreflightFormatTest, TableNamesProblemsAndRemedies) {
  std::vector<preflight::CheckResult> results = {
      {"kernel", preflight::CheckStatus::kOk, "Linux 6.1", ""},
      {"runc", preflight::CheckStatus::kMissing, "runc not found in PATH", "apt-get install runc"}};
  std::string table = preflight::FormatTable(results);
  EXPECT_NE(table.find("CHECK   STATUS   DETAIL"), std::string::npos) << table;
  EXPECT_NE(table.find("runc    MISSING  runc not found in PATH"), std::string::npos) << table;
  EXPECT_NE(table.find("  - runc: apt-get install runc"), std::string::npos) << table;
  EXPECT_NE(table.find("1 required check(s) failed."), std::string::npos) << table;
  EXPECT_FALSE(preflight::AllRequiredPresent(results));
  std::string json = preflight::FormatJson(results);
  EXPECT_NE(json.find("\"ok\": false"), std::string::npos) << json;
  EXPECT_NE(json.find("\"status\": \"MISSING\""), std::string::npos) << json;
}

TEST(PreflightFormatTest, WarningsAreListedButDoNotFail) {
  std::vector<preflight::CheckResult> results = {
      {"kernel", preflight::CheckStatus::kOk, "Linux 6.1", ""},
      {"runc", preflight::CheckStatus::kWarn, "runc version 1.0.0", "install runc 1.1 or newer"}};
  EXPECT_TRUE(preflight::AllRequiredPresent(results));
  std::string table = preflight::FormatTable(results);
  EXPECT_NE(table.find("runc    WARN    runc version 1.0.0"), std::string::npos) << table;
  EXPECT_NE(table.find("  - runc: install runc 1.1 or newer"), std::string::npos) << table;
  EXPECT_NE(table.find("All required checks passed."), std::string::npos) << table;
  EXPECT_NE(preflight::FormatJson(results).find("\"status\": \"WARN\""), std::string::npos);
}

TEST(PreflightFormatTest, RuncVersions) {
  EXPECT_EQ(preflight::ParseRuncVersion("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1\nspec: 1.0.2-dev\n"),
            std::make_pair(1, 1));
  EXPECT_EQ(preflight::ParseRuncVersion("runc version 1.0.0-rc93\n"), std::make_pair(1, 0));
  EXPECT_EQ(preflight::ParseRuncVersion("runc version 1.12.3"), std::make_pair(1, 12));
  EXPECT_FALSE(preflight::ParseRuncVersion("crun version 1.8"));
  EXPECT_FALSE(preflight::ParseRuncVersion("runc version x.y"));
  EXPECT_FALSE(preflight::ParseRuncVersion(""));
}

}  // namespace
}  // namespace kelpie
