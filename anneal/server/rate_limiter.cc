// Per-client token buckets (see rate_limiter.h).
#include "anneal/server/rate_limiter.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"

namespace anneal {
namespace {

// Past this many clients, full buckets are forgotten.
constexpr size_t kPruneAbove = 4096;

}  // namespace

RateLimiter::RateLimiter(double per_second, int burst)
    : per_second_(per_second), burst_(std::max(burst, 1)) {}

std::optional<absl::Duration> RateLimiter::Take(absl::string_view client,
                                                absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] =
      buckets_.try_emplace(client, Bucket{static_cast<double>(burst_), now});
  Bucket& b = it->second;
  if (!inserted) {
    const double gained =
        std::max(0.0, absl::ToDoubleSeconds(now - b.last)) * per_second_;
    b.tokens = std::min<double>(burst_, b.tokens + gained);
    b.last = std::max(b.last, now);
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    if (inserted && buckets_.size() > kPruneAbove) Prune(now);
    return std::nullopt;
  }
  const double missing = 1 - b.tokens;
  return absl::Milliseconds(std::ceil(missing / per_second_ * 1000));
}

void RateLimiter::Prune(absl::Time now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const Bucket& b = it->second;
    const double tokens =
        b.tokens + absl::ToDoubleSeconds(now - b.last) * per_second_;
    if (tokens >= burst_) {
      buckets_.erase(it++);
    } else {
      ++it;
    }
  }
}

size_t RateLimiter::clients() const {
  absl::MutexLock lock(&mu_);
  return buckets_.size();
}

std::string PeerHost(absl::string_view peer) {
  if (!absl::StartsWith(peer, "ipv4:") && !absl::StartsWith(peer, "ipv6:")) {
    return std::string(peer);
  }
  const size_t colon = peer.rfind(':');
  if (colon <= 4) return std::string(peer);
  return std::string(peer.substr(0, colon));
}

}  // namespace anneal
