// The default RBAC roles and bindings Kubernetes clusters start with, so
// that kubectl users find cluster-admin, admin, edit and view (aggregated
// from the system:aggregate-to-* roles by the rbac.authorization.k8s.io/
// aggregate-to-* labels), system:basic-user, system:discovery,
// system:public-info-viewer and the roles of the control-plane components.
// Objects carry kubernetes.io/bootstrapping=rbac-defaults and the
// rbac.authorization.kubernetes.io/autoupdate annotation as in Kubernetes.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/status.h"
#include "orchestrator/store/store.h"

namespace kelpie::apiserver {

// The bootstrap objects as (store key, stored JSON) in the layout the
// resource API stores (no resourceVersion; uid and creationTimestamp set).
std::vector<std::pair<std::string, std::string>> BootstrapPolicyObjects();

// Creates every bootstrap object that is missing; existing ones (possibly
// edited by the administrator) are left alone.
absl::Status EnsureBootstrapPolicy(store::Store& store);

}  // namespace kelpie::apiserver
