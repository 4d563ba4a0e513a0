#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace kelpie {
namespace {

class YamlConfig final : public CLI::Config {
 public:
  explicit YamlConfig(CLI::App* app) : app_(app) {}

  std::string to_config(const CLI::App* app, bool default_also, bool /*write_description*/,
                        std::string /*prefix*/) const override {
    YAML::Emitter out;
    out << YAML::BeginMap;
    for (const CLI::Option* opt : app->get_options()) {
      if (opt->get_lnames().empty() || !opt->get_configurable()) continue;
      std::string name = opt->get_lnames().front();
      if (name == "help" || name == "config") continue;
      std::vector<std::string> values = opt->reduced_results();
      if (values.empty() && default_also && !opt->get_default_str().empty()) {
        values.push_back(opt->get_default_str());
      }
      if (values.empty()) continue;
      out << YAML::Key << name << YAML::Value;
      if (values.size() == 1) {
        out << values.front();
      } else {
        out << YAML::Flow << values;
      }
    }
    out << YAML::EndMap;
    return std::string(out.c_str()) + "\n";
  }

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::string file = "config";
    if (const CLI::Option* opt = app_->get_config_ptr(); opt && opt->count() > 0) {
      file = opt->as<std::string>();
    }
    YAML::Node root;
    try {
      root = YAML::Load(input);
    } catch (const YAML::Exception& e) {
      throw CLI::ConfigError(absl::StrCat(file, ":", e.mark.line + 1, ":", e.mark.column + 1,
                                          ": invalid YAML: ", e.msg));
    }
    std::vector<CLI::ConfigItem> items;
    if (!root || root.IsNull()) return items;
    if (!root.IsMap()) {
      throw CLI::ConfigError(absl::StrCat(file, ":", root.Mark().line + 1, ":",
                                          root.Mark().column + 1,
                                          ": expected a mapping of setting names to values"));
    }
    for (const auto& entry : root) {
      const YAML::Node& key = entry.first;
      const YAML::Node& value = entry.second;
      std::string where = absl::StrCat(file, ":", key.Mark().line + 1, ":", key.Mark().column + 1);
      if (!key.IsScalar()) {
        throw CLI::ConfigError(absl::StrCat(where, ": expected a setting name"));
      }
      std::string name = key.Scalar();
      const CLI::Option* opt = app_->get_option_no_throw("--" + name);
      if (opt == nullptr || name == "config" || name == "help") {
        throw CLI::ConfigError(absl::StrCat(where, ": unknown setting \"", name,
                                            "\" (the settings are the long flags of `",
                                            app_->get_name(), " --help`)"));
      }
      CLI::ConfigItem item;
      item.name = name;
      if (value.IsScalar()) {
        item.inputs.push_back(value.Scalar());
      } else if (value.IsSequence()) {
        for (const auto& element : value) {
          if (!element.IsScalar()) {
            throw CLI::ConfigError(absl::StrCat(file, ":", element.Mark().line + 1, ":",
                                                element.Mark().column + 1, ": setting \"", name,
                                                "\" expects a list of plain values"));
          }
          item.inputs.push_back(element.Scalar());
        }
      } else if (value.IsNull()) {
        throw CLI::ConfigError(absl::StrCat(where, ": setting \"", name, "\" has no value"));
      } else {
        throw CLI::ConfigError(absl::StrCat(file, ":", value.Mark().line + 1, ":",
                                            value.Mark().column + 1, ": setting \"", name,
                                            "\" expects a value or a list, not a mapping"));
      }
      items.push_back(std::move(item));
    }
    return items;
  }

 private:
  CLI::App* app_;
};

}  // namespace

void AddYamlConfigOption(CLI::App& app, const std::string& default_path) {
  app.config_formatter(std::make_shared<YamlConfig>(&app));
  app.set_config("--config", default_path,
                 "YAML file of settings: keys are this command's long flag names; "
                 "flags given on the command line override the file",
                 /*config_required=*/false);
}

}  // namespace kelpie
