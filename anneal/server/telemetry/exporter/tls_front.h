// TLS termination in front of the telemetry port's HTTP server: accepts
// HTTPS connections on the public address and relays each, decrypted, to
// the HTTP server listening on loopback.
//
// Why not civetweb's own TLS: Debian 12's civetweb 1.15 is built against
// the OpenSSL 1.1 symbol table it loads at run time, and fails to start on
// OpenSSL 3 ("load_tls_dll: libssl.so: cannot find
// SSL_get_peer_certificate"). This links OpenSSL 3 directly.
#ifndef ANNEAL_SERVER_TELEMETRY_EXPORTER_TLS_FRONT_H_
#define ANNEAL_SERVER_TELEMETRY_EXPORTER_TLS_FRONT_H_

#include <atomic>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "anneal/server/telemetry/exporter/http_tls.h"

namespace anneal {

class TlsFront {
 public:
  struct Options {
    int max_connections = 64;  // more are closed at once
    // A handshake or a connection with no traffic for this long is closed.
    int idle_timeout_ms = 30000;
  };

  // Listens on `listen` ("host:port", "[v6]:port"; port 0 picks one) and
  // relays to 127.0.0.1:`backend_port`. The error if it cannot listen.
  static absl::StatusOr<std::unique_ptr<TlsFront>> Start(
      const std::string& listen, int backend_port,
      std::unique_ptr<HttpTlsContext> tls, Options options);
  // Stops accepting and closes every connection (a handshake in progress
  // too), waiting for their threads.
  ~TlsFront();

  int port() const { return port_; }

 private:
  struct Connection {
    std::thread thread;
    std::atomic<bool> done{false};
    int fd = -1;  // the client's socket while open (guarded by mu_)
  };
  TlsFront() = default;
  void AcceptLoop();
  void Relay(int client_fd, Connection* self);

  std::unique_ptr<HttpTlsContext> tls_;
  void* ssl_ctx_ = nullptr;  // SSL_CTX*
  Options options_;
  int backend_port_ = 0;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};  // readable once stopping
  int port_ = 0;
  std::thread acceptor_;
  absl::Mutex mu_;
  std::list<Connection> connections_ ABSL_GUARDED_BY(mu_);
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_TELEMETRY_EXPORTER_TLS_FRONT_H_
