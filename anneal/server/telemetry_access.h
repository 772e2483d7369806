// Who may read the telemetry port (/metrics and the status page) when
// --metrics_require_token is set: any token of --tokens_file that is not
// limited to a label (the page and /metrics show every schedule), as
//   Authorization: Bearer TOKEN          (Prometheus `authorization`)
//   Authorization: Basic base64(NAME:TOKEN)   (browsers; Prometheus
//                                              `basic_auth`, NAME ignored)
// Everything else gets a 401 that asks for basic auth, or a 403 for a
// label-scoped token.
#ifndef ANNEAL_SERVER_TELEMETRY_ACCESS_H_
#define ANNEAL_SERVER_TELEMETRY_ACCESS_H_

#include <optional>

#include "anneal/server/authz.h"
#include "anneal/server/telemetry/exporter/http_server.h"

namespace anneal {

// nullopt when `request` may be served, else the refusal to send.
std::optional<HttpResponse> CheckTelemetryAccess(const Authorizer& authorizer,
                                                 const HttpRequest& request);

}  // namespace anneal

#endif  // ANNEAL_SERVER_TELEMETRY_ACCESS_H_
