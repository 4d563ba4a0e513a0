// The typed event the rule engine evaluates. Kernel sources fill it from the
// shared ABI records; every string is a view into storage the source owns for
// the duration of one Evaluate call, so building an Event allocates nothing.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace kelpie::detect {

// One value per syscall family the rules can tell apart. Several syscalls map
// onto one type (openat/openat2 -> kOpen, dup2/dup3 -> kDup) because the rules
// care about what happened, not which entry point the program used.
enum class EventType : uint8_t {
  kExecve,
  kOpen,
  kConnect,
  kAccept,
  kSetuid,
  kSetgid,
  kCapset,
  kPtrace,
  kMount,
  kUmount,
  kUnshare,
  kSetns,
  kMemfdCreate,
  kInitModule,
  kBpf,
  kChmod,
  kDup,
  kRename,
  kUnlink,
  kCount,  // not a type: the number of types
};

inline constexpr size_t kEventTypeCount = static_cast<size_t>(EventType::kCount);
inline constexpr size_t kMaxAncestors = 8;

struct PodLabel {
  std::string_view key;
  std::string_view value;
};

struct ProcessInfo {
  int64_t pid = 0;
  int64_t ppid = 0;
  int64_t uid = -1;
  int64_t gid = -1;
  int64_t tty = 0;  // controlling terminal device number, 0 without one
  std::string_view name;     // comm / basename of the executable
  std::string_view exepath;  // full path of the executable
  std::string_view cmdline;  // name followed by the arguments
  std::string_view args;     // arguments only, space separated
  std::string_view cwd;
  std::string_view user_name;  // empty when unknown
  // The executable was written into the container's upper layer after the
  // container started (drop-and-execute).
  bool exe_upper_layer = false;
  // Names of ancestors: [0] is the parent, [1] the grandparent, ...
  std::array<std::string_view, kMaxAncestors> ancestors{};
  uint8_t ancestor_count = 0;
};

struct FileDescriptorInfo {
  std::string_view name;   // path for files, "sip:sport->dip:dport" for sockets
  std::string_view type;   // file, directory, ipv4, ipv6, unix, memfd, ...
  std::string_view l4proto;  // tcp, udp, icmp; empty for files
  std::string_view sip;
  std::string_view dip;
  int64_t sport = 0;
  int64_t dport = 0;
};

struct ContainerInfo {
  std::string_view id;  // "host" for host processes
  std::string_view name;
  std::string_view image_repository;
  std::string_view image_tag;
  std::string_view k8s_namespace;
  std::string_view k8s_pod_name;
  std::string_view k8s_pod_uid;
  std::span<const PodLabel> k8s_pod_labels;
};

// Syscall arguments, named after Falco's evt.arg.* where they mean the same.
struct EventArgs {
  int64_t flags = 0;    // open flags, clone/unshare flags, mount flags
  int64_t mode = 0;     // chmod / open mode bits
  int64_t uid = -1;     // target uid of setuid
  int64_t gid = -1;     // target gid of setgid
  int64_t request = 0;  // ptrace request
  int64_t cmd = 0;      // bpf command
  int64_t newfd = -1;   // dup target descriptor
  int64_t res = 0;      // return value
  std::string_view source;  // mount source / rename source
  std::string_view target;  // mount target / rename target
  std::string_view fstype;  // mount filesystem type
  std::string_view name;    // memfd name, module name
};

struct Event {
  EventType type = EventType::kExecve;
  uint64_t timestamp_ns = 0;
  ProcessInfo proc;
  FileDescriptorInfo fd;
  ContainerInfo container;
  EventArgs arg;
};

// Canonical name of a type as evt.type reports it.
std::string_view EventTypeName(EventType type);

}  // namespace kelpie::detect
