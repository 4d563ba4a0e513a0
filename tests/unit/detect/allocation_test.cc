// Evaluate must not allocate per event: this binary counts every call of the
// global allocator while the default ruleset evaluates a mix of events,
// matching ones included (output rendering is the caller's choice and is left
// out).
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "control/detect/engine.h"
#include "gtest/gtest.h"

namespace {
std::atomic<bool> counting{false};
std::atomic<size_t> allocations{0};
}  // namespace

void* operator new(size_t size) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace kelpie::detect {
namespace {

TEST(AllocationTest, EvaluateAllocatesNothing) {
  auto rules = RuleSet::LoadFiles({std::string(KELPIE_DETECT_RULES_DIR) + "/default.yaml"});
  ASSERT_TRUE(rules.ok()) << rules.status();
  auto engine = Engine::Compile(*rules);
  ASSERT_TRUE(engine.ok()) << engine.status();

  const PodLabel labels[] = {{"app", "web"}};
  Event events[6];
  for (Event& e : events) {
    e.proc.name = "sh";
    e.proc.exepath = "/bin/sh";
    e.proc.ancestors = {"nginx", "containerd-shim"};
    e.proc.ancestor_count = 2;
    e.proc.tty = 1;
    e.container.id = "abc";
    e.container.k8s_pod_labels = labels;
  }
  events[0].type = EventType::kExecve;  // matches two shell rules
  events[1].type = EventType::kOpen;
  events[1].fd.name = "/etc/shadow";    // matches
  events[2].type = EventType::kOpen;
  events[2].fd.name = "/var/log/auth.log";
  events[2].arg.flags = 01 | 01000;     // matches
  events[3].type = EventType::kConnect;
  events[3].fd.type = "ipv4";
  events[3].fd.dip = "10.96.0.1";
  events[3].fd.dport = 443;              // matches
  events[4].type = EventType::kOpen;
  events[4].fd.name = "/app/index.html";  // quiet
  events[5].type = EventType::kDup;
  events[5].fd.type = "ipv4";
  events[5].arg.newfd = 0;               // matches

  // The counter itself works: rendering an output allocates.
  allocations = 0;
  counting = true;
  (*engine)->Evaluate(events[0], [&](const CompiledRule& rule) {
    EXPECT_FALSE(rule.RenderOutput(events[0]).empty());
  });
  counting = false;
  ASSERT_GT(allocations.load(), 0u);

  size_t matches = 0;
  allocations = 0;
  counting = true;
  for (int round = 0; round < 100; ++round) {
    for (const Event& event : events) {
      matches += (*engine)->Evaluate(event, [](const CompiledRule&) {});
    }
  }
  counting = false;
  EXPECT_GE(matches, 500u);
  EXPECT_EQ(allocations.load(), 0u);
}

}  // namespace
}  // namespace kelpie::detect
