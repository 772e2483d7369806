// A directory for the running test's files: created on first use, removed
// with everything in it when the test ends, so that a run leaves nothing in
// the system's temporary directory.
#ifndef ANNEAL_TESTS_TEST_DIR_H_
#define ANNEAL_TESTS_TEST_DIR_H_

#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace anneal {

namespace internal {
class TestDirCleaner : public testing::EmptyTestEventListener {
 public:
  void OnTestEnd(const testing::TestInfo&) override {
    if (path.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
    path.clear();
  }
  std::string path;
};
}  // namespace internal

// The running test's directory, ending in '/'.
inline const std::string& TestDir() {
  static internal::TestDirCleaner* cleaner = [] {
    auto* c = new internal::TestDirCleaner;
    testing::UnitTest::GetInstance()->listeners().Append(c);  // owns it
    return c;
  }();
  if (cleaner->path.empty()) {
    const testing::TestInfo* info =
        testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "anneal_";
    name += info ? std::string(info->test_suite_name()) + "." + info->name()
                 : "global";
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    std::string path = testing::TempDir();
    if (path.empty() || path.back() != '/') path += '/';
    path += name + "_" + std::to_string(getpid()) + "/";
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
    std::filesystem::create_directories(path);
    cleaner->path = path;
  }
  return cleaner->path;
}

}  // namespace anneal

#endif  // ANNEAL_TESTS_TEST_DIR_H_
