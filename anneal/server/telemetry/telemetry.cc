// The no-op telemetry (see telemetry.h).
#include "anneal/server/telemetry/telemetry.h"

namespace anneal {

RpcTelemetry* Telemetry::Rpc(absl::string_view, absl::string_view,
                             absl::string_view) {
  static RpcTelemetry* const none = new RpcTelemetry();
  return none;
}

Telemetry* NoTelemetry() {
  static Telemetry* const none = new Telemetry();
  return none;
}

}  // namespace anneal
