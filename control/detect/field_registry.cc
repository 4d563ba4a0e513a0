#include "control/detect/field_registry.h"

#include <charconv>
#include <utility>

#include "absl/strings/str_cat.h"

namespace kelpie::detect {
namespace {

using Getter = FieldGetter;

bool Str(std::string_view s, size_t i, FieldValue* out) {
  if (i != 0) return false;
  out->str = s;
  return true;
}
bool NonEmptyStr(std::string_view s, size_t i, FieldValue* out) {
  return !s.empty() && Str(s, i, out);
}
bool Num(int64_t v, size_t i, FieldValue* out) {
  if (i != 0) return false;
  out->num = v;
  return true;
}

std::string_view Directory(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return {};
  if (slash == 0) return path.substr(0, 1);
  return path.substr(0, slash);
}
std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// Accmode of open(2) flags: 0 read, 1 write, 2 read-write.
constexpr int64_t kAccMode = 3;
constexpr int64_t kOCreat = 0100;
constexpr int64_t kOTrunc = 01000;

struct FieldDef {
  FieldDescription description;
  Getter getter;
  bool multi = false;
};

#define KELPIE_FIELD(expr) [](const Event& e, const FieldAccessor& f, size_t i, FieldValue* out) { \
  (void)e; (void)f; (void)i; (void)out; return expr; }

const std::vector<FieldDef>& Definitions() {
  static const auto* defs = new std::vector<FieldDef>{
      {{"evt.type", FieldKind::kString, "", "event type: execve, open, connect, ..."},
       KELPIE_FIELD(Str(EventTypeName(e.type), i, out))},
      {{"evt.arg.flags", FieldKind::kInt, "", "open / unshare / setns / mount flags"},
       KELPIE_FIELD(Num(e.arg.flags, i, out))},
      {{"evt.arg.mode", FieldKind::kInt, "", "mode bits of chmod and open"},
       KELPIE_FIELD(Num(e.arg.mode, i, out))},
      {{"evt.arg.uid", FieldKind::kInt, "", "uid requested by setuid"},
       KELPIE_FIELD(Num(e.arg.uid, i, out))},
      {{"evt.arg.gid", FieldKind::kInt, "", "gid requested by setgid"},
       KELPIE_FIELD(Num(e.arg.gid, i, out))},
      {{"evt.arg.request", FieldKind::kInt, "", "ptrace request"},
       KELPIE_FIELD(Num(e.arg.request, i, out))},
      {{"evt.arg.cmd", FieldKind::kInt, "", "bpf(2) command"},
       KELPIE_FIELD(Num(e.arg.cmd, i, out))},
      {{"evt.arg.newfd", FieldKind::kInt, "", "target descriptor of dup2/dup3"},
       KELPIE_FIELD(e.arg.newfd >= 0 && Num(e.arg.newfd, i, out))},
      {{"evt.arg.source", FieldKind::kString, "", "mount source, rename source"},
       KELPIE_FIELD(NonEmptyStr(e.arg.source, i, out))},
      {{"evt.arg.target", FieldKind::kString, "", "mount target, rename target"},
       KELPIE_FIELD(NonEmptyStr(e.arg.target, i, out))},
      {{"evt.arg.fstype", FieldKind::kString, "", "filesystem type of mount"},
       KELPIE_FIELD(NonEmptyStr(e.arg.fstype, i, out))},
      {{"evt.arg.name", FieldKind::kString, "", "memfd name, kernel module name"},
       KELPIE_FIELD(NonEmptyStr(e.arg.name, i, out))},
      {{"evt.res", FieldKind::kInt, "", "return value of the syscall"},
       KELPIE_FIELD(Num(e.arg.res, i, out))},
      {{"evt.is_open_read", FieldKind::kBool, "", "open for reading"},
       KELPIE_FIELD(e.type == EventType::kOpen &&
                    Num((e.arg.flags & kAccMode) != 1 ? 1 : 0, i, out))},
      {{"evt.is_open_write", FieldKind::kBool, "", "open for writing, creating or truncating"},
       KELPIE_FIELD(e.type == EventType::kOpen &&
                    Num(((e.arg.flags & kAccMode) != 0 || (e.arg.flags & (kOCreat | kOTrunc)) != 0)
                            ? 1 : 0, i, out))},
      {{"proc.pid", FieldKind::kInt, "", "process id"}, KELPIE_FIELD(Num(e.proc.pid, i, out))},
      {{"proc.ppid", FieldKind::kInt, "", "parent process id"},
       KELPIE_FIELD(Num(e.proc.ppid, i, out))},
      {{"proc.name", FieldKind::kString, "", "executable name"},
       KELPIE_FIELD(NonEmptyStr(e.proc.name, i, out))},
      {{"proc.exepath", FieldKind::kString, "", "full executable path"},
       KELPIE_FIELD(NonEmptyStr(e.proc.exepath, i, out))},
      {{"proc.cmdline", FieldKind::kString, "", "name and arguments"},
       KELPIE_FIELD(NonEmptyStr(e.proc.cmdline, i, out))},
      {{"proc.args", FieldKind::kString, "", "arguments, space separated"},
       KELPIE_FIELD(Str(e.proc.args, i, out))},
      {{"proc.cwd", FieldKind::kString, "", "working directory"},
       KELPIE_FIELD(NonEmptyStr(e.proc.cwd, i, out))},
      {{"proc.tty", FieldKind::kInt, "", "controlling terminal, 0 without one"},
       KELPIE_FIELD(Num(e.proc.tty, i, out))},
      {{"proc.pname", FieldKind::kString, "", "parent's name"},
       KELPIE_FIELD(e.proc.ancestor_count > 0 && Str(e.proc.ancestors[0], i, out))},
      {{"proc.aname", FieldKind::kString, "index",
        "ancestor name: [0] self, [1] parent, ...; without index any ancestor"},
       [](const Event& e, const FieldAccessor& f, size_t i, FieldValue* out) {
         if (f.index >= 0) {
           if (i != 0) return false;
           if (f.index == 0) return Str(e.proc.name, 0, out);
           if (static_cast<size_t>(f.index) > e.proc.ancestor_count) return false;
           out->str = e.proc.ancestors[f.index - 1];
           return true;
         }
         if (i >= e.proc.ancestor_count) return false;
         out->str = e.proc.ancestors[i];
         return true;
       },
       true},
      {{"proc.is_exe_upper_layer", FieldKind::kBool, "",
        "executable written to the container's upper layer after it started"},
       KELPIE_FIELD(Num(e.proc.exe_upper_layer ? 1 : 0, i, out))},
      {{"proc.is_exe_from_memfd", FieldKind::kBool, "", "executable is a memfd (fileless)"},
       KELPIE_FIELD(Num(e.proc.exepath.starts_with("/memfd:") ? 1 : 0, i, out))},
      {{"user.uid", FieldKind::kInt, "", "user id"}, KELPIE_FIELD(Num(e.proc.uid, i, out))},
      {{"user.name", FieldKind::kString, "", "user name where known"},
       KELPIE_FIELD(NonEmptyStr(e.proc.user_name, i, out))},
      {{"group.gid", FieldKind::kInt, "", "group id"}, KELPIE_FIELD(Num(e.proc.gid, i, out))},
      {{"fd.name", FieldKind::kString, "", "file path, or sip:sport->dip:dport"},
       KELPIE_FIELD(NonEmptyStr(e.fd.name, i, out))},
      {{"fd.directory", FieldKind::kString, "", "directory of fd.name"},
       KELPIE_FIELD(NonEmptyStr(Directory(e.fd.name), i, out))},
      {{"fd.filename", FieldKind::kString, "", "last component of fd.name"},
       KELPIE_FIELD(NonEmptyStr(BaseName(e.fd.name), i, out))},
      {{"fd.type", FieldKind::kString, "", "file, directory, ipv4, ipv6, unix, memfd"},
       KELPIE_FIELD(NonEmptyStr(e.fd.type, i, out))},
      {{"fd.l4proto", FieldKind::kString, "", "tcp, udp, icmp"},
       KELPIE_FIELD(NonEmptyStr(e.fd.l4proto, i, out))},
      {{"fd.sip", FieldKind::kString, "", "source address"},
       KELPIE_FIELD(NonEmptyStr(e.fd.sip, i, out))},
      {{"fd.dip", FieldKind::kString, "", "destination address"},
       KELPIE_FIELD(NonEmptyStr(e.fd.dip, i, out))},
      {{"fd.sport", FieldKind::kInt, "", "source port"},
       KELPIE_FIELD(e.fd.sport != 0 && Num(e.fd.sport, i, out))},
      {{"fd.dport", FieldKind::kInt, "", "destination port"},
       KELPIE_FIELD(e.fd.dport != 0 && Num(e.fd.dport, i, out))},
      {{"container.id", FieldKind::kString, "", "container id, \"host\" on the host"},
       KELPIE_FIELD(NonEmptyStr(e.container.id, i, out))},
      {{"container.name", FieldKind::kString, "", "container name"},
       KELPIE_FIELD(NonEmptyStr(e.container.name, i, out))},
      {{"container.image.repository", FieldKind::kString, "", "image repository"},
       KELPIE_FIELD(NonEmptyStr(e.container.image_repository, i, out))},
      {{"container.image.tag", FieldKind::kString, "", "image tag"},
       KELPIE_FIELD(NonEmptyStr(e.container.image_tag, i, out))},
      {{"k8s.ns.name", FieldKind::kString, "", "pod namespace"},
       KELPIE_FIELD(NonEmptyStr(e.container.k8s_namespace, i, out))},
      {{"k8s.pod.name", FieldKind::kString, "", "pod name"},
       KELPIE_FIELD(NonEmptyStr(e.container.k8s_pod_name, i, out))},
      {{"k8s.pod.uid", FieldKind::kString, "", "pod uid"},
       KELPIE_FIELD(NonEmptyStr(e.container.k8s_pod_uid, i, out))},
      {{"k8s.pod.label", FieldKind::kString, "key", "value of a pod label"},
       [](const Event& e, const FieldAccessor& f, size_t i, FieldValue* out) {
         if (i != 0) return false;
         for (const PodLabel& label : e.container.k8s_pod_labels) {
           if (label.key == f.arg) {
             out->str = label.value;
             return true;
           }
         }
         return false;
       }},
  };
  return *defs;
}
#undef KELPIE_FIELD

}  // namespace

std::string_view EventTypeName(EventType type) {
  static constexpr std::array<std::string_view, kEventTypeCount> kNames = {
      "execve", "open",   "connect", "accept", "setuid",       "setgid", "capset",
      "ptrace", "mount",  "umount",  "unshare", "setns",       "memfd_create",
      "init_module", "bpf", "chmod", "dup",    "rename",       "unlink"};
  size_t index = static_cast<size_t>(type);
  return index < kNames.size() ? kNames[index] : std::string_view("unknown");
}

bool FieldRegistry::EventTypeByName(std::string_view name, EventType* out) {
  static const std::pair<std::string_view, EventType> kAliases[] = {
      {"execve", EventType::kExecve},     {"execveat", EventType::kExecve},
      {"open", EventType::kOpen},         {"openat", EventType::kOpen},
      {"openat2", EventType::kOpen},      {"creat", EventType::kOpen},
      {"connect", EventType::kConnect},   {"accept", EventType::kAccept},
      {"accept4", EventType::kAccept},    {"setuid", EventType::kSetuid},
      {"setresuid", EventType::kSetuid},  {"setreuid", EventType::kSetuid},
      {"setgid", EventType::kSetgid},     {"setresgid", EventType::kSetgid},
      {"setregid", EventType::kSetgid},   {"capset", EventType::kCapset},
      {"ptrace", EventType::kPtrace},     {"mount", EventType::kMount},
      {"umount", EventType::kUmount},     {"umount2", EventType::kUmount},
      {"unshare", EventType::kUnshare},   {"setns", EventType::kSetns},
      {"memfd_create", EventType::kMemfdCreate},
      {"init_module", EventType::kInitModule},
      {"finit_module", EventType::kInitModule},
      {"bpf", EventType::kBpf},           {"chmod", EventType::kChmod},
      {"fchmod", EventType::kChmod},      {"fchmodat", EventType::kChmod},
      {"dup", EventType::kDup},           {"dup2", EventType::kDup},
      {"dup3", EventType::kDup},          {"rename", EventType::kRename},
      {"renameat", EventType::kRename},   {"renameat2", EventType::kRename},
      {"unlink", EventType::kUnlink},     {"unlinkat", EventType::kUnlink},
  };
  for (const auto& [alias, type] : kAliases) {
    if (alias == name) {
      *out = type;
      return true;
    }
  }
  return false;
}

bool FieldRegistry::SymbolValue(std::string_view name, int64_t* out) {
  static const std::pair<std::string_view, int64_t> kSymbols[] = {
      {"O_RDONLY", 0},          {"O_WRONLY", 01},          {"O_RDWR", 02},
      {"O_CREAT", 0100},        {"O_EXCL", 0200},          {"O_TRUNC", 01000},
      {"O_APPEND", 02000},      {"S_ISUID", 04000},        {"S_ISGID", 02000},
      {"CLONE_NEWNS", 0x00020000}, {"CLONE_NEWCGROUP", 0x02000000},
      {"CLONE_NEWUTS", 0x04000000}, {"CLONE_NEWIPC", 0x08000000},
      {"CLONE_NEWUSER", 0x10000000}, {"CLONE_NEWPID", 0x20000000},
      {"CLONE_NEWNET", 0x40000000}, {"PTRACE_TRACEME", 0},
      {"PTRACE_POKETEXT", 4},   {"PTRACE_POKEDATA", 5},    {"PTRACE_ATTACH", 16},
      {"PTRACE_SEIZE", 0x4206}, {"MS_BIND", 4096},         {"BPF_PROG_LOAD", 5},
      {"BPF_MAP_CREATE", 0},
  };
  for (const auto& [symbol, value] : kSymbols) {
    if (symbol == name) {
      *out = value;
      return true;
    }
  }
  return false;
}

const std::vector<FieldDescription>& FieldRegistry::Fields() {
  static const auto* fields = [] {
    auto* list = new std::vector<FieldDescription>();
    for (const FieldDef& def : Definitions()) list->push_back(def.description);
    return list;
  }();
  return *fields;
}

absl::StatusOr<FieldAccessor> FieldRegistry::Resolve(std::string_view name) {
  std::string_view base = name;
  std::string_view argument;
  bool has_argument = false;
  if (size_t open = name.find('['); open != std::string_view::npos) {
    if (name.back() != ']' || open + 2 >= name.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed field argument in '", std::string(name), "'"));
    }
    base = name.substr(0, open);
    argument = name.substr(open + 1, name.size() - open - 2);
    has_argument = true;
  }
  for (const FieldDef& def : Definitions()) {
    if (def.description.name != base) continue;
    FieldAccessor accessor;
    accessor.name = std::string(name);
    accessor.kind = def.description.kind;
    accessor.get = def.getter;
    accessor.multi = def.multi;
    if (def.description.argument.empty()) {
      if (has_argument) {
        return absl::InvalidArgumentError(
            absl::StrCat("field '", std::string(base), "' takes no argument"));
      }
    } else if (def.description.argument == "key") {
      if (!has_argument) {
        return absl::InvalidArgumentError(
            absl::StrCat("field '", std::string(base), "' needs a key, e.g. ",
                         std::string(base), "[app]"));
      }
      accessor.arg = std::string(argument);
    } else if (has_argument) {
      int64_t index = 0;
      auto [ptr, ec] = std::from_chars(argument.data(), argument.data() + argument.size(), index);
      if (ec != std::errc() || ptr != argument.data() + argument.size() || index < 0 ||
          index > static_cast<int64_t>(kMaxAncestors)) {
        return absl::InvalidArgumentError(
            absl::StrCat("index of '", std::string(base), "' must be 0..", kMaxAncestors));
      }
      accessor.index = index;
      accessor.multi = false;
    }
    return accessor;
  }
  return absl::NotFoundError(absl::StrCat("unknown field '", std::string(name), "'"));
}

}  // namespace kelpie::detect
