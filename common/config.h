// Configuration files: every command-line flag of a subcommand may also be set
// in a YAML file given with --config; flags on the command line win.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace kelpie {

// Adds `--config FILE` to `app`. The file is a YAML mapping from flag names
// (without dashes) to scalars or lists, e.g.
//
//   data-dir: /var/lib/kelpie
//   tls-san: [kelpie.example.com, 192.0.2.10]
//
// Unknown keys and malformed YAML are errors that name the file, line and
// column and what was expected.
void AddYamlConfigOption(CLI::App& app, const std::string& default_path = "");

}  // namespace kelpie
