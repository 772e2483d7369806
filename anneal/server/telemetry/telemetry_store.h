// A Store decorator that tells telemetry how long each submitted batch
// waited to become durable (leveldb's EnvWrapper, Ray's observable store
// client): the registry writes through it and never times anything itself.
#ifndef ANNEAL_SERVER_TELEMETRY_TELEMETRY_STORE_H_
#define ANNEAL_SERVER_TELEMETRY_TELEMETRY_STORE_H_

#include "anneal/server/store/store.h"
#include "anneal/server/telemetry/telemetry.h"

namespace anneal {

class TelemetryStore : public StoreWrapper {
 public:
  // `target` and `telemetry` must outlive this.
  TelemetryStore(Store* target, Telemetry* telemetry)
      : StoreWrapper(target), telemetry_(telemetry) {}

  // Times `batch` from now until `done` runs, and counts its ops. Empty
  // batches (a retry waiting for an earlier write) are not counted.
  void Submit(WriteBatch batch, Done done) override;

 private:
  Telemetry* const telemetry_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_TELEMETRY_TELEMETRY_STORE_H_
