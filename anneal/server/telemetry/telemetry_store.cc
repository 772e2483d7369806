// The timing Store decorator (see telemetry_store.h).
#include "anneal/server/telemetry/telemetry_store.h"

#include <cstdint>
#include <utility>

#include "absl/time/clock.h"

namespace anneal {

void TelemetryStore::Submit(WriteBatch batch, Done done) {
  const int64_t ops = static_cast<int64_t>(batch.ops().size());
  if (ops == 0) return StoreWrapper::Submit(std::move(batch), std::move(done));
  StoreWrapper::Submit(
      std::move(batch), [telemetry = telemetry_, ops, start = absl::Now(),
                         done = std::move(done)](absl::Status s) mutable {
        telemetry->StoreWritten(ops, absl::Now() - start, s.ok());
        std::move(done)(std::move(s));
      });
}

}  // namespace anneal
