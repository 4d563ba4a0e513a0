#include "orchestrator/runtime/image/image_reference.h"

#include <gtest/gtest.h>

namespace kelpie::image {
namespace {

TEST(ImageReferenceTest, NormalizesLikeKubernetesUsersWriteThem) {
  const std::pair<const char*, const char*> cases[] = {
      {"busybox", "docker.io/library/busybox:latest"},
      {"busybox:1.36", "docker.io/library/busybox:1.36"},
      {"library/busybox", "docker.io/library/busybox:latest"},
      {"bitnami/redis:7", "docker.io/bitnami/redis:7"},
      {"docker.io/busybox", "docker.io/library/busybox:latest"},
      {"index.docker.io/library/nginx:1.25", "docker.io/library/nginx:1.25"},
      {"registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"},
      {"localhost:5000/app", "localhost:5000/app:latest"},
      {"localhost/app:v1", "localhost/app:v1"},
      {"127.0.0.1:5000/team/app:v1.2-rc_1", "127.0.0.1:5000/team/app:v1.2-rc_1"},
      {"ghcr.io/a/b/c", "ghcr.io/a/b/c:latest"},
  };
  for (const auto& [in, want] : cases) {
    auto got = NormalizeReference(in);
    ASSERT_TRUE(got.ok()) << in << ": " << got.status();
    EXPECT_EQ(*got, want) << in;
  }
}

TEST(ImageReferenceTest, KeepsDigests) {
  std::string digest = "sha256:" + std::string(64, 'a');
  auto got = NormalizeReference("busybox@" + digest);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "docker.io/library/busybox@" + digest);
}

TEST(ImageReferenceTest, RejectsWhatRegistriesReject) {
  for (const char* bad : {"", "BusyBox", "busybox:", "busybox:-x", "a//b", "busybox@sha256:12", "-lead",
                          "name with space"}) {
    auto got = NormalizeReference(bad);
    EXPECT_FALSE(got.ok()) << "accepted \"" << bad << "\" as " << got.value_or("");
  }
}

}  // namespace
}  // namespace kelpie::image
