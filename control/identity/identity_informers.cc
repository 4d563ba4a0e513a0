#include "control/identity/identity_informers.h"

#include "common/log.h"

namespace kelpie::identity {

void BindPodInformer(controllers::SharedInformer& pods, IdentityCache& cache) {
  auto upsert = [&cache](const nlohmann::json& obj) {
    auto pod = PodRecordFromJson(obj);
    if (!pod.ok()) {
      spdlog::warn("identity: skipping a pod: {}", pod.status().message());
      return;
    }
    cache.UpsertPod(*pod);
  };
  pods.AddEventHandler({
      .on_add = upsert,
      .on_update = [upsert](const nlohmann::json&, const nlohmann::json& obj) { upsert(obj); },
      .on_delete =
          [&cache](const nlohmann::json& obj, bool) {
            auto pod = PodRecordFromJson(obj);
            if (pod.ok()) cache.DeletePod(pod->namespace_name, pod->name);
          },
  });
}

void BindServiceInformer(controllers::SharedInformer& services, IdentityCache& cache) {
  auto upsert = [&cache](const nlohmann::json& obj) {
    auto service = ServiceRecordFromJson(obj);
    if (!service.ok()) {
      spdlog::warn("identity: skipping a service: {}", service.status().message());
      return;
    }
    cache.UpsertService(*service);
  };
  services.AddEventHandler({
      .on_add = upsert,
      .on_update = [upsert](const nlohmann::json&, const nlohmann::json& obj) { upsert(obj); },
      .on_delete =
          [&cache](const nlohmann::json& obj, bool) {
            auto service = ServiceRecordFromJson(obj);
            if (service.ok()) cache.DeleteService(service->namespace_name, service->name);
          },
  });
}

}  // namespace kelpie::identity
