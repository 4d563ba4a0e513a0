// Replays the API fuzzer's seed corpus, and every prefix of each input,
// through its entry point, so every build exercises the request decoding
// path with malformed input even without clang's libFuzzer. The entry point
// aborts on a crash, a hang, a 5xx answer or a non-JSON answer.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "common/files.h"
#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(ApiBodyFuzzReplay, SeedCorpusAndItsPrefixesGetClientErrorsOrSuccess) {
  size_t replayed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(KELPIE_API_CORPUS_DIR)) {
    auto content = kelpie::ReadFileToString(entry.path().string());
    std::fprintf(stderr, "replaying %s\n", entry.path().filename().c_str());
    ASSERT_TRUE(content.ok()) << content.status();
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(content->data()), content->size()), 0);
    size_t step = std::max<size_t>(1, content->size() / 16);
    for (size_t cut = 1; cut < content->size(); cut += step) {
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(content->data()), cut);
    }
    ++replayed;
  }
  EXPECT_GE(replayed, 20u);
}

}  // namespace
