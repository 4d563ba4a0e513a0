#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace kelpie {
namespace {

struct ConfigEntry {
  std::string name;
  std::vector<std::string> values;
  std::string position;  // file:line:column of the key
};

std::string Where(const std::string& file, const YAML::Mark& mark) {
  return absl::StrCat(file, ":", mark.line + 1, ":", mark.column + 1);
}

std::vector<ConfigEntry> ParseYamlConfig(const CLI::App& app, const std::string& file) {
  std::ifstream input(file);
  if (!input.good()) throw CLI::ConfigError(absl::StrCat(file, ": cannot read the config file"));
  YAML::Node root;
  try {
    root = YAML::Load(input);
  } catch (const YAML::Exception& e) {
    throw CLI::ConfigError(absl::StrCat(Where(file, e.mark), ": invalid YAML: ", e.msg));
  }
  std::vector<ConfigEntry> entries;
  if (!root || root.IsNull()) return entries;
  if (!root.IsMap()) {
    throw CLI::ConfigError(
        absl::StrCat(Where(file, root.Mark()), ": expected a mapping of setting names to values"));
  }
  for (const auto& kv : root) {
    const YAML::Node& key = kv.first;
    const YAML::Node& value = kv.second;
    std::string where = Where(file, key.Mark());
    if (!key.IsScalar()) throw CLI::ConfigError(absl::StrCat(where, ": expected a setting name"));
    ConfigEntry entry{key.Scalar(), {}, where};
    const CLI::Option* opt = app.get_option_no_throw("--" + entry.name);
    if (opt == nullptr || entry.name == "config" || entry.name == "help") {
      throw CLI::ConfigError(absl::StrCat(where, ": unknown setting \"", entry.name,
                                          "\" (the settings are the long flags of `",
                                          app.get_name(), " --help`)"));
    }
    if (value.IsScalar()) {
      entry.values.push_back(value.Scalar());
    } else if (value.IsSequence()) {
      for (const auto& element : value) {
        if (!element.IsScalar()) {
          throw CLI::ConfigError(absl::StrCat(Where(file, element.Mark()), ": setting \"",
                                              entry.name, "\" expects a list of plain values"));
        }
        entry.values.push_back(element.Scalar());
      }
    } else if (value.IsNull()) {
      throw CLI::ConfigError(absl::StrCat(where, ": setting \"", entry.name, "\" has no value"));
    } else {
      throw CLI::ConfigError(absl::StrCat(Where(file, value.Mark()), ": setting \"", entry.name,
                                          "\" expects a value or a list, not a mapping"));
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

// Gives every option not set on the command line its value from the file,
// through CLI11's own conversion and validation.
void ApplyYamlConfig(CLI::App& app, const std::string& file) {
  for (const ConfigEntry& entry : ParseYamlConfig(app, file)) {
    CLI::Option* opt = app.get_option("--" + entry.name);
    if (opt->count() > 0) continue;  // the command line wins
    try {
      for (const auto& v : entry.values) opt->add_result(v);
      opt->run_callback();
    } catch (const CLI::ParseError& e) {
      throw CLI::ConfigError(absl::StrCat(entry.position, ": setting \"", entry.name, "\": ", e.what()));
    }
  }
}

}  // namespace

void AddYamlConfigOption(CLI::App& app, const std::string& default_path) {
  auto path = std::make_shared<std::string>(default_path);
  app.add_option("--config", *path,
                 "YAML file of settings: keys are this command's long flag names; "
                 "flags given on the command line override the file");
  // Applied once parsing is complete, so that command-line values are known
  // and win. (CLI11 only reads config files for the root command.)
  app.callback([&app, path] {
    if (!path->empty()) ApplyYamlConfig(app, *path);
  });
}

}  // namespace kelpie
