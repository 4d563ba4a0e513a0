#include <CLI/CLI.hpp>

#include "cmd/commands.h"

namespace kelpie::cmd {

CommandRunner RegisterServerCommand(CLI::App& root) {
  root.add_subcommand("server", "TODO");
  return [] { return 1; };
}

}  // namespace kelpie::cmd
