// `kelpie image`: the node's image store (pull, import, ls, rm, inspect, prepare).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cmd/commands.h"
#include "orchestrator/runtime/image/digest.h"
#include "common/files.h"
#include "orchestrator/runtime/image/image_puller.h"
#include "orchestrator/runtime/image/image_store.h"
#include "orchestrator/runtime/image/registry_reference.h"

namespace kelpie::cmd {
namespace {

using image::ImageRecord;
using image::ImageStore;

struct ImageFlags {
  std::string data_dir = ImageStore::kDefaultDataDir;
  std::string output = "table";
  std::string name;
  std::vector<std::string> args;
  // pull
  std::vector<std::string> insecure_registries;
  std::string ca_file;
  std::string docker_config;
};

std::string HumanSize(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1000 && unit + 1 < std::size(units)) {
    value /= 1000;
    ++unit;
  }
  return unit == 0 ? absl::StrCat(bytes, "B") : absl::StrFormat("%.1f%s", value, units[unit]);
}

std::string HumanAge(const std::string& created) {
  absl::Time t;
  std::string err;
  if (created.empty() || !absl::ParseTime(absl::RFC3339_full, created, &t, &err)) return "unknown";
  int64_t seconds = absl::ToInt64Seconds(absl::Now() - t);
  if (seconds < 0) return "in the future";
  struct Step {
    int64_t size;
    const char* unit;
  };
  const Step steps[] = {{365 * 86400, "year"}, {30 * 86400, "month"}, {7 * 86400, "week"},
                        {86400, "day"},        {3600, "hour"},        {60, "minute"}};
  for (const Step& s : steps) {
    if (seconds >= s.size) {
      int64_t n = seconds / s.size;
      return absl::StrCat(n, " ", s.unit, n == 1 ? "" : "s", " ago");
    }
  }
  return "less than a minute ago";
}

nlohmann::json RecordJson(const ImageRecord& r) {
  return {{"reference", r.reference},       {"manifestDigest", r.manifest_digest},
          {"configDigest", r.config_digest}, {"layers", r.layer_digests},
          {"diffIds", r.diff_ids},          {"size", r.size},
          {"created", r.created}};
}

int Fail(const char* verb, const absl::Status& status) {
  std::cerr << "kelpie image " << verb << ": " << status.message() << "\n";
  return 1;
}

int RunImport(const ImageFlags& f) {
  auto store = ImageStore::Open(f.data_dir);
  if (!store.ok()) return Fail("import", store.status());
  for (const std::string& file : f.args) {
    auto records = (*store)->Import(file, f.name);
    if (!records.ok()) return Fail("import", records.status());
    for (const ImageRecord& r : *records) {
      std::cout << "imported " << r.reference << " (" << r.manifest_digest << ", " << HumanSize(r.size) << ")\n";
    }
  }
  return 0;
}

int RunPull(const ImageFlags& f) {
  auto store = ImageStore::Open(f.data_dir);
  if (!store.ok()) return Fail("pull", store.status());
  image::ImagePullerOptions options;
  options.insecure_registries.insert(f.insecure_registries.begin(), f.insecure_registries.end());
  options.ca_file = f.ca_file;
  image::ImagePuller puller(**store, options);
  std::optional<image::RegistryCredentials> credentials;
  if (!f.docker_config.empty()) {
    auto ref = image::ParseRegistryReference(f.args[0]);
    if (!ref.ok()) return Fail("pull", ref.status());
    auto text = ReadFileToString(f.docker_config);
    if (!text.ok()) return Fail("pull", text.status());
    auto found = image::FindDockerConfigCredentials(*text, ref->registry);
    if (!found.ok()) return Fail("pull", absl::InvalidArgumentError(absl::StrCat(f.docker_config, ": ",
                                                                                 found.status().message())));
    credentials = *found;
  }
  auto record = puller.Pull(f.args[0], credentials);
  if (!record.ok()) return Fail("pull", record.status());
  std::printf("pulled %s (%s, %s)\n", record->reference.c_str(), record->manifest_digest.c_str(),
              HumanSize(record->size).c_str());
  return 0;
}

int RunList(const ImageFlags& f) {
  auto store = ImageStore::Open(f.data_dir);
  if (!store.ok()) return Fail("ls", store.status());
  std::vector<ImageRecord> records = (*store)->List();
  if (f.output == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const ImageRecord& r : records) out.push_back(RecordJson(r));
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  size_t width = std::string("REFERENCE").size();
  for (const ImageRecord& r : records) width = std::max(width, r.reference.size());
  std::printf("%-*s  %-12s  %-8s  %s\n", static_cast<int>(width), "REFERENCE", "DIGEST", "SIZE", "CREATED");
  for (const ImageRecord& r : records) {
    std::printf("%-*s  %-12s  %-8s  %s\n", static_cast<int>(width), r.reference.c_str(),
                image::DigestHex(r.manifest_digest).substr(0, 12).c_str(), HumanSize(r.size).c_str(),
                HumanAge(r.created).c_str());
  }
  return 0;
}

int RunRemove(const ImageFlags& f) {
  auto store = ImageStore::Open(f.data_dir);
  if (!store.ok()) return Fail("rm", store.status());
  int rc = 0;
  for (const std::string& ref : f.args) {
    auto gc = (*store)->Remove(ref);
    if (!gc.ok()) {
      rc = Fail("rm", gc.status());
      continue;
    }
    std::cout << "removed " << ref << " (freed " << gc->blobs_removed << " blobs, " << HumanSize(gc->bytes_freed)
              << ", " << gc->layers_removed << " unpacked layers)\n";
  }
  return rc;
}

int RunInspect(const ImageFlags& f) {
  auto store = ImageStore::Open(f.data_dir);
  if (!store.ok()) return Fail("inspect", store.status());
  auto record = (*store)->Get(f.args[0]);
  if (!record.ok()) return Fail("inspect", record.status());
  auto config = (*store)->Config(f.args[0]);
  if (!config.ok()) return Fail("inspect", config.status());
  nlohmann::json out = RecordJson(*record);
  out["config"] = nlohmann::json::parse(config->ToJson());
  std::cout << out.dump(2) << "\n";
  return 0;
}

int RunPrepare(const ImageFlags& f) {
  auto store = ImageStore::Open(f.data_dir);
  if (!store.ok()) return Fail("prepare", store.status());
  auto unpacked = (*store)->Prepare(f.args[0]);
  if (!unpacked.ok()) return Fail("prepare", unpacked.status());
  nlohmann::json out = {{"reference", unpacked->reference},
                        {"manifestDigest", unpacked->manifest_digest},
                        {"layerDirs", unpacked->layer_dirs},
                        {"lowerdir", unpacked->OverlayLowerDirs()}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

CommandRunner RegisterImageCommand(CLI::App& root) {
  CLI::App* app = root.add_subcommand("image", "Manage the node's image store: pull and import images, list, "
                                               "inspect, remove and unpack images");
  app->require_subcommand(1);
  auto flags = std::make_shared<ImageFlags>();
  auto selected = std::make_shared<std::function<int()>>();
  auto add = [&](const char* name, const char* description, int (*run)(const ImageFlags&)) {
    CLI::App* sub = app->add_subcommand(name, description);
    sub->add_option("--data-dir", flags->data_dir, "Kelpie's data folder (images live in DATA_DIR/images)")
        ->capture_default_str();
    sub->callback([flags, selected, run] { *selected = [flags, run] { return run(*flags); }; });
    return sub;
  };
  CLI::App* pull = add("pull", "Pull an image from a registry (OCI distribution API)", RunPull);
  pull->add_option("REF", flags->args, "Image reference (busybox, quay.io/org/app:1, name@sha256:...)")
      ->required()
      ->expected(1);
  pull->add_option("--insecure-registry", flags->insecure_registries,
                   "Registry (host:port) spoken to over plain HTTP instead of HTTPS; repeatable");
  pull->add_option("--ca-file", flags->ca_file, "PEM bundle to trust instead of the system trust store")
      ->check(CLI::ExistingFile);
  pull->add_option("--docker-config", flags->docker_config,
                   "Docker config JSON ({\"auths\": ...}, as in a .dockerconfigjson secret) with credentials")
      ->check(CLI::ExistingFile);
  CLI::App* import = add("import", "Import OCI image layout or docker-save archives (.tar or .tar.gz)", RunImport);
  import->add_option("FILE", flags->args, "Archive to import")->required()->check(CLI::ExistingFile);
  import->add_option("--name", flags->name, "Reference to give the image (when the archive names none)");
  CLI::App* ls = add("ls", "List images", RunList);
  ls->add_option("-o,--output", flags->output, "Output format: table or json")
      ->check(CLI::IsMember({"table", "json"}));
  CLI::App* rm = add("rm", "Remove image references and the blobs no other image needs", RunRemove);
  rm->add_option("REF", flags->args, "Image references")->required();
  CLI::App* inspect = add("inspect", "Show an image's config (entrypoint, cmd, env, ...) as JSON", RunInspect);
  inspect->add_option("REF", flags->args, "Image reference")->required()->expected(1);
  CLI::App* prepare = add("prepare", "Unpack an image's layers (cached) and print the overlayfs lower folders",
                          RunPrepare);
  prepare->add_option("REF", flags->args, "Image reference")->required()->expected(1);
  return [selected] { return *selected ? (*selected)() : 1; };
}

}  // namespace kelpie::cmd
