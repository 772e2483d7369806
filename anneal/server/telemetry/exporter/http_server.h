// A small HTTP server for the telemetry port (/metrics, the status page),
// on civetweb, which prometheus-cpp's own exposer uses. Handlers run on
// civetweb's threads, one request each, and must bound their own work.
// Optionally over HTTPS (tls_front.h), and behind a guard that may refuse a
// request before any handler sees it (the token check, in the server).
#ifndef ANNEAL_SERVER_TELEMETRY_EXPORTER_HTTP_SERVER_H_
#define ANNEAL_SERVER_TELEMETRY_EXPORTER_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "anneal/server/telemetry/exporter/http_tls.h"
#include "anneal/server/telemetry/exporter/tls_front.h"

struct mg_connection;
struct mg_context;

namespace anneal {

struct HttpRequest {
  std::string path;                          // "/schedules/run-1"
  std::map<std::string, std::string> query;  // decoded ?k=v&...
  bool has_authorization = false;            // an Authorization header?
  std::string authorization = {};            // its value
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // More headers, e.g. a Content-Security-Policy.
  std::vector<std::pair<std::string, std::string>> headers = {};
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Answers a request itself (a 401, say) or returns nullopt to let it
  // through to its handler.
  using Guard = std::function<std::optional<HttpResponse>(const HttpRequest&)>;

  struct Options {
    // Connections served at once, a thread each.
    int threads = 8;
    // An idle connection (no request yet, or none since the last answer)
    // is closed after this, so idle clients cannot hold every thread.
    absl::Duration request_timeout = absl::Seconds(3);
    std::optional<HttpTlsFiles> tls;  // set: HTTPS only
    Guard guard;                      // empty: every request goes through
  };

  // Serves `handlers` (by path: "/a" only itself, "/a/" also every path
  // under it, the longest match winning; "/" only itself) on `listen`
  // ("127.0.0.1:9464"; port 0 picks a free one). The error if it cannot
  // listen there or read the TLS files.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, std::map<std::string, Handler> handlers,
      Options options);
  ~HttpServer();  // stops serving, waiting for requests in progress

  // Where clients connect (the TLS front's port with Options::tls).
  int port() const { return front_ ? front_->port() : port_; }

 private:
  HttpServer() = default;
  static int Dispatch(::mg_connection* conn, void* self);

  std::map<std::string, Handler> handlers_;
  Guard guard_;
  std::unique_ptr<TlsFront> front_;  // with Options::tls
  absl::Mutex mu_;
  std::string last_error_ ABSL_GUARDED_BY(mu_);  // civetweb's messages
  mg_context* context_ = nullptr;
  std::string host_;  // where a connection reaches civetweb
  int port_ = 0;      // civetweb's port
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_TELEMETRY_EXPORTER_HTTP_SERVER_H_
