#include "orchestrator/scheduler/scheduler_config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace kelpie::scheduler {
namespace {

template <typename T>
absl::Status Read(const YAML::Node& node, const std::string& key, const std::string& source, T* out) {
  try {
    *out = node.as<T>();
  } catch (const YAML::Exception&) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", key, ": bad value \"", YAML::Dump(node), "\""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SchedulerConfig> ParseSchedulerConfig(const std::string& yaml, const std::string& source) {
  SchedulerConfig config;
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.what()));
  }
  if (root.IsNull()) return config;
  if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(source, ": expected a mapping"));
  for (const auto& entry : root) {
    std::string key = entry.first.as<std::string>();
    const YAML::Node& v = entry.second;
    absl::Status st;
    if (key == "schedulerName") {
      st = Read(v, key, source, &config.scheduler_name);
    } else if (key == "percentageOfNodesToScore") {
      st = Read(v, key, source, &config.percentage_of_nodes_to_score);
    } else if (key == "scoringStrategy") {
      std::string s;
      st = Read(v, key, source, &s);
      if (st.ok() && s == "LeastAllocated") {
        config.scoring_strategy = ScoringStrategy::kLeastAllocated;
      } else if (st.ok() && s == "MostAllocated") {
        config.scoring_strategy = ScoringStrategy::kMostAllocated;
      } else if (st.ok()) {
        st = absl::InvalidArgumentError(
            absl::StrCat(source, ": scoringStrategy: \"", s, "\" is not LeastAllocated or MostAllocated"));
      }
    } else if (key == "resourceWeights") {
      std::map<std::string, int64_t> w;
      st = Read(v, key, source, &w);
      if (st.ok()) config.resource_weights = std::move(w);
    } else if (key == "pluginWeights") {
      std::map<std::string, int64_t> w;
      st = Read(v, key, source, &w);
      for (const auto& [name, weight] : w) config.score_weights[name] = weight;
    } else if (key == "disabledPlugins") {
      std::vector<std::string> names;
      st = Read(v, key, source, &names);
      config.disabled_plugins.insert(names.begin(), names.end());
    } else if (key == "defaultSpreadConstraints") {
      st = Read(v, key, source, &config.default_spread_constraints);
    } else if (key == "preemption") {
      st = Read(v, key, source, &config.preemption);
    } else if (key == "parallelism") {
      st = Read(v, key, source, &config.parallelism);
    } else if (key == "bindWorkers") {
      st = Read(v, key, source, &config.bind_workers);
    } else {
      st = absl::InvalidArgumentError(absl::StrCat(source, ": unknown key \"", key, "\""));
    }
    if (!st.ok()) return st;
  }
  if (absl::Status st = config.Validate(); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", st.message()));
  }
  return config;
}

absl::StatusOr<SchedulerConfig> LoadSchedulerConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("scheduler config ", path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseSchedulerConfig(ss.str(), path);
}

}  // namespace kelpie::scheduler
