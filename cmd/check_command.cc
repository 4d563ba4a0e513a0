// `kelpie check`: the node preflight.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cmd/commands.h"
#include "control/preflight/preflight.h"

namespace kelpie::cmd {

CommandRunner RegisterCheckCommand(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "check", "Check that this machine can run Kelpie: kernel, BTF, privileges, bpffs, tracefs, cgroup v2, "
               "every BPF program type Kelpie loads, a BPF ring-buffer round trip, runc, CNI plugins and "
               "iproute2. Exits non-zero when something required is missing.");
  auto options = std::make_shared<preflight::PreflightOptions>();
  auto output = std::make_shared<std::string>("table");
  app->add_option("--bpffs-path", options->bpffs_path,
                  "Where Kelpie pins BPF maps (a bpffs mount, or a folder where one can be mounted)")
      ->capture_default_str();
  app->add_option("--cni-bin-dir", options->cni_bin_dirs,
                  "Folder(s) searched for the CNI plugins bridge, host-local, loopback and portmap (repeatable)")
      ->capture_default_str();
  app->add_option("-o,--output", *output, "Output format: table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  return [options, output] {
    auto results = preflight::RunPreflight(*options);
    std::cout << (*output == "json" ? preflight::FormatJson(results) : preflight::FormatTable(results));
    return preflight::AllRequiredPresent(results) ? 0 : 1;
  };
}

}  // namespace kelpie::cmd
