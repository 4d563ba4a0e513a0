// The API resources Kelpie serves: for each, its group/version/kind, REST
// names, scope and verbs. Discovery, routing and storage keys derive from
// this one table.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kelpie::api {

struct ResourceType {
  std::string group;    // "" for the core group
  std::string version;  // v1
  std::string kind;     // Pod
  std::string plural;   // pods
  std::string singular; // pod
  bool namespaced = true;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;  // e.g. "all"
  std::vector<std::string> subresources;  // the ones served (advertised in discovery)
  // Names follow DNS-1123 label rules (63 chars, no dots) rather than the
  // default DNS-1123 subdomain rules.
  bool name_is_dns_label = false;
  // Verbs when not the full CRUD set (e.g. {"create"} for the review
  // kinds, which are never stored).
  std::vector<std::string> verbs;

  std::string GroupVersion() const { return group.empty() ? version : group + "/" + version; }
  // Storage key prefix: /registry/<plural>/ (keys add <namespace>/<name>).
  std::string StoragePrefix() const;
  std::vector<std::string> Verbs() const;
  bool Serves(std::string_view subresource) const;
};

// What a subresource accepts and answers with: status answers with its
// parent's kind; scale with autoscaling/v1 Scale; binding takes a v1
// Binding.
struct SubresourceType {
  std::string group;
  std::string version;
  std::string kind;
  std::vector<std::string> verbs;
};
SubresourceType DescribeSubresource(const ResourceType& parent, std::string_view subresource);

class ResourceRegistry {
 public:
  // Every built-in kind of Kelpie's API.
  static const ResourceRegistry& Builtin();

  const ResourceType* Find(std::string_view group, std::string_view version,
                           std::string_view plural) const;
  const ResourceType* FindKind(std::string_view group, std::string_view kind) const;
  const std::vector<ResourceType>& all() const { return types_; }
  // Group names in preferred order (core "" first).
  std::vector<std::string> Groups() const;
  std::vector<const ResourceType*> InGroupVersion(std::string_view group,
                                                  std::string_view version) const;

 private:
  std::vector<ResourceType> types_;
};

}  // namespace kelpie::api
