// Replays a fuzz target's seed corpus and its regressions (every input that
// once crashed it) through the same LLVMFuzzerTestOneInput, without
// libFuzzer, so that the regular build and CI run them all. A broken
// invariant aborts the test (fuzz/spec_check.h).
//
// ANNEAL_FUZZ_CORPUS_DIR, ANNEAL_FUZZ_REGRESSIONS_DIR: what to replay;
// ANNEAL_FUZZ_SUITE: the test suite's name (one per target).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(ANNEAL_FUZZ_SUITE, EveryCorpusAndRegressionInputPasses) {
  int replayed = 0;
  for (const char* dir :
       {ANNEAL_FUZZ_CORPUS_DIR, ANNEAL_FUZZ_REGRESSIONS_DIR}) {
    const std::filesystem::path path{dir};
    if (!std::filesystem::is_directory(path)) continue;  // no regressions yet
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      const std::vector<char> bytes{std::istreambuf_iterator<char>(in),
                                    std::istreambuf_iterator<char>()};
      SCOPED_TRACE(entry.path().string());
      EXPECT_EQ(
          LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                                 bytes.size()),
          0);
      ++replayed;
    }
  }
  // The seed corpus is in the repository: replaying nothing is a broken path.
  EXPECT_GE(replayed, 3);
}

}  // namespace
