// HTTPS for the telemetry port: the certificate and key the TLS front
// (tls_front.h) serves, read from PEM files and read again, at most every
// `reload_interval`, by the first handshake after it has passed. A file
// that cannot be read then (mid-rotation, say) keeps the previous pair in
// service; the server never serves without one.
#ifndef ANNEAL_SERVER_TELEMETRY_EXPORTER_HTTP_TLS_H_
#define ANNEAL_SERVER_TELEMETRY_EXPORTER_HTTP_TLS_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace anneal {

struct HttpTlsFiles {
  std::string cert;  // PEM certificate chain, leaf first
  std::string key;   // PEM private key of the leaf
  absl::Duration reload_interval = absl::Minutes(1);
};

class HttpTlsContext {
 public:
  // Reads the pair; FAILED_PRECONDITION naming the file if it cannot.
  static absl::StatusOr<std::unique_ptr<HttpTlsContext>> Load(
      HttpTlsFiles files);
  ~HttpTlsContext();

  // Sets up `ssl_ctx` (an SSL_CTX*): TLS 1.2 or later, and the current
  // pair on every handshake.
  void Configure(void* ssl_ctx);

 private:
  struct Pair;
  explicit HttpTlsContext(HttpTlsFiles files) : files_(std::move(files)) {}
  static absl::StatusOr<std::shared_ptr<const Pair>> Read(
      const HttpTlsFiles& files);
  static int OnHandshake(void* ssl, void* self);
  std::shared_ptr<const Pair> Current();

  const HttpTlsFiles files_;
  absl::Mutex mu_;
  std::shared_ptr<const Pair> pair_ ABSL_GUARDED_BY(mu_);
  absl::Time read_at_ ABSL_GUARDED_BY(mu_);
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_TELEMETRY_EXPORTER_HTTP_TLS_H_
