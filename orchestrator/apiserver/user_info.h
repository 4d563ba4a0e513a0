// Who a request acts as, once authenticated: what the authorizer and the
// audit log see (Kubernetes' user.Info).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace kelpie::apiserver {

// Groups and names Kubernetes gives meaning to.
inline constexpr char kSystemMasters[] = "system:masters";
inline constexpr char kSystemAuthenticated[] = "system:authenticated";
inline constexpr char kSystemUnauthenticated[] = "system:unauthenticated";
inline constexpr char kSystemAnonymous[] = "system:anonymous";
inline constexpr char kServiceAccountsGroup[] = "system:serviceaccounts";
inline constexpr char kServiceAccountUserPrefix[] = "system:serviceaccount:";

struct UserInfo {
  std::string name;
  std::string uid;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;

  bool InGroup(const std::string& group) const;
  // Adds `group` unless present.
  void AddGroup(const std::string& group);
};

// "system:serviceaccount:<ns>:<name>" and the groups every service account
// has (system:serviceaccounts, system:serviceaccounts:<ns>).
std::string ServiceAccountUserName(const std::string& namespace_name, const std::string& name);
std::vector<std::string> ServiceAccountGroups(const std::string& namespace_name);
// Splits a service-account user name; false when `user` is not one.
bool SplitServiceAccountUserName(const std::string& user, std::string* namespace_name, std::string* name);

}  // namespace kelpie::apiserver
