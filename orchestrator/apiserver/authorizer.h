// Authorization: may this user do this verb on this resource (or path)?
// Attributes as kube-apiserver derives them from a request (RequestInfo).
#pragma once

#include <string>
#include <vector>

#include "orchestrator/apiserver/user_info.h"

namespace kelpie::apiserver {

struct AuthorizationAttributes {
  UserInfo user;
  // get, list, watch, create, update, patch, delete, deletecollection,
  // impersonate, ...; for non-resource requests the lower-cased HTTP method.
  std::string verb;
  bool resource_request = false;
  std::string api_group;
  std::string api_version;
  std::string resource;
  std::string subresource;
  std::string namespace_name;
  std::string name;
  std::string path;  // non-resource requests
};

struct AuthorizationDecision {
  bool allowed = false;
  // Which binding allowed it, or what went wrong while evaluating (a
  // binding to a missing role); appended to 403 messages when set.
  std::string reason;
};

// One RBAC rule (rbac.authorization.k8s.io/v1 PolicyRule).
struct PolicyRule {
  std::vector<std::string> verbs;
  std::vector<std::string> api_groups;
  std::vector<std::string> resources;
  std::vector<std::string> resource_names;
  std::vector<std::string> non_resource_urls;
};

// What a user may do in a namespace (SelfSubjectRulesReview).
struct SubjectRules {
  std::vector<PolicyRule> resource_rules;
  std::vector<PolicyRule> non_resource_rules;
  std::vector<std::string> errors;  // evaluation errors (missing roles)
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  virtual AuthorizationDecision Authorize(const AuthorizationAttributes& attributes) const = 0;
  // The rules that apply to `user` in `namespace_name` (cluster-wide rules
  // included).
  virtual SubjectRules RulesFor(const UserInfo& user, const std::string& namespace_name) const = 0;
};

// kube-apiserver's 403 message:
//   pods "x" is forbidden: User "u" cannot get resource "pods" in API group
//   "" in the namespace "default"
//   User "u" cannot get path "/metrics"
// with ": <reason>" appended when `reason` is set.
std::string ForbiddenMessage(const AuthorizationAttributes& attributes, const std::string& reason);

}  // namespace kelpie::apiserver
