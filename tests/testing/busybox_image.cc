#include "tests/testing/busybox_image.h"

#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "orchestrator/runtime/image/byte_source.h"
#include "orchestrator/runtime/image/digest.h"
#include "orchestrator/runtime/image/tar_writer.h"

namespace kelpie::testing {

using image::Sha256Digest;
using image::TarWriter;

std::string ImageConfigJson(const OciImageSpec& spec, const std::vector<std::string>& diff_ids) {
  nlohmann::json config = nlohmann::json::object();
  if (!spec.entrypoint.empty()) config["Entrypoint"] = spec.entrypoint;
  if (!spec.cmd.empty()) config["Cmd"] = spec.cmd;
  if (!spec.env.empty()) config["Env"] = spec.env;
  if (!spec.working_dir.empty()) config["WorkingDir"] = spec.working_dir;
  if (!spec.user.empty()) config["User"] = spec.user;
  if (!spec.exposed_ports.empty()) {
    nlohmann::json ports = nlohmann::json::object();
    for (const std::string& p : spec.exposed_ports) ports[p] = nlohmann::json::object();
    config["ExposedPorts"] = ports;
  }
  nlohmann::json doc = {{"created", spec.created},
                        {"architecture", "amd64"},
                        {"os", "linux"},
                        {"config", config},
                        {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  return doc.dump();
}

absl::Status WriteOciArchive(const std::string& path, const OciImageSpec& spec) {
  TarWriter archive;
  std::set<std::string> written;
  auto add_blob = [&](const std::string& data) {
    std::string digest = Sha256Digest(data);
    if (written.insert(digest).second) archive.AddFile("blobs/sha256/" + image::DigestHex(digest), data);
    return digest;
  };
  archive.AddFile("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  archive.AddDirectory("blobs");
  archive.AddDirectory("blobs/sha256");
  std::vector<std::string> diff_ids;
  nlohmann::json layers = nlohmann::json::array();
  for (const std::string& layer : spec.layers) {
    diff_ids.push_back(Sha256Digest(layer));
    std::string blob = spec.gzip_layers ? image::GzipCompress(layer) : layer;
    std::string digest = add_blob(blob);
    layers.push_back({{"mediaType", spec.gzip_layers ? "application/vnd.oci.image.layer.v1.tar+gzip"
                                                     : "application/vnd.oci.image.layer.v1.tar"},
                      {"digest", digest},
                      {"size", blob.size()}});
  }
  std::string config = ImageConfigJson(spec, diff_ids);
  std::string config_digest = add_blob(config);
  nlohmann::json manifest = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config",
       {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", config_digest}, {"size", config.size()}}},
      {"layers", layers}};
  std::string manifest_text = manifest.dump();
  std::string manifest_digest = add_blob(manifest_text);
  nlohmann::json descriptor = {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                               {"digest", manifest_digest},
                               {"size", manifest_text.size()},
                               {"platform", {{"architecture", "amd64"}, {"os", "linux"}}}};
  if (!spec.ref_name.empty()) descriptor["annotations"] = {{"org.opencontainers.image.ref.name", spec.ref_name}};
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", "application/vnd.oci.image.index.v1+json"},
                          {"manifests", nlohmann::json::array({descriptor})}};
  archive.AddFile("index.json", index.dump());
  return WriteFileAtomically(path, archive.Finish(), 0644);
}

absl::StatusOr<std::string> BuildBusyboxLayer() {
  std::optional<std::string> busybox = FindExecutable("busybox");
  if (!busybox) return absl::NotFoundError("busybox is not installed (Debian package busybox-static)");
  KELPIE_ASSIGN_OR_RETURN(std::string binary, ReadFileToString(*busybox));
  KELPIE_ASSIGN_OR_RETURN(SubprocessResult list, RunSubprocess({*busybox, "--list-full"}));
  if (!list.Succeeded()) return absl::InternalError(absl::StrCat("busybox --list-full failed: ", list.stderr_text));

  TarWriter layer;
  constexpr int64_t kMtime = 1704067200;  // fixed, so the image is reproducible
  auto directory = [&](const std::string& path, mode_t mode) {
    image::TarEntry e;
    e.type = image::TarEntryType::kDirectory;
    e.path = path + "/";
    e.mode = mode;
    e.mtime_seconds = kMtime;
    layer.Add(e);
  };
  auto file = [&](const std::string& path, const std::string& data, mode_t mode) {
    image::TarEntry e;
    e.path = path;
    e.mode = mode;
    e.mtime_seconds = kMtime;
    layer.Add(e, data);
  };
  for (const char* dir : {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "var",
                          "var/www"}) {
    directory(dir, 0755);
  }
  directory("tmp", 01777);
  directory("root", 0700);
  file("bin/busybox", binary, 0755);
  file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0644);
  file("etc/group", "root:x:0:\nnogroup:x:65534:\n", 0644);
  for (absl::string_view applet : absl::StrSplit(list.stdout_text, '\n', absl::SkipWhitespace())) {
    std::string path(applet);
    if (path == "bin/busybox" || path.find('/') == std::string::npos) continue;
    image::TarEntry e;
    e.type = image::TarEntryType::kSymlink;
    e.path = path;
    e.link_target = "/bin/busybox";
    e.mode = 0777;
    e.mtime_seconds = kMtime;
    layer.Add(e);
  }
  return layer.Finish();
}

absl::StatusOr<std::string> BuildBusyboxImage(const std::string& dir, const std::string& ref_name) {
  KELPIE_ASSIGN_OR_RETURN(std::string layer, BuildBusyboxLayer());
  OciImageSpec spec;
  spec.ref_name = ref_name;
  spec.layers = {layer};
  spec.cmd = {"sh"};
  spec.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  spec.working_dir = "/";
  std::string path = dir + "/busybox-oci.tar";
  KELPIE_RETURN_IF_ERROR(WriteOciArchive(path, spec));
  return path;
}

}  // namespace kelpie::testing
