// Replays the seed corpus through the fuzzer's entry point, so every build
// exercises it even without clang's libFuzzer.
#include <cstdint>
#include <filesystem>
#include <string>

#include "common/files.h"
#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(RuleParserFuzzReplay, SeedCorpusRunsCleanly) {
  size_t replayed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(KELPIE_DETECT_CORPUS_DIR)) {
    auto content = kelpie::ReadFileToString(entry.path().string());
    ASSERT_TRUE(content.ok()) << content.status();
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(content->data()), content->size()), 0);
    // Every prefix too: truncated files are the commonest malformed input.
    for (size_t cut = 0; cut < content->size(); cut += 7) {
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(content->data()), cut);
    }
    ++replayed;
  }
  EXPECT_GE(replayed, 5u);
}

TEST(RuleParserFuzzReplay, DefaultRulesetRunsCleanly) {
  auto content = kelpie::ReadFileToString(std::string(KELPIE_DETECT_RULES_DIR) + "/default.yaml");
  ASSERT_TRUE(content.ok()) << content.status();
  EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(content->data()), content->size()), 0);
}

}  // namespace
