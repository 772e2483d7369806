// Per-client token buckets (rate_limiter.h), on a clock the test moves.
#include "anneal/server/rate_limiter.h"

#include "gtest/gtest.h"

namespace anneal {
namespace {

TEST(RateLimiterTest, BurstThenRate) {
  RateLimiter limiter(2.0, 3);  // 3 at once, then one every 500 ms
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(limiter.Take("a", t0)) << i;
  std::optional<absl::Duration> wait = limiter.Take("a", t0);
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(*wait, absl::Milliseconds(500));
  // Another client has its own bucket.
  EXPECT_FALSE(limiter.Take("b", t0));
  // 250 ms later half a mutation has come back: 250 ms to go.
  wait = limiter.Take("a", t0 + absl::Milliseconds(250));
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(*wait, absl::Milliseconds(250));
  EXPECT_FALSE(limiter.Take("a", t0 + absl::Milliseconds(500)));
  EXPECT_TRUE(limiter.Take("a", t0 + absl::Milliseconds(500)));
  // Never more than the burst, however long the client was idle.
  const absl::Time later = t0 + absl::Hours(1);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(limiter.Take("a", later)) << i;
  EXPECT_TRUE(limiter.Take("a", later));
}

TEST(RateLimiterTest, ForgetsIdleClients) {
  RateLimiter limiter(1.0, 1);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 5000; ++i) {
    EXPECT_FALSE(limiter.Take("c" + std::to_string(i), t0));
  }
  EXPECT_GT(limiter.clients(), 4096u);
  // An hour on, every bucket is full again: they are dropped.
  EXPECT_FALSE(limiter.Take("new", t0 + absl::Hours(1)));
  EXPECT_EQ(limiter.clients(), 1u);
}

TEST(PeerHostTest, DropsThePort) {
  EXPECT_EQ(PeerHost("ipv4:10.0.0.7:51234"), "ipv4:10.0.0.7");
  EXPECT_EQ(PeerHost("ipv6:[::1]:5"), "ipv6:[::1]");
  EXPECT_EQ(PeerHost("unix:/tmp/s"), "unix:/tmp/s");
}

}  // namespace
}  // namespace anneal
