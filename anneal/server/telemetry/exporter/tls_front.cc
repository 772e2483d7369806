// TLS termination for the telemetry port (see tls_front.h). One thread
// accepts; each connection gets a thread that does the handshake and then
// relays bytes both ways until either side closes, the connection idles
// past the timeout, or the front stops.
#include "anneal/server/telemetry/exporter/tls_front.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace anneal {
namespace {

// "host:port" / "[v6]:port" / ":port" as (host, port); host "" is any.
bool SplitListen(const std::string& listen, std::string* host,
                 std::string* port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  *host = listen.substr(0, colon);
  *port = listen.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  int number = 0;
  return absl::SimpleAtoi(*port, &number) && number >= 0 && number <= 65535;
}

void SetTimeout(int fd, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

bool SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsFront>> TlsFront::Start(
    const std::string& listen, int backend_port,
    std::unique_ptr<HttpTlsContext> tls, Options options) {
  std::string host, port;
  if (!SplitListen(listen, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen on ", listen, ": not host:port"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (const int e = getaddrinfo(host.empty() ? nullptr : host.c_str(),
                                port.c_str(), &hints, &found);
      e != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", listen, ": ", gai_strerror(e)));
  }
  std::unique_ptr<TlsFront> front(new TlsFront());
  std::string error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 64) == 0) {
      front->listen_fd_ = fd;
      break;
    }
    error = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(found);
  if (front->listen_fd_ < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", listen, ": ", error));
  }
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  getsockname(front->listen_fd_, reinterpret_cast<sockaddr*>(&bound), &length);
  front->port_ = ntohs(bound.ss_family == AF_INET6
                           ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                           : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr || pipe2(front->stop_pipe_, O_CLOEXEC) != 0) {
    if (ctx != nullptr) SSL_CTX_free(ctx);
    return absl::InternalError("telemetry TLS: cannot set up OpenSSL");
  }
  front->ssl_ctx_ = ctx;
  front->tls_ = std::move(tls);
  front->tls_->Configure(ctx);
  front->options_ = options;
  front->backend_port_ = backend_port;
  front->acceptor_ = std::thread([f = front.get()] { f->AcceptLoop(); });
  return front;
}

TlsFront::~TlsFront() {
  if (stop_pipe_[1] >= 0) {
    const char byte = 0;
    (void)!write(stop_pipe_[1], &byte, 1);
  }
  if (acceptor_.joinable()) acceptor_.join();
  std::list<Connection> connections;
  {
    absl::MutexLock lock(&mu_);
    // Wakes a thread blocked in a handshake or a read at once, instead of
    // after the idle timeout (a silent client must not delay shutdown).
    for (Connection& c : connections_) {
      if (c.fd >= 0) shutdown(c.fd, SHUT_RDWR);
    }
    connections.swap(connections_);
  }
  for (Connection& c : connections) c.thread.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  for (int fd : stop_pipe_) {
    if (fd >= 0) close(fd);
  }
  SSL_CTX_free(static_cast<SSL_CTX*>(ssl_ctx_));
}

void TlsFront::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    absl::MutexLock lock(&mu_);
    // Threads that have finished are joined here, so they never pile up.
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->done.load()) {
        it->thread.join();
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
    if (static_cast<int>(connections_.size()) >= options_.max_connections) {
      close(fd);
      continue;
    }
    Connection& c = connections_.emplace_back();
    c.fd = fd;
    c.thread = std::thread([this, fd, &c] { Relay(fd, &c); });
  }
}

void TlsFront::Relay(int client_fd, Connection* self) {
  // A peer that has gone makes a write raise SIGPIPE in this thread:
  // blocked here, the write fails with EPIPE instead.
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
  SetTimeout(client_fd, options_.idle_timeout_ms);
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ssl_ctx_));
  int backend_fd = -1;
  if (ssl != nullptr && SSL_set_fd(ssl, client_fd) == 1 &&
      SSL_accept(ssl) == 1) {
    backend_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in backend{};
    backend.sin_family = AF_INET;
    backend.sin_port = htons(static_cast<uint16_t>(backend_port_));
    backend.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (backend_fd >= 0 &&
        connect(backend_fd, reinterpret_cast<sockaddr*>(&backend),
                sizeof(backend)) != 0) {
      close(backend_fd);
      backend_fd = -1;
    }
  }
  char buffer[16384];
  while (backend_fd >= 0) {
    pollfd fds[3] = {{client_fd, POLLIN, 0},
                     {backend_fd, POLLIN, 0},
                     {stop_pipe_[0], POLLIN, 0}};
    // Bytes OpenSSL has already decrypted do not show on the socket.
    const int ready =
        SSL_pending(ssl) > 0 ? 1 : poll(fds, 3, options_.idle_timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || fds[2].revents != 0) break;  // idle, error, stopping
    if (SSL_pending(ssl) > 0 || (fds[0].revents & (POLLIN | POLLHUP)) != 0) {
      const int n = SSL_read(ssl, buffer, sizeof(buffer));
      if (n <= 0 || !SendAll(backend_fd, buffer, static_cast<size_t>(n))) {
        break;
      }
    }
    if ((fds[1].revents & (POLLIN | POLLHUP)) != 0) {
      const ssize_t n = recv(backend_fd, buffer, sizeof(buffer), 0);
      if (n <= 0 || SSL_write(ssl, buffer, static_cast<int>(n)) <= 0) break;
    }
    if ((fds[0].revents | fds[1].revents) & (POLLERR | POLLNVAL)) break;
  }
  if (ssl != nullptr) {
    SSL_shutdown(ssl);
    SSL_free(ssl);
  }
  ERR_clear_error();
  if (backend_fd >= 0) close(backend_fd);
  {
    absl::MutexLock lock(&mu_);
    self->fd = -1;  // before close: the number may be reused at once
  }
  close(client_fd);
  self->done.store(true);
}

}  // namespace anneal
