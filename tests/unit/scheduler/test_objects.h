// Pods and Nodes for scheduler unit tests, built as the API would serve them
// and decoded the way the scheduler decodes them.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "orchestrator/scheduler/pod_info.h"
#include "orchestrator/scheduler/scheduler_cache.h"

namespace kelpie::scheduler::testing {

inline nlohmann::json PodJson(const std::string& name, const std::string& cpu = "", const std::string& memory = "") {
  nlohmann::json requests = nlohmann::json::object();
  if (!cpu.empty()) requests["cpu"] = cpu;
  if (!memory.empty()) requests["memory"] = memory;
  return {{"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name}}},
          {"spec", {{"containers", {{{"name", "c"}, {"image", "busybox"}, {"resources", {{"requests", requests}}}}}}}}};
}

inline PodInfo PodFrom(const nlohmann::json& j) {
  auto p = DecodePod(j);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : PodInfo{};
}

inline PodInfo Pod(const std::string& name, const std::string& cpu = "", const std::string& memory = "") {
  return PodFrom(PodJson(name, cpu, memory));
}

inline PodInfo BoundPod(PodInfo p, const std::string& node) {
  p.node_name = node;
  return p;
}

inline nlohmann::json NodeJson(const std::string& name, const std::string& cpu = "4", const std::string& memory = "8Gi",
                               const std::string& pods = "110") {
  return {{"metadata", {{"name", name}, {"labels", {{"kubernetes.io/hostname", name}}}}},
          {"spec", nlohmann::json::object()},
          {"status", {{"allocatable", {{"cpu", cpu}, {"memory", memory}, {"pods", pods}}}}}};
}

inline NodeInfo NodeFrom(const nlohmann::json& j) {
  auto n = DecodeNode(j);
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? *n : NodeInfo{};
}

inline NodeInfo Node(const std::string& name, const std::string& cpu = "4", const std::string& memory = "8Gi",
                     const std::string& pods = "110") {
  return NodeFrom(NodeJson(name, cpu, memory, pods));
}

}  // namespace kelpie::scheduler::testing
