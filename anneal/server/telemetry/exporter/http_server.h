// A small HTTP server for the telemetry port (/metrics, the status page),
// on civetweb, which prometheus-cpp's own exposer uses. Handlers run on
// civetweb's threads, one request each, and must bound their own work.
#ifndef ANNEAL_SERVER_TELEMETRY_EXPORTER_HTTP_SERVER_H_
#define ANNEAL_SERVER_TELEMETRY_EXPORTER_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

struct mg_connection;
struct mg_context;

namespace anneal {

struct HttpRequest {
  std::string path;                          // "/schedules/run-1"
  std::map<std::string, std::string> query;  // decoded ?k=v&...
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

  // Serves `handlers` (by path: "/a" only itself, "/a/" also every path
  // under it, the longest match winning; "/" only itself) on `listen`
  // ("127.0.0.1:9464"; port 0 picks a free one), with `threads` workers.
  // The error if it cannot listen there.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, std::map<std::string, Handler> handlers,
      int threads = 2);
  ~HttpServer();  // stops serving, waiting for requests in progress

  int port() const { return port_; }

 private:
  HttpServer() = default;
  static int Dispatch(::mg_connection* conn, void* self);

  std::map<std::string, Handler> handlers_;
  mg_context* context_ = nullptr;
  std::string host_;  // where a connection reaches it
  int port_ = 0;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_TELEMETRY_EXPORTER_HTTP_SERVER_H_
