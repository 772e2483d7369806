// Which Store the server runs on, chosen by URL (--store):
//
//   sqlite:///var/lib/anneal/anneal.db   the SQLite file (sqlite://anneal.db
//                                        for a relative path)
//   memory:                              in memory: nothing survives the
//                                        process (demos and tests)
//
// A new backend (postgres://...) is one more case here and one more folder
// beside anneal/server/store/sqlite/.
#ifndef ANNEAL_SERVER_STORE_URL_H_
#define ANNEAL_SERVER_STORE_URL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "anneal/server/store/store.h"

namespace anneal {

struct StoreUrlOptions {
  // How long a SQLite write waits for another connection's lock.
  absl::Duration sqlite_busy_timeout = absl::Seconds(5);
  int sqlite_cache_mib = 64;
};

// Opens the store `url` names. INVALID_ARGUMENT naming --store for a URL
// that names no backend; the backend's own error if it cannot open.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(
    const std::string& url, const StoreUrlOptions& options = {});

}  // namespace anneal

#endif  // ANNEAL_SERVER_STORE_URL_H_
