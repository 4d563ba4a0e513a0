#include <bpf/libbpf.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cmd/commands.h"
#include "common/version.h"

namespace kelpie::cmd {

CommandRunner RegisterVersionCommand(CLI::App& root) {
  CLI::App* app = root.add_subcommand("version", "Print Kelpie's version, the Kubernetes API "
                                                 "version it serves and build details");
  auto output = std::make_shared<std::string>("text");
  app->add_option("-o,--output", *output, "Output format: text or json")
      ->check(CLI::IsMember({"text", "json"}));
  return [output]() {
    const VersionInfo& v = GetVersionInfo();
    std::string libbpf = std::to_string(libbpf_major_version()) + "." +
                         std::to_string(libbpf_minor_version());
    if (*output == "json") {
      nlohmann::json j = {{"kelpieVersion", v.kelpie_version},
                          {"kubernetesVersion", v.git_version},
                          {"gitCommit", v.git_commit},
                          {"gitTreeState", v.git_tree_state},
                          {"buildDate", v.build_date},
                          {"compiler", v.compiler},
                          {"platform", v.platform},
                          {"libbpfVersion", libbpf}};
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << "kelpie " << v.kelpie_version << "\n"
                << "Kubernetes API: " << v.git_version << "\n"
                << "git commit:     " << v.git_commit << " (" << v.git_tree_state << ")\n"
                << "built:          " << v.build_date << " with " << v.compiler << "\n"
                << "platform:       " << v.platform << "\n"
                << "libbpf:         " << libbpf << "\n";
    }
    return 0;
  };
}

}  // namespace kelpie::cmd
