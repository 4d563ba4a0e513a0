#include "common/config.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <fstream>

#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

struct Settings {
  std::string data_dir = "/var/lib/kelpie";
  int port = 6443;
  std::vector<std::string> sans;
};

void AddFlags(CLI::App& app, Settings& s) {
  AddYamlConfigOption(app);
  app.add_option("--data-dir", s.data_dir, "data");
  app.add_option("--port", s.port, "port");
  app.add_option("--tls-san", s.sans, "sans");
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(YamlConfigTest, FileSetsValuesAndFlagsOverride) {
  testing::TempDir dir;
  std::string cfg = dir.File("c.yaml");
  WriteFile(cfg, "data-dir: /srv/kelpie\nport: 7443\ntls-san: [a.example, 192.0.2.1]\n");
  CLI::App app{"t", "server"};
  Settings s;
  AddFlags(app, s);
  std::vector<std::string> args = {"server", "--config", cfg, "--port", "8443"};
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  EXPECT_EQ(s.data_dir, "/srv/kelpie");
  EXPECT_EQ(s.port, 8443);  // the flag wins over the file
  EXPECT_EQ(s.sans, (std::vector<std::string>{"a.example", "192.0.2.1"}));
}

std::string ParseError(const std::string& yaml) {
  testing::TempDir dir;
  std::string cfg = dir.File("bad.yaml");
  WriteFile(cfg, yaml);
  CLI::App app{"t", "server"};
  Settings s;
  AddFlags(app, s);
  std::vector<std::string> args = {"server", "--config", cfg};
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    // Strip the temp dir so expectations read plainly.
    auto pos = msg.find(cfg);
    if (pos != std::string::npos) msg.replace(pos, cfg.size(), "bad.yaml");
    return msg;
  }
  return "";
}

TEST(YamlConfigTest, UnknownKeyNamesFileLineAndColumn) {
  EXPECT_EQ(ParseError("port: 1\n  \nbogus-flag: 3\n"),
            "bad.yaml:3:1: unknown setting \"bogus-flag\" (the settings are the long flags of "
            "`server --help`)");
}

TEST(YamlConfigTest, MalformedYamlNamesPosition) {
  std::string msg = ParseError("port: [1, 2\n");
  EXPECT_NE(msg.find("bad.yaml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid YAML"), std::string::npos) << msg;
}

TEST(YamlConfigTest, NestedMappingIsRejected) {
  EXPECT_EQ(ParseError("port:\n  a: 1\n"),
            "bad.yaml:2:3: setting \"port\" expects a value or a list, not a mapping");
}

TEST(YamlConfigTest, TopLevelMustBeMapping) {
  EXPECT_EQ(ParseError("- a\n- b\n"), "bad.yaml:1:1: expected a mapping of setting names to values");
}

TEST(YamlConfigTest, WrongTypeIsReported) {
  std::string msg = ParseError("port: not-a-number\n");
  EXPECT_NE(msg.find("port"), std::string::npos) << msg;
}

}  // namespace
}  // namespace kelpie
