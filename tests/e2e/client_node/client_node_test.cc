// The official Kubernetes JavaScript client against a real `kelpie server`:
// runs client_node_test.mjs with node. The package comes from npm through
// scripts/install-deps (tests/e2e/client_node/node_modules).
#include <gtest/gtest.h>

#include <filesystem>

#include "common/subprocess.h"
#include "tests/testing/kelpie_server.h"
#include "tests/testing/test_env.h"

namespace kelpie {
namespace {

TEST(ClientNodeTest, ListsCreatesWatchesPatchesAndDeletesPods) {
  const std::filesystem::path dir = KELPIE_CLIENT_NODE_DIR;
  ASSERT_TRUE(std::filesystem::exists(dir / "node_modules" / "@kubernetes" / "client-node"))
      << "run scripts/install-deps: it installs @kubernetes/client-node into " << dir;
  testing::TempDir tmp;
  // The script checks the exact watch events of its pods: no scheduler
  // writes conditions into them here (there is no node to bind them to).
  auto server = testing::KelpieServer::Start(tmp.File("data"), testing::FreeTcpPort(), tmp.File("server.log"),
                                             {"--scheduler=false"});
  ASSERT_TRUE(server.ok()) << server.status();
  SubprocessOptions options;
  options.timeout = std::chrono::seconds(60);
  options.working_dir = dir.string();
  auto result = RunSubprocess({"node", (dir / "client_node_test.mjs").string(), (*server)->kubeconfig()}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->stdout_text << result->stderr_text << "\nserver log:\n"
                                  << (*server)->Log();
  EXPECT_NE(result->stdout_text.find("PASS"), std::string::npos) << result->stdout_text;
}

}  // namespace
}  // namespace kelpie
