// Opening a Store by URL (see store_url.h).
#include "anneal/server/store_url.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "anneal/engine/field_error.h"
#include "anneal/server/store/memory/memory_store.h"
#include "anneal/server/store/sqlite/sqlite_store.h"

namespace anneal {

absl::StatusOr<std::unique_ptr<Store>> OpenStore(
    const std::string& url, const StoreUrlOptions& options) {
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "sqlite:")) {
    absl::ConsumePrefix(&rest, "//");
    if (rest.empty()) {
      return absl::InvalidArgumentError(
          "--store: sqlite: needs a file, as in sqlite:///data/anneal.db");
    }
    SqliteStoreOptions sqlite;
    sqlite.busy_timeout_ms = static_cast<int>(
        absl::ToInt64Milliseconds(options.sqlite_busy_timeout));
    sqlite.cache_mib = options.sqlite_cache_mib;
    return OpenSqliteStore(std::string(rest), sqlite);
  }
  if (url == "memory:" || url == "memory://") return NewMemoryStore();
  return absl::InvalidArgumentError(absl::StrCat(
      "--store: must be sqlite:///PATH or memory:, got ", QuoteValue(url)));
}

}  // namespace anneal
