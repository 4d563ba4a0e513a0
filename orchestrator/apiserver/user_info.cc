#include "orchestrator/apiserver/user_info.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kelpie::apiserver {

bool UserInfo::InGroup(const std::string& group) const {
  return std::find(groups.begin(), groups.end(), group) != groups.end();
}

void UserInfo::AddGroup(const std::string& group) {
  if (!InGroup(group)) groups.push_back(group);
}

std::string ServiceAccountUserName(const std::string& namespace_name, const std::string& name) {
  return absl::StrCat(kServiceAccountUserPrefix, namespace_name, ":", name);
}

std::vector<std::string> ServiceAccountGroups(const std::string& namespace_name) {
  return {kServiceAccountsGroup, absl::StrCat(kServiceAccountsGroup, ":", namespace_name)};
}

bool SplitServiceAccountUserName(const std::string& user, std::string* namespace_name, std::string* name) {
  if (!absl::StartsWith(user, kServiceAccountUserPrefix)) return false;
  std::string rest = user.substr(sizeof(kServiceAccountUserPrefix) - 1);
  size_t colon = rest.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) return false;
  if (rest.find(':', colon + 1) != std::string::npos) return false;
  *namespace_name = rest.substr(0, colon);
  *name = rest.substr(colon + 1);
  return true;
}

}  // namespace kelpie::apiserver
