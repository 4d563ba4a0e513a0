// One SharedInformer per resource, shared by every controller that watches
// it, so the manager lists and watches each resource once. Controllers ask
// for informers (and add handlers) before Start().
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "orchestrator/client/rest_client.h"
#include "orchestrator/controllers/shared_informer.h"

namespace kelpie::controllers {

class SharedInformerFactory {
 public:
  explicit SharedInformerFactory(client::RestClient& client, std::chrono::milliseconds resync_period = {})
      : client_(client), resync_period_(resync_period) {}
  ~SharedInformerFactory() { Stop(); }

  // The informer over all namespaces of `resource`, created on first use.
  SharedInformer& For(const client::ResourceRef& resource);

  // Starts every informer created so far that is not running yet (informers
  // created later need another Start()).
  void Start();
  // True when every started informer synced within `timeout`.
  bool WaitForSync(std::chrono::milliseconds timeout);
  void Stop();

 private:
  client::RestClient& client_;
  const std::chrono::milliseconds resync_period_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<SharedInformer>> informers_;  // by ApiVersion/resource
  std::map<std::string, bool> started_;
};

}  // namespace kelpie::controllers
