// Replays a fuzz target's seed corpus and its regressions (every input that
// once crashed it) through the same LLVMFuzzerTestOneInput, without
// libFuzzer, so that the regular build and CI run them all. A broken
// invariant aborts the test (fuzz/spec_check.h).
//
// ANNEAL_FUZZ_DIRS: the directories to replay, separated by ';'.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(FuzzReplay, EveryCorpusAndRegressionInputPasses) {
  int replayed = 0;
  for (absl::string_view dir : absl::StrSplit(ANNEAL_FUZZ_DIRS, ';')) {
    const std::filesystem::path path{std::string(dir)};
    if (!std::filesystem::is_directory(path)) continue;  // no regressions yet
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      const std::vector<char> bytes{std::istreambuf_iterator<char>(in),
                                    std::istreambuf_iterator<char>()};
      SCOPED_TRACE(entry.path().string());
      EXPECT_EQ(LLVMFuzzerTestOneInput(
                    reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
                0);
      ++replayed;
    }
  }
  // The seed corpus is in the repository: replaying nothing is a broken path.
  EXPECT_GE(replayed, 3);
}

}  // namespace
