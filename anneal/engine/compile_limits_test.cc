// The engine's bounds on compiling a spec: the table budget is checked before
// the tables are allocated (counted here with a replaced operator new), the
// sequence nesting depth is a stated rule, and a compiled spec reports what
// it was charged.
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "anneal/engine/schedule.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "gtest/gtest.h"

namespace {
// Live bytes allocated with operator new, and their high-water mark.
std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};
}  // namespace

void* operator new(size_t size) {
  void* p = std::malloc(size);
  if (p == nullptr) throw std::bad_alloc();
  const int64_t live =
      g_live.fetch_add(static_cast<int64_t>(malloc_usable_size(p))) +
      static_cast<int64_t>(malloc_usable_size(p));
  int64_t peak = g_peak.load();
  while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {
  }
  return p;
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  g_live.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)));
  std::free(p);
}
void operator delete(void* p, size_t) noexcept { operator delete(p); }

namespace anneal {
namespace {

// The most bytes live at once while compiling `spec`, above what was live
// before (the parsed spec).
int64_t AllocatedByCompile(const v1::ScheduleSpec& spec,
                           const CompileLimits& limits, absl::Status* status) {
  const int64_t before = g_live.load();
  g_peak.store(before);
  auto compiled = Schedule::Compile(spec, limits);
  const int64_t used = g_peak.load() - before;
  *status = compiled.status();
  return used;
}

// A sequence of `phases` warm_restarts phases, each needing ~65k distinct
// cycles: the shape of the 82 KB request that once cost gigabytes.
v1::ScheduleSpec ManyCyclePhases(int phases) {
  std::string text = "{max_lr: 1, sequence: {phases: [";
  for (int i = 0; i < phases; ++i) {
    absl::StrAppend(&text, i ? ", " : "", "{",
                    i + 1 < phases ? "steps: 1000, " : "",
                    "spec: {warm_restarts: {period: 1000, period_mult: "
                    "1.00055}}}");
  }
  absl::StrAppend(&text, "]}}");
  return SpecFromText(text);
}

TEST(CompileLimitsTest, TablesPastTheBudgetAreRefusedBeforeTheyAreAllocated) {
  absl::Status s;
  const int64_t used =
      AllocatedByCompile(ManyCyclePhases(64), CompileLimits{}, &s);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StrContains(
      s.message(),
      "warm_restarts.period_mult: must fit the compile budget of "
      "4194304 bytes of tables, got more"))
      << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "sequence.phases[")) << s;
  // Allocation stays within a small multiple of the budget (vectors grow by
  // doubling, and the builders hold a few protos).
  EXPECT_LT(used, 3 * kDefaultMaxTableBytes) << used;
}

TEST(CompileLimitsTest, TheBudgetIsAnOption) {
  const v1::ScheduleSpec one = ManyCyclePhases(1);
  absl::Status s;
  AllocatedByCompile(one, CompileLimits{}, &s);
  ASSERT_TRUE(s.ok()) << s;
  auto compiled = Schedule::Compile(one);
  ASSERT_TRUE(compiled.ok());
  const int64_t charged = (*compiled)->table_bytes();
  EXPECT_GT(charged, 50'000 * 16);
  EXPECT_LE(charged, kDefaultMaxTableBytes);
  CompileLimits tight;
  tight.max_table_bytes = charged - 1;
  const int64_t used = AllocatedByCompile(one, tight, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(used, 3 * charged);
  tight.max_table_bytes = charged;
  AllocatedByCompile(one, tight, &s);
  EXPECT_TRUE(s.ok()) << s;
}

TEST(CompileLimitsTest, ManySmallPartsCountToo) {
  // 10 levels of 64 constant phases would be 64^10 parts if it compiled.
  CompileLimits limits;
  limits.max_table_bytes = 64 * kCurveNodeBytes;
  std::string text = "{max_lr: 1, sequence: {phases: [";
  for (int i = 0; i < 64; ++i) {
    absl::StrAppend(&text, i ? ", " : "", "{", i < 63 ? "steps: 1, " : "",
                    "spec: {constant: {}}}");
  }
  absl::StrAppend(&text, "]}}");
  auto compiled = Schedule::Compile(SpecFromText(text), limits);
  ASSERT_EQ(compiled.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(compiled.status().message(),
                                "sequence.phases[63].spec: must fit"))
      << compiled.status();
}

TEST(CompileLimitsTest, MomentumTablesAreCharged) {
  auto low = CompileText(
      "{max_lr: 1, cosine: {period: 100}, momentum: {base: 0.85, max: 0.95}}");
  auto high = CompileText(
      "{max_lr: 1, cosine: {period: 100}, momentum: {base: 0.99, max: "
      "0.9999}}");
  ASSERT_NE(low, nullptr);
  ASSERT_NE(high, nullptr);
  EXPECT_GT(high->table_bytes(), low->table_bytes());
  EXPECT_GE(high->table_bytes(), 16384 * 8);  // the full prefix table
  CompileLimits tight;
  tight.max_table_bytes = 64 << 10;
  auto refused = Schedule::Compile(high->spec(), tight);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::StartsWith(refused.status().message(),
                               "momentum: must fit the compile budget"))
      << refused.status();
}

std::string Nested(int depth) {
  std::string text = "{constant: {}}";
  for (int i = 0; i < depth; ++i) {
    text = absl::StrCat("{sequence: {phases: [{steps: 5, spec: {cosine: ",
                        "{period: 5}}}, {spec: ", text, "}]}}");
  }
  return absl::StrCat("{max_lr: 1, ", text.substr(1));
}

TEST(CompileLimitsTest, SequencesNestAtMostEightDeep) {
  EXPECT_EQ(CompileError(Nested(kMaxSequenceDepth)), "");
  const std::string error = CompileError(Nested(kMaxSequenceDepth + 1));
  EXPECT_TRUE(absl::EndsWith(error,
                             "sequence: sequences may nest at most 8 "
                             "deep, got 9"))
      << error;
  EXPECT_TRUE(absl::StartsWith(error, "sequence.phases[1].spec.sequence"))
      << error;
}

}  // namespace
}  // namespace anneal
