// SpecCache: equal specs share one compiled form while it is alive, each
// caller's spec is still validated under its own limits.
#include "anneal/model/spec_cache.h"

#include "anneal/model/timeline.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using ::testing::HasSubstr;

v1::ScheduleSpec Sgdr(double max_lr) {
  v1::ScheduleSpec spec;
  spec.set_max_lr(max_lr);
  spec.mutable_warm_restarts()->set_period(10);
  spec.mutable_warm_restarts()->set_period_mult(2);
  return spec;
}

TEST(SpecCacheTest, EqualSpecsShareOneFormDistinctOnesDoNot) {
  SpecCache cache;
  auto a = cache.Compile(Sgdr(0.1), {});
  auto b = cache.Compile(Sgdr(0.1), {});
  auto c = cache.Compile(Sgdr(0.2), {});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_NE(a->get(), c->get());
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_DOUBLE_EQ((*c)->At(0).lr, 0.2);
}

TEST(SpecCacheTest, AFormIsFreedWithItsLastUser) {
  SpecCache cache;
  const Schedule* first = nullptr;
  {
    auto a = cache.Compile(Sgdr(0.1), {});
    ASSERT_TRUE(a.ok());
    first = a->get();
    EXPECT_EQ(cache.size(), 1u);
  }
  EXPECT_EQ(cache.size(), 0u);
  // Many distinct specs later, the dead entries are swept, not kept.
  std::vector<std::shared_ptr<const Schedule>> alive;
  for (int i = 1; i <= 500; ++i) {
    auto s = cache.Compile(Sgdr(0.001 * i), {});
    ASSERT_TRUE(s.ok());
    if (i % 2 == 0) alive.push_back(*s);
  }
  EXPECT_EQ(cache.size(), 250u);
  EXPECT_NE(first, nullptr);
}

TEST(SpecCacheTest, EveryCallerIsValidatedUnderItsOwnLimits) {
  SpecCache cache;
  v1::ScheduleSpec heavy = Sgdr(0.1);
  heavy.mutable_momentum()->set_base(0.85);
  heavy.mutable_momentum()->set_max(0.9999);
  auto loaded = cache.Compile(heavy, CompileLimits{int64_t{1} << 40});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto refused = cache.Compile(heavy, CompileLimits{1024});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("compile budget"));
  auto bad = cache.Compile(Sgdr(-1), {});
  EXPECT_FALSE(bad.ok());
}

TEST(SpecCacheTest, TimelinesBuiltWithTheCacheShareTheirForms) {
  SpecCache cache;
  v1::Segment segment;
  *segment.mutable_spec() = Sgdr(0.1);
  google::protobuf::RepeatedPtrField<v1::Segment> segments;
  *segments.Add() = segment;
  auto one = Timeline::Build(segments, {}, &cache);
  auto two = Timeline::Build(segments, {}, &cache);
  auto alone = Timeline::Build(segments, {});
  ASSERT_TRUE(one.ok() && two.ok() && alone.ok());
  EXPECT_EQ((*one)->compiled(0).get(), (*two)->compiled(0).get());
  EXPECT_NE((*one)->compiled(0).get(), (*alone)->compiled(0).get());
  EXPECT_EQ((*one)->At(25).lr, (*alone)->At(25).lr);
}

}  // namespace
}  // namespace anneal
