// kelpie: one binary for every component.
#include <CLI/CLI.hpp>
#include <iostream>
#include <map>

#include "cmd/commands.h"

int main(int argc, char** argv) {
  CLI::App root{"Kelpie: a Kubernetes-compatible orchestrator with eBPF service routing, "
                "network observability and runtime security detection.",
                "kelpie"};
  root.require_subcommand(1);
  root.fallthrough(false);

  std::map<CLI::App*, kelpie::cmd::CommandRunner> runners;
  auto add = [&](kelpie::cmd::CommandRunner (*reg)(CLI::App&)) {
    size_t before = root.get_subcommands({}).size();
    kelpie::cmd::CommandRunner runner = reg(root);
    auto subs = root.get_subcommands({});
    if (subs.size() > before) runners[subs.back()] = std::move(runner);
  };
  add(kelpie::cmd::RegisterServerCommand);
  add(kelpie::cmd::RegisterAgentCommand);
  add(kelpie::cmd::RegisterCheckCommand);
  add(kelpie::cmd::RegisterDetectCommand);
  add(kelpie::cmd::RegisterImageCommand);
  add(kelpie::cmd::RegisterVersionCommand);
  add(kelpie::cmd::RegisterRuntimeShimCommand);
  add(kelpie::cmd::RegisterObserveCommand);

  try {
    root.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return root.exit(e);
  }
  for (auto& [app, runner] : runners) {
    if (app->parsed()) return runner();
  }
  return 1;
}
