// Node facts from a fake /proc, /sys and /etc, and the Node object the
// kubelet reports from them.
#include "orchestrator/kubelet/node_facts.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "tests/testing/test_env.h"

namespace kelpie::kubelet {
namespace {

class NodeFactsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.File("root");
    Write("/proc/meminfo", "MemTotal:       24576000 kB\nMemFree:        1000 kB\n");
    Write("/sys/devices/system/cpu/online", "0-3,6\n");
    Write("/etc/os-release", "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n");
    Write("/etc/machine-id", "0123456789abcdef\n");
    Write("/proc/sys/kernel/random/boot_id", "boot-1\n");
    Write("/proc/net/route", "Iface\tDestination\tGateway\n");
  }
  void Write(const std::string& path, const std::string& content) {
    std::string full = root_ + path;
    ASSERT_TRUE(MakeDirectories(full.substr(0, full.rfind('/')), 0755).ok());
    ASSERT_TRUE(WriteFileAtomically(full, content, 0644).ok());
  }
  testing::TempDir dir_;
  std::string root_;
};

TEST_F(NodeFactsTest, ReadsCapacityAndSystemInfo) {
  NodeFactsOptions options;
  options.root = root_;
  options.storage_path = dir_.path();
  options.node_ip = "192.0.2.10";
  options.hostname = "Worker-1";
  options.runc_version = "1.1.5";
  auto facts = GatherNodeFacts(options);
  ASSERT_TRUE(facts.ok()) << facts.status();
  EXPECT_EQ(facts->cpu_millicores, 5000);  // 0-3 and 6
  EXPECT_EQ(facts->memory_bytes, 24576000LL * 1024);
  EXPECT_GT(facts->ephemeral_storage_bytes, 0);
  EXPECT_EQ(facts->hostname, "worker-1");
  EXPECT_EQ(facts->os_image, "Debian GNU/Linux 12 (bookworm)");
  EXPECT_EQ(facts->machine_id, "0123456789abcdef");
  EXPECT_EQ(facts->boot_id, "boot-1");
  EXPECT_EQ(facts->internal_ip, "192.0.2.10");
  EXPECT_EQ(facts->container_runtime_version, "runc://1.1.5");
  EXPECT_FALSE(facts->kernel_version.empty());
}

TEST_F(NodeFactsTest, MissingMeminfoIsAClearError) {
  NodeFactsOptions options;
  options.root = dir_.File("empty");
  auto facts = GatherNodeFacts(options);
  ASSERT_FALSE(facts.ok());
  EXPECT_NE(facts.status().message().find("meminfo"), std::string::npos);
}

TEST(NodeObjectTest, CapacityAllocatableLabelsAndCidr) {
  NodeFacts facts;
  facts.hostname = "worker-1";
  facts.cpu_millicores = 2000;
  facts.memory_bytes = 8LL << 30;
  facts.ephemeral_storage_bytes = 100LL << 30;
  facts.internal_ip = "192.0.2.10";
  facts.architecture = "amd64";
  NodeSettings settings;
  settings.name = "worker-1";
  settings.pod_cidr = "10.42.1.0/24";
  settings.labels["topology.kubernetes.io/zone"] = "a";
  settings.kubelet_version = "v1.32.0-kelpie";
  nlohmann::json node = NodeObject(facts, settings);
  EXPECT_EQ(node["metadata"]["labels"]["kubernetes.io/hostname"], "worker-1");
  EXPECT_EQ(node["metadata"]["labels"]["kubernetes.io/os"], "linux");
  EXPECT_EQ(node["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
  EXPECT_EQ(node["metadata"]["labels"]["topology.kubernetes.io/zone"], "a");
  EXPECT_EQ(node["spec"]["podCIDR"], "10.42.1.0/24");
  EXPECT_EQ(node["status"]["capacity"]["cpu"], "2");
  EXPECT_EQ(node["status"]["allocatable"]["cpu"], "1900m");
  EXPECT_EQ(node["status"]["capacity"]["memory"], "8388608Ki");
  EXPECT_EQ(node["status"]["allocatable"]["memory"], KibiQuantity((8LL << 30) - (356LL << 20)));
  EXPECT_EQ(node["status"]["capacity"]["pods"], "110");
  EXPECT_EQ(node["status"]["addresses"][0]["type"], "InternalIP");
  EXPECT_EQ(node["status"]["addresses"][0]["address"], "192.0.2.10");
  EXPECT_EQ(node["status"]["nodeInfo"]["kubeletVersion"], "v1.32.0-kelpie");
}

}  // namespace
}  // namespace kelpie::kubelet
