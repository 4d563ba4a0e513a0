// Attribution of a cgroup to a pod and container. The kubelet will supply
// pod metadata later through PodMetadataProvider; until then the runtime's
// cgroup layout `<root>/pod<uid>/<container-id>` gives the ids.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace kelpie::detect {

struct PodMetadata {
  std::string k8s_namespace;
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  // Container name and image by container id.
  struct Container {
    std::string name;
    std::string image;  // repository[:tag]
  };
  std::map<std::string, Container> containers;
};

// Implemented by the kubelet: metadata of a pod it runs, by uid.
class PodMetadataProvider {
 public:
  virtual ~PodMetadataProvider() = default;
  virtual std::optional<PodMetadata> Lookup(const std::string& pod_uid) const = 0;
};

struct CgroupOwner {
  std::string pod_uid;
  std::string container_id;
};

// Maps a v2 cgroup id (the directory's inode number) to its owner; nullopt
// means a host process.
class ContainerResolver {
 public:
  virtual ~ContainerResolver() = default;
  virtual std::optional<CgroupOwner> Resolve(uint64_t cgroup_id) = 0;
};

// Reads `<root>/pod<uid>/<container-id>` directories; unknown ids trigger
// one rescan (new containers appear between scans).
class CgroupDirectoryResolver final : public ContainerResolver {
 public:
  explicit CgroupDirectoryResolver(std::string root) : root_(std::move(root)) {}
  std::optional<CgroupOwner> Resolve(uint64_t cgroup_id) override;
  absl::Status Rescan();

 private:
  std::string root_;
  std::map<uint64_t, CgroupOwner> owners_;
  std::map<uint64_t, bool> unknown_;  // ids a rescan did not find: host
};

// Fixed table, for tests.
class FakeContainerResolver final : public ContainerResolver {
 public:
  void Add(uint64_t cgroup_id, CgroupOwner owner) { owners_[cgroup_id] = std::move(owner); }
  std::optional<CgroupOwner> Resolve(uint64_t cgroup_id) override {
    auto it = owners_.find(cgroup_id);
    if (it == owners_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::map<uint64_t, CgroupOwner> owners_;
};

}  // namespace kelpie::detect
