#include <CLI/CLI.hpp>

#include "cmd/commands.h"

namespace kelpie::cmd {

CommandRunner RegisterCheckCommand(CLI::App& root) {
  root.add_subcommand("check", "TODO");
  return [] { return 1; };
}

}  // namespace kelpie::cmd
