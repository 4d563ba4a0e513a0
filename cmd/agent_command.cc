#include <CLI/CLI.hpp>

#include "cmd/commands.h"

namespace kelpie::cmd {

CommandRunner RegisterAgentCommand(CLI::App& root) {
  root.add_subcommand("agent", "TODO");
  return [] { return 1; };
}

}  // namespace kelpie::cmd
