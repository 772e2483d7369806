// Who may call what: bearer tokens with roles, read from --tokens_file.
//
// gRPC-independent: the edge (schedule_service.cc) hands in the value of
// the `authorization` metadata and the method's name, and gets back a
// Principal or an absl::Status (UNAUTHENTICATED, PERMISSION_DENIED) that it
// maps at the edge like every other error.
//
// The tokens file holds one token a line (docs/security.md):
//   # name      role      sha256 of the token (64 hex)   [label selector]
//   vision-ci   trainer   9f86d081884c7d65...            team=vision
//   ops         operator  60303ae22b998861...
// Only the SHA-256 of each token is stored. A presented token is hashed and
// compared with every stored hash in constant time. Tokens and hashes are
// never logged.
//
// Roles nest: reader < trainer < operator. A token with a label selector
// key=value sees and manages only schedules carrying that label.
#ifndef ANNEAL_SERVER_AUTHZ_H_
#define ANNEAL_SERVER_AUTHZ_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/map.h"

namespace anneal {

enum class Role { kReader = 0, kTrainer = 1, kOperator = 2 };

absl::string_view RoleName(Role role);

// The role a method of anneal.v1.ScheduleService needs ("CreateSchedule",
// ...). An unknown method needs operator (fail closed).
Role RequiredRole(absl::string_view method);

using Sha256 = std::array<uint8_t, 32>;
Sha256 HashToken(absl::string_view token);
std::string HexOf(const Sha256& digest);

struct TokenEntry {
  std::string name;
  Role role = Role::kReader;
  Sha256 hash{};
  // The label selector; empty key: every schedule.
  std::string label_key;
  std::string label_value;
};

// Who is calling.
struct Principal {
  // The token's name; "" when the server has no tokens file (open).
  std::string name;
  Role role = Role::kOperator;
  std::string label_key;
  std::string label_value;
  // The SHA-256 of the token it presented (a long stream rechecks it when
  // the tokens are reloaded); zero without one.
  Sha256 token_hash{};

  bool authenticated() const { return !name.empty(); }
  bool scoped() const { return !label_key.empty(); }
};

// The tokens file's text as entries, or INVALID_ARGUMENT naming the line.
absl::StatusOr<std::vector<TokenEntry>> ParseTokens(absl::string_view text);

class Authorizer {
 public:
  // Open: no tokens; every caller is an unauthenticated operator.
  Authorizer() = default;

  // Reads and parses `path` and, only if that succeeds, replaces the tokens
  // (the previous ones stay in force on an error). Enables checking.
  absl::Status LoadFile(const std::string& path);
  // The same from text (tests).
  absl::Status LoadText(absl::string_view text);

  bool enabled() const;
  size_t size() const;
  // Changes at every successful load: a stream that authenticated under an
  // older one rechecks its caller (StillValid).
  uint64_t generation() const {
    return generation_.load(std::memory_order_acquire);
  }

  // The caller of a request whose `authorization` metadata is `header`
  // (`present` false: none sent). UNAUTHENTICATED without a valid token.
  absl::StatusOr<Principal> Authenticate(bool present,
                                         absl::string_view header) const;

  // OK if `principal` may call `method`, else PERMISSION_DENIED saying
  // which role is needed.
  static absl::Status Permit(const Principal& principal,
                             absl::string_view method);

  // OK if the token `principal` authenticated with is still in the tokens
  // with the same name, role and label selector; else UNAUTHENTICATED (a
  // removed or changed token: the caller must authenticate again).
  absl::Status StillValid(const Principal& principal) const;

 private:
  mutable absl::Mutex mu_;
  bool enabled_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const std::vector<TokenEntry>> tokens_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> generation_{0};
};

// Whether a listen address (host:port, [v6]:port, unix:path) is reachable
// from this host only: 127.0.0.0/8, ::1, localhost or a unix socket.
// Anything else, names included, counts as reachable from the network.
bool IsLoopbackListen(absl::string_view address);

// Label scoping, for tokens with a selector (no-ops without one).
//
// Whether `labels` carries the principal's selector.
bool InScope(const Principal& principal,
             const google::protobuf::Map<std::string, std::string>& labels);
// `filter` (a ListSchedules/WatchSchedules filter) narrowed to the
// principal's selector.
std::string ScopedFilter(const Principal& principal, absl::string_view filter);
// PERMISSION_DENIED naming `field` unless `labels` keep the selector (a
// scoped token may not create or relabel a schedule out of its scope).
absl::Status CheckLabelsInScope(
    const Principal& principal, absl::string_view field,
    const google::protobuf::Map<std::string, std::string>& labels);

}  // namespace anneal

#endif  // ANNEAL_SERVER_AUTHZ_H_
