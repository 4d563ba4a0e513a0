// libFuzzer entry point for the rule loader and compiler: any byte string
// must yield a ruleset or an error status, never a crash, hang or leak.
// Built as a fuzzer with clang and KELPIE_FUZZ=ON; otherwise the seed corpus
// is replayed through this same function by detect_fuzz_replay_test.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "control/detect/engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  kelpie::detect::RuleSet rules;
  if (!rules.AddYaml("fuzz.yaml", text).ok()) return 0;
  auto engine = kelpie::detect::Engine::Compile(rules);
  if (!engine.ok()) return 0;
  kelpie::detect::Event event;
  event.proc.name = "sh";
  event.fd.name = "/etc/shadow";
  for (size_t t = 0; t < kelpie::detect::kEventTypeCount; ++t) {
    event.type = static_cast<kelpie::detect::EventType>(t);
    (*engine)->Evaluate(event, [&](const kelpie::detect::CompiledRule& rule) {
      (void)rule.RenderOutput(event);
    });
  }
  (void)(*engine)->DerivePrefilter();
  return 0;
}
