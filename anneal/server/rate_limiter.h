// Per-client token buckets for mutations (--mutation_rate, --mutation_burst).
//
// Each client (a token's name, else the peer's address without its port)
// holds up to `burst` mutations and gains `per_second` of them back each
// second. gRPC-independent: the edge turns a refusal into
// RESOURCE_EXHAUSTED with a google.rpc.RetryInfo.
#ifndef ANNEAL_SERVER_RATE_LIMITER_H_
#define ANNEAL_SERVER_RATE_LIMITER_H_

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace anneal {

class RateLimiter {
 public:
  // per_second > 0, burst >= 1.
  RateLimiter(double per_second, int burst);

  // Takes one mutation from `client`'s bucket at `now`: nullopt if there
  // was one, else how long until there is.
  std::optional<absl::Duration> Take(absl::string_view client, absl::Time now);

  double per_second() const { return per_second_; }
  int burst() const { return burst_; }
  size_t clients() const;

 private:
  struct Bucket {
    double tokens;
    absl::Time last;
  };
  // Forgets clients whose buckets are full again (they lose nothing).
  void Prune(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const double per_second_;
  const int burst_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

// The client key of a gRPC peer string: "ipv4:10.0.0.7:51234" ->
// "ipv4:10.0.0.7", "ipv6:[::1]:5" -> "ipv6:[::1]"; others as they are.
std::string PeerHost(absl::string_view peer);

}  // namespace anneal

#endif  // ANNEAL_SERVER_RATE_LIMITER_H_
