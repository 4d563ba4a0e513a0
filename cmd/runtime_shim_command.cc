// `kelpie runtime-shim`: the per-container monitor the runtime starts for
// every container (see orchestrator/runtime/runc/container_shim.h). Not meant
// to be run by hand; hidden from the help.
#include <CLI/CLI.hpp>
#include <memory>

#include "cmd/commands.h"
#include "orchestrator/runtime/runc/container_shim.h"

namespace kelpie::cmd {

CommandRunner RegisterRuntimeShimCommand(CLI::App& root) {
  CLI::App* app = root.add_subcommand("runtime-shim", "Container monitor started by the runtime");
  app->group("");  // hidden
  auto options = std::make_shared<runtime::ShimOptions>();
  app->add_option("--runc", options->runc)->required();
  app->add_option("--runc-root", options->runc_root)->required();
  app->add_option("--bundle", options->bundle)->required();
  app->add_option("--id", options->container_id)->required();
  app->add_option("--log-path", options->log_path)->required();
  app->add_option("--log-max-size", options->log_max_size);
  app->add_option("--log-max-files", options->log_max_files);
  app->add_option("--exit-file", options->exit_file)->required();
  app->add_option("--oom-counter-file", options->oom_counter_file);
  app->add_flag("--start", options->start, "runc run --detach instead of runc create");
  return [options]() { return runtime::RunShim(*options); };
}

}  // namespace kelpie::cmd
