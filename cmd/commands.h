// Subcommand registration: each file in cmd/ adds one subcommand to the root
// and returns what to run when that subcommand is chosen.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace kelpie::cmd {

// Runs the chosen subcommand after parsing; returns the process exit code.
using CommandRunner = std::function<int()>;

CommandRunner RegisterServerCommand(CLI::App& root);
CommandRunner RegisterAgentCommand(CLI::App& root);
CommandRunner RegisterCheckCommand(CLI::App& root);
CommandRunner RegisterDetectCommand(CLI::App& root);
CommandRunner RegisterImageCommand(CLI::App& root);
CommandRunner RegisterVersionCommand(CLI::App& root);
CommandRunner RegisterRuntimeShimCommand(CLI::App& root);
CommandRunner RegisterObserveCommand(CLI::App& root);

}  // namespace kelpie::cmd
