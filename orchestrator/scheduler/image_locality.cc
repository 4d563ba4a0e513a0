// ImageLocality: prefers nodes that already hold the pod's images, weighing
// each image's size by the share of nodes that have it (so an image on every
// node does not pull all pods to one), scaled between 23 MB and 1000 MB per
// container as kube-scheduler does.
#include <unordered_map>

#include "orchestrator/scheduler/plugins.h"

namespace kelpie::scheduler {
namespace {

constexpr int64_t kMb = 1024 * 1024;
constexpr int64_t kMinThreshold = 23 * kMb;
constexpr int64_t kMaxContainerThreshold = 1000 * kMb;

struct ImageState : PluginState {
  std::vector<std::string> images;          // normalized names
  std::unordered_map<std::string, int64_t> nodes_with_image;
  int64_t total_nodes = 0;
};

class ImageLocality final : public Plugin {
 public:
  std::string Name() const override { return "ImageLocality"; }
  bool IsScore() const override { return true; }
  void PreScore(CycleState& cycle, const PodInfo& pod, const ClusterView& view,
                const std::vector<const NodeState*>&) const override {
    auto state = std::make_unique<ImageState>();
    for (const auto& image : pod.images) state->images.push_back(NormalizedImageName(image));
    state->total_nodes = static_cast<int64_t>(view.nodes.size());
    for (const auto& image : state->images) state->nodes_with_image[image] = view.cache.NodesWithImage(image);
    cycle.Write(Name(), std::move(state));
  }
  int64_t Score(const CycleState& cycle, const PodInfo&, const NodeState& node) const override {
    const auto* state = cycle.Read<ImageState>(Name());
    if (!state || state->images.empty() || state->total_nodes == 0) return 0;
    int64_t sum = 0;
    for (const auto& image : state->images) {
      auto it = node.node->image_sizes.find(image);
      if (it == node.node->image_sizes.end()) continue;
      double spread = static_cast<double>(state->nodes_with_image.at(image)) / static_cast<double>(state->total_nodes);
      sum += static_cast<int64_t>(static_cast<double>(it->second) * spread);
    }
    int64_t max_threshold = kMaxContainerThreshold * static_cast<int64_t>(state->images.size());
    if (sum < kMinThreshold) sum = kMinThreshold;
    if (sum > max_threshold) sum = max_threshold;
    return kMaxNodeScore * (sum - kMinThreshold) / (max_threshold - kMinThreshold);
  }
};

}  // namespace

std::unique_ptr<Plugin> NewImageLocality() { return std::make_unique<ImageLocality>(); }

}  // namespace kelpie::scheduler
