// Keeps an IdentityCache current from Pod and Service informers (the
// SharedInformers every node component shares). Objects that fail to
// decode are logged and skipped; nothing else is lost.
#pragma once

#include "control/identity/identity_cache.h"
#include "orchestrator/controllers/shared_informer.h"

namespace kelpie::identity {

// Call before the informers start.
void BindPodInformer(controllers::SharedInformer& pods, IdentityCache& cache);
void BindServiceInformer(controllers::SharedInformer& services, IdentityCache& cache);

}  // namespace kelpie::identity
