#include "orchestrator/runtime/oci/oci_spec.h"

#include <gtest/gtest.h>

#include "orchestrator/runtime/cgroup/pod_cgroups.h"
#include "orchestrator/runtime/runc/cri_log_writer.h"

namespace kelpie::runtime {
namespace {

TEST(ResolveCommandTest, FollowsKubernetesRules) {
  image::ImageConfig image;
  image.entrypoint = {"/entry"};
  image.cmd = {"default"};
  ContainerConfig c;
  EXPECT_EQ(ResolveCommand(image, c), (std::vector<std::string>{"/entry", "default"}));
  c.args = {"a"};
  EXPECT_EQ(ResolveCommand(image, c), (std::vector<std::string>{"/entry", "a"}));
  c.command = {"/bin/x"};
  EXPECT_EQ(ResolveCommand(image, c), (std::vector<std::string>{"/bin/x", "a"}));
}

TEST(ResolveUserTest, NamesGroupsAndNonRoot) {
  const std::string passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
  const std::string group = "root:x:0:\napp:x:1000:\nextra:x:50:app\n";
  SecurityContext sec;
  auto u = ResolveUser("app", sec, passwd, group);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->uid, 1000u);
  EXPECT_EQ(u->gid, 1000u);
  EXPECT_EQ(u->additional_gids, (std::vector<uint32_t>{50}));
  sec.run_as_non_root = true;
  EXPECT_FALSE(ResolveUser("", sec, passwd, group).ok());
  EXPECT_FALSE(ResolveUser("nobody", SecurityContext{}, passwd, group).ok());
}

TEST(ResolveCapabilitiesTest, AddDropAll) {
  SecurityContext sec;
  sec.capabilities_drop = {"ALL"};
  sec.capabilities_add = {"NET_ADMIN"};
  auto caps = ResolveCapabilities(sec);
  ASSERT_TRUE(caps.ok());
  EXPECT_EQ(*caps, (std::vector<std::string>{"CAP_NET_ADMIN"}));
  sec.capabilities_add = {"NOT_A_CAP"};
  EXPECT_FALSE(ResolveCapabilities(sec).ok());
}

TEST(CriLogWriterTest, ParsesItsFormat) {
  CriLogWriter::Line line;
  ASSERT_TRUE(CriLogWriter::ParseLine("2024-01-02T03:04:05.000000001Z stderr P part\n", &line));
  EXPECT_EQ(line.stream, "stderr");
  EXPECT_TRUE(line.partial);
  EXPECT_EQ(line.content, "part");
  EXPECT_FALSE(CriLogWriter::ParseLine("garbage", &line));
  EXPECT_EQ(CriLogWriter::FormatTimestamp(1000000001LL), "1970-01-01T00:00:01.000000001Z");
}

TEST(CgroupHierarchyTest, HybridAndPureV2) {
  const std::string hybrid =
      "30 25 0:26 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
      "31 25 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n";
  auto h = CgroupHierarchyFromMountinfo(hybrid);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->v2_root, "/sys/fs/cgroup/unified");
  EXPECT_EQ(h->v1_memory_mount, "/sys/fs/cgroup/memory");
  auto v2 = CgroupHierarchyFromMountinfo("30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->v2_root, "/sys/fs/cgroup");
  EXPECT_TRUE(v2->v1_mounts.empty());
  EXPECT_FALSE(CgroupHierarchyFromMountinfo("").ok());
}

}  // namespace
}  // namespace kelpie::runtime
