#include "orchestrator/kubelet/pod_volumes.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/files.h"
#include "orchestrator/client/api_errors.h"
#include "orchestrator/api/quantity.h"

namespace kelpie::kubelet {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_string()) return "";
  return obj[key].get<std::string>();
}

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

bool IsMountPoint(const std::string& path) {
  struct stat self, parent;
  if (::stat(path.c_str(), &self) != 0) return false;
  if (::stat((path + "/..").c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev;
}

absl::Status EnsureTmpfs(const std::string& dir, const std::string& extra_options) {
  if (absl::Status made = MakeDirectories(dir, 0750); !made.ok()) return made;
  if (IsMountPoint(dir)) return absl::OkStatus();
  std::string options = absl::StrCat("mode=0755", extra_options.empty() ? "" : ",", extra_options);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
    return Errno(absl::StrCat("mounting a tmpfs on ", dir));
  }
  return absl::OkStatus();
}

// Mount points at or below `prefix`, deepest first (from /proc/self/mountinfo;
// octal escapes such as \040 decoded).
std::vector<std::string> MountsUnder(const std::string& prefix) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ');
    if (fields.size() < 5) continue;
    std::string raw = fields[4], path;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 3 < raw.size()) {
        path.push_back(static_cast<char>(std::stoi(raw.substr(i + 1, 3), nullptr, 8)));
        i += 3;
      } else {
        path.push_back(raw[i]);
      }
    }
    if (path == prefix || absl::StartsWith(path, prefix + "/")) out.push_back(path);
  }
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

absl::Status WriteFileWithMode(const std::string& path, const std::string& content, int mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Errno(absl::StrCat("creating ", path));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return Errno(absl::StrCat("writing ", path));
    }
    done += static_cast<size_t>(n);
  }
  ::fchmod(fd, static_cast<mode_t>(mode & 07777));
  ::close(fd);
  return absl::OkStatus();
}

// The files currently visible through dir/..data (content and mode).
bool SameContents(const std::string& dir, const VolumeFiles& files) {
  std::string data = dir + "/..data";
  std::error_code ec;
  if (!fs::exists(data, ec)) return false;
  size_t count = 0;
  for (auto it = fs::recursive_directory_iterator(data, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    ++count;
    std::string rel = it->path().lexically_relative(data).string();
    auto f = files.find(rel);
    if (f == files.end()) return false;
    auto content = ReadFileToString(it->path().string());
    struct stat st;
    if (!content.ok() || *content != f->second.content || ::stat(it->path().c_str(), &st) != 0 ||
        static_cast<int>(st.st_mode & 07777) != (f->second.mode & 07777)) {
      return false;
    }
  }
  return !ec && count == files.size();
}

absl::Status CheckRelativePath(const std::string& path) {
  if (path.empty() || path[0] == '/' || absl::StrContains(path, "..") || absl::StartsWith(path, ".."))
    return absl::InvalidArgumentError(absl::StrCat("volume file path \"", path, "\" must be relative without '..'"));
  return absl::OkStatus();
}

int ModeOf(const json& obj, const char* key, int fallback) {
  return obj.is_object() && obj.contains(key) && obj[key].is_number_integer() ? obj[key].get<int>() : fallback;
}

// Keys of a configMap/secret chosen by `items` (all when absent) into files.
absl::Status AddObjectFiles(const json& source, const json& obj, bool secret, int default_mode, VolumeFiles& out,
                            const std::string& ns) {
  auto data = ConfigMapOrSecretData(obj, secret);
  if (source.contains("items") && source["items"].is_array() && !source["items"].empty()) {
    for (const auto& item : source["items"]) {
      std::string key = Str(item, "key"), path = Str(item, "path");
      auto it = data.find(key);
      if (it == data.end()) {
        if (source.value("optional", false)) continue;
        return absl::FailedPreconditionError(absl::StrCat("configuration key \"", key, "\" not found in ",
                                                          secret ? "Secret " : "ConfigMap ", ns, "/",
                                                          Str(source, secret ? "secretName" : "name")));
      }
      if (absl::Status st = CheckRelativePath(path); !st.ok()) return st;
      out[path] = {it->second, ModeOf(item, "mode", default_mode)};
    }
    return absl::OkStatus();
  }
  for (const auto& [k, v] : data) out[k] = {v, default_mode};
  return absl::OkStatus();
}

absl::Status AddDownwardFiles(const json& pod, const json& items, int default_mode, const PodEnvContext& context,
                              VolumeFiles& out) {
  if (!items.is_array()) return absl::OkStatus();
  for (const auto& item : items) {
    std::string path = Str(item, "path");
    if (absl::Status st = CheckRelativePath(path); !st.ok()) return st;
    absl::StatusOr<std::string> value = absl::InvalidArgumentError("downwardAPI item without fieldRef or resourceFieldRef");
    if (item.contains("fieldRef")) {
      value = PodFieldValue(pod, Str(item["fieldRef"], "fieldPath"), context);
    } else if (item.contains("resourceFieldRef")) {
      const json& r = item["resourceFieldRef"];
      std::string divisor = r.contains("divisor") && r["divisor"].is_number()
                                ? std::to_string(r["divisor"].get<int64_t>())
                                : Str(r, "divisor");
      value = ResourceFieldValue(pod, Str(r, "containerName"), Str(r, "resource"), divisor, context);
    }
    if (!value.ok()) return value.status();
    out[path] = {*value, ModeOf(item, "mode", default_mode)};
  }
  return absl::OkStatus();
}

absl::Status CheckHostPath(const std::string& path, const std::string& type) {
  struct stat st;
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (type.empty()) return absl::OkStatus();
  if (type == "DirectoryOrCreate") {
    if (!exists) return MakeDirectories(path, 0755);
    if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(absl::StrCat(path, " is not a directory"));
    return absl::OkStatus();
  }
  if (type == "FileOrCreate") {
    if (!exists) {
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) return Errno(absl::StrCat("creating ", path));
      ::close(fd);
      return absl::OkStatus();
    }
    if (!S_ISREG(st.st_mode)) return absl::FailedPreconditionError(absl::StrCat(path, " is not a file"));
    return absl::OkStatus();
  }
  auto want = [&](bool ok, const char* what) {
    if (!exists) return absl::FailedPreconditionError(absl::StrCat("hostPath ", path, " does not exist"));
    return ok ? absl::OkStatus() : absl::FailedPreconditionError(absl::StrCat(path, " is not a ", what));
  };
  if (type == "Directory") return want(S_ISDIR(st.st_mode), "directory");
  if (type == "File") return want(S_ISREG(st.st_mode), "file");
  if (type == "Socket") return want(S_ISSOCK(st.st_mode), "socket");
  if (type == "CharDevice") return want(S_ISCHR(st.st_mode), "character device");
  if (type == "BlockDevice") return want(S_ISBLK(st.st_mode), "block device");
  return absl::InvalidArgumentError(absl::StrCat("unknown hostPath type \"", type, "\""));
}

}  // namespace

absl::Status WriteAtomicVolume(const std::string& dir, const VolumeFiles& files) {
  if (absl::Status made = MakeDirectories(dir, 0755); !made.ok()) return made;
  if (SameContents(dir, files)) return absl::OkStatus();
  std::string stamp = absl::FormatTime("..%Y_%m_%d_%H_%M_%E9S", absl::Now(), absl::UTCTimeZone());
  std::replace(stamp.begin() + 2, stamp.end(), '.', '_');
  std::string target = dir + "/" + stamp;
  if (::mkdir(target.c_str(), 0755) != 0) return Errno(absl::StrCat("creating ", target));
  std::set<std::string> top;
  for (const auto& [rel, file] : files) {
    if (absl::Status st = CheckRelativePath(rel); !st.ok()) return st;
    std::string path = target + "/" + rel;
    if (size_t slash = rel.rfind('/'); slash != std::string::npos) {
      if (absl::Status made = MakeDirectories(target + "/" + rel.substr(0, slash), 0755); !made.ok()) return made;
    }
    if (absl::Status st = WriteFileWithMode(path, file.content, file.mode); !st.ok()) return st;
    top.insert(rel.substr(0, rel.find('/')));
  }
  std::string old_target;
  char buf[PATH_MAX];
  ssize_t n = ::readlink((dir + "/..data").c_str(), buf, sizeof(buf) - 1);
  if (n > 0) old_target.assign(buf, static_cast<size_t>(n));
  std::string tmp_link = dir + "/..data_tmp";
  ::unlink(tmp_link.c_str());
  if (::symlink(stamp.c_str(), tmp_link.c_str()) != 0) return Errno(absl::StrCat("linking ", tmp_link));
  if (::rename(tmp_link.c_str(), (dir + "/..data").c_str()) != 0) return Errno(absl::StrCat("renaming ", tmp_link));
  for (const auto& name : top) {
    std::string link = dir + "/" + name;
    struct stat st;
    if (::lstat(link.c_str(), &st) == 0) continue;
    if (::symlink(("..data/" + name).c_str(), link.c_str()) != 0) return Errno(absl::StrCat("linking ", link));
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, "..") || top.count(name)) continue;
    fs::remove(entry.path(), ec);  // a key that went away (always a symlink)
  }
  if (!old_target.empty() && old_target != stamp && absl::StartsWith(old_target, "..")) {
    fs::remove_all(dir + "/" + old_target, ec);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> PodVolumes::Token(const json& pod, const std::string& cache_key, const json& source) {
  auto now = std::chrono::system_clock::now();
  auto cached = tokens_.find(cache_key);
  if (cached != tokens_.end() && now < cached->second.refresh_at) return cached->second.token;
  const json& meta = pod["metadata"];
  const json& spec = pod["spec"];
  std::string sa = Str(spec, "serviceAccountName");
  if (sa.empty()) sa = Str(spec, "serviceAccount");
  if (sa.empty()) sa = "default";
  int64_t expiration = source.value("expirationSeconds", int64_t{3600});
  json request = {{"apiVersion", "authentication.k8s.io/v1"},
                  {"kind", "TokenRequest"},
                  {"spec",
                   {{"audiences", json::array()},
                    {"expirationSeconds", expiration},
                    {"boundObjectRef",
                     {{"kind", "Pod"}, {"apiVersion", "v1"}, {"name", Str(meta, "name")}, {"uid", Str(meta, "uid")}}}}}};
  if (std::string audience = Str(source, "audience"); !audience.empty()) {
    request["spec"]["audiences"].push_back(audience);
  }
  auto response = api_.RequestToken(Str(meta, "namespace"), sa, request);
  if (!response.ok()) {
    return absl::Status(response.status().code(),
                        absl::StrCat("requesting a token for service account ", Str(meta, "namespace"), "/", sa, ": ",
                                     response.status().message()));
  }
  std::string token = (*response).contains("status") ? Str((*response)["status"], "token") : "";
  if (token.empty()) return absl::InternalError("TokenRequest answered without status.token");
  int64_t granted = expiration;
  if (response->contains("spec") && (*response)["spec"].contains("expirationSeconds") &&
      (*response)["spec"]["expirationSeconds"].is_number_integer()) {
    granted = (*response)["spec"]["expirationSeconds"].get<int64_t>();
  }
  // Refreshed at 80% of its lifetime, as the kubelet's token manager does.
  tokens_[cache_key] = {token, now + std::chrono::seconds(granted * 8 / 10)};
  return token;
}

absl::StatusOr<VolumeFiles> PodVolumes::ContentFiles(const json& pod, const json& volume, const std::string& kind,
                                                     const PodEnvContext& context) {
  std::string ns = Str(pod["metadata"], "namespace");
  VolumeFiles files;
  const json& source = volume[kind];
  int default_mode = ModeOf(source, "defaultMode", 0644);
  auto object = [&](bool secret, const json& ref) -> absl::StatusOr<json> {
    std::string name = Str(ref, secret && ref.contains("secretName") ? "secretName" : "name");
    auto obj = secret ? api_.GetSecret(ns, name) : api_.GetConfigMap(ns, name);
    if (!obj.ok() && client::IsNotFound(obj.status())) {
      if (ref.value("optional", false)) return json::object();
      return absl::NotFoundError(absl::StrCat(secret ? "secret \"" : "configmap \"", name, "\" not found"));
    }
    return obj;
  };
  if (kind == "configMap" || kind == "secret") {
    bool secret = kind == "secret";
    auto obj = object(secret, source);
    if (!obj.ok()) return obj.status();
    if (absl::Status st = AddObjectFiles(source, *obj, secret, default_mode, files, ns); !st.ok()) return st;
  } else if (kind == "downwardAPI") {
    if (absl::Status st = AddDownwardFiles(pod, source.value("items", json::array()), default_mode, context, files);
        !st.ok()) {
      return st;
    }
  } else if (kind == "projected") {
    int index = 0;
    for (const auto& s : source.value("sources", json::array())) {
      ++index;
      if (s.contains("serviceAccountToken")) {
        std::string path = Str(s["serviceAccountToken"], "path");
        if (absl::Status st = CheckRelativePath(path); !st.ok()) return st;
        auto token = Token(pod, absl::StrCat(Str(volume, "name"), "/", index), s["serviceAccountToken"]);
        if (!token.ok()) return token.status();
        files[path] = {*token, default_mode == 0644 ? 0600 : default_mode};
      } else if (s.contains("configMap") || s.contains("secret")) {
        bool secret = s.contains("secret");
        const json& ref = secret ? s["secret"] : s["configMap"];
        auto obj = object(secret, ref);
        if (!obj.ok()) return obj.status();
        if (absl::Status st = AddObjectFiles(ref, *obj, secret, default_mode, files, ns); !st.ok()) return st;
      } else if (s.contains("downwardAPI")) {
        if (absl::Status st = AddDownwardFiles(pod, s["downwardAPI"].value("items", json::array()), default_mode,
                                               context, files);
            !st.ok()) {
          return st;
        }
      }
    }
  }
  return files;
}

absl::StatusOr<std::map<std::string, std::string>> PodVolumes::Sync(const json& pod, const PodEnvContext& context) {
  std::map<std::string, std::string> paths;
  for (const auto& volume : pod["spec"].value("volumes", json::array())) {
    std::string name = Str(volume, "name");
    if (volume.contains("emptyDir")) {
      std::string dir = absl::StrCat(pod_dir_, "/volumes/empty-dir/", name);
      const json& ed = volume["emptyDir"];
      if (Str(ed, "medium") == "Memory") {
        std::string size;
        if (std::string limit = Str(ed, "sizeLimit"); !limit.empty()) {
          auto bytes = api::Quantity::Parse(limit);
          if (!bytes.ok()) return bytes.status();
          size = absl::StrCat("size=", bytes->Value());
        }
        if (absl::Status st = EnsureTmpfs(dir, size); !st.ok()) return st;
        ::chmod(dir.c_str(), 01777);
      } else {
        if (absl::Status st = MakeDirectories(dir, 0777); !st.ok()) return st;
        ::chmod(dir.c_str(), 0777);  // as the kubelet: writable by any user of the pod
      }
      paths[name] = dir;
    } else if (volume.contains("hostPath")) {
      std::string path = Str(volume["hostPath"], "path");
      if (path.empty() || path[0] != '/') {
        return absl::InvalidArgumentError(absl::StrCat("volume ", name, ": hostPath.path must be absolute"));
      }
      if (absl::Status st = CheckHostPath(path, Str(volume["hostPath"], "type")); !st.ok()) return st;
      paths[name] = path;
    } else {
      std::string kind;
      for (const char* k : {"configMap", "secret", "downwardAPI", "projected"}) {
        if (volume.contains(k)) kind = k;
      }
      if (kind.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("volume ", name, ": unsupported volume source"));
      }
      std::string dir = absl::StrCat(pod_dir_, "/volumes/", kind, "/", name);
      if (kind == "secret" || kind == "projected") {
        if (absl::Status st = EnsureTmpfs(dir, ""); !st.ok()) return st;
      }
      auto files = ContentFiles(pod, volume, kind, context);
      if (!files.ok()) {
        return absl::Status(files.status().code(), absl::StrCat("volume ", name, ": ", files.status().message()));
      }
      if (absl::Status st = WriteAtomicVolume(dir, *files); !st.ok()) return st;
      paths[name] = dir;
    }
  }
  return paths;
}

absl::Status PodVolumes::Teardown(const std::string& pod_dir) {
  for (const auto& mount : MountsUnder(pod_dir)) {
    if (::umount2(mount.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
      return Errno(absl::StrCat("unmounting ", mount));
    }
  }
  if (!MountsUnder(pod_dir).empty()) {
    return absl::InternalError(absl::StrCat("mounts remain below ", pod_dir));
  }
  std::error_code ec;
  fs::remove_all(pod_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("removing ", pod_dir, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace kelpie::kubelet
