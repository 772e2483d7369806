// The server's TLS files, checked at start (gRPC's file watcher would only
// fail every handshake later, logging at most a line).
#ifndef ANNEAL_SERVER_TLS_FILES_H_
#define ANNEAL_SERVER_TLS_FILES_H_

#include <string>

#include "absl/status/status.h"

namespace anneal {

// OK if `cert` holds a PEM certificate chain, `key` the PEM private key of
// its first certificate, and `client_ca` (when not empty) PEM CA
// certificates. FAILED_PRECONDITION naming the flag otherwise.
absl::Status CheckTlsFiles(const std::string& cert, const std::string& key,
                           const std::string& client_ca);

}  // namespace anneal

#endif  // ANNEAL_SERVER_TLS_FILES_H_
