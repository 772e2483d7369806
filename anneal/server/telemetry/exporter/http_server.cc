// The telemetry port's HTTP server on civetweb (see http_server.h).
#include "anneal/server/telemetry/exporter/http_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace anneal {
namespace {

std::string Decode(absl::string_view text, bool form = true) {
  std::string out(text.size() + 1, '\0');
  const int n =
      mg_url_decode(text.data(), static_cast<int>(text.size()), out.data(),
                    static_cast<int>(out.size()), form ? 1 : 0);
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    default:
      return "Error";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, std::map<std::string, Handler> handlers,
    Options options) {
  static const unsigned init = mg_init_library(0);
  (void)init;
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->handlers_ = std::move(handlers);
  server->guard_ = std::move(options.guard);
  std::unique_ptr<HttpTlsContext> tls;
  if (options.tls.has_value()) {
    absl::StatusOr<std::unique_ptr<HttpTlsContext>> loaded =
        HttpTlsContext::Load(*options.tls);
    if (!loaded.ok()) return loaded.status();
    tls = *std::move(loaded);
  }
  const std::string thread_count = std::to_string(options.threads);
  const std::string timeout_ms =
      std::to_string(absl::ToInt64Milliseconds(options.request_timeout));
  // Behind TLS, civetweb serves loopback only and the front the address.
  const std::string listening = tls ? "127.0.0.1:0" : listen;
  const char* config[] = {"listening_ports", listening.c_str(), "num_threads",
                          thread_count.c_str(), "enable_keep_alive", "yes",
                          "request_timeout_ms", timeout_ms.c_str(),
                          "keep_alive_timeout_ms", timeout_ms.c_str(),
                          // Decoded here, whole: civetweb's own decoding
                          // ends the path at a %00.
                          "decode_url", "no", nullptr};
  mg_callbacks callbacks{};
  // Without this civetweb prints its errors to stderr unprefixed; kept,
  // they explain a failed start.
  callbacks.log_message = [](const mg_connection* conn, const char* message) {
    auto* self =
        static_cast<HttpServer*>(mg_get_user_data(mg_get_context(conn)));
    if (self != nullptr && message != nullptr) {
      absl::MutexLock lock(&self->mu_);
      if (self->last_error_.size() < 1024 &&
          self->last_error_.find(message) == std::string::npos) {
        absl::StrAppend(&self->last_error_,
                        self->last_error_.empty() ? "" : "; ", message);
      }
    }
    return 1;
  };
  char error[256] = {0};
  mg_init_data init_data{};
  init_data.callbacks = &callbacks;
  init_data.user_data = server.get();
  init_data.configuration_options = config;
  mg_error_data error_data{};
  error_data.text = error;
  error_data.text_buffer_size = sizeof(error);
  server->context_ = mg_start2(&init_data, &error_data);
  if (server->context_ == nullptr) {
    absl::MutexLock lock(&server->mu_);
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", listen, ": ", error[0] ? error : "unknown",
        server->last_error_.empty() ? "" : " (", server->last_error_,
        server->last_error_.empty() ? "" : ")"));
  }
  mg_set_request_handler(server->context_, "/", &HttpServer::Dispatch,
                         server.get());
  mg_server_port ports[4];
  const int n = mg_get_server_ports(server->context_, 4, ports);
  server->port_ = n > 0 ? ports[0].port : 0;
  std::string host = listening.substr(0, listening.rfind(':'));
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  server->host_ = host;
  if (tls) {
    absl::StatusOr<std::unique_ptr<TlsFront>> front = TlsFront::Start(
        listen, server->port_, std::move(tls), TlsFront::Options{});
    if (!front.ok()) return front.status();
    server->front_ = *std::move(front);
  }
  return server;
}

HttpServer::~HttpServer() {
  front_.reset();  // no new requests reach civetweb
  if (context_ == nullptr) return;
  // civetweb's listening thread sees the stop only when its poll() returns,
  // up to a second later; connections wake it at once.
  std::atomic<bool> stopped{false};
  std::thread waker([this, &stopped] {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    if (inet_pton(AF_INET, host_.c_str(), &addr.sin_addr) != 1) return;
    while (!stopped.load()) {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0) return;
      // Whether it connects does not matter: the attempt wakes the poll.
      (void)connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      close(fd);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  mg_stop(context_);
  stopped = true;
  waker.join();
}

int HttpServer::Dispatch(::mg_connection* conn, void* self) {
  auto* server = static_cast<HttpServer*>(self);
  const mg_request_info* info = mg_get_request_info(conn);
  HttpResponse response;
  HttpRequest request;
  request.path =
      Decode(info->local_uri != nullptr ? info->local_uri : "/", false);
  if (info->query_string != nullptr) {
    for (absl::string_view pair :
         absl::StrSplit(info->query_string, '&', absl::SkipEmpty())) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(pair, absl::MaxSplits('=', 1));
      request.query[Decode(kv.first)] = Decode(kv.second);
    }
  }
  if (const char* authorization = mg_get_header(conn, "Authorization")) {
    request.has_authorization = true;
    request.authorization = authorization;
  }
  const Handler* handler = nullptr;
  size_t best = 0;
  for (const auto& [prefix, h] : server->handlers_) {
    const bool exact = request.path == prefix;
    const bool under = prefix.size() > 1 && prefix.back() == '/' &&
                       request.path.rfind(prefix, 0) == 0;
    if ((exact || under) && prefix.size() >= best) {
      handler = &h;
      best = prefix.size();
    }
  }
  std::optional<HttpResponse> refused;
  if (server->guard_) refused = server->guard_(request);
  if (refused.has_value()) {
    response = *std::move(refused);
  } else if (std::string(info->request_method) != "GET" &&
             std::string(info->request_method) != "HEAD") {
    response = {405, "text/plain; charset=utf-8", "only GET\n"};
  } else if (request.path.find('\0') != std::string::npos) {
    response = {400, "text/plain; charset=utf-8",
                "path: must not contain %00\n"};
  } else if (handler == nullptr) {
    response = {404, "text/plain; charset=utf-8",
                absl::StrCat("no page at ", request.path, "\n")};
  } else {
    try {
      response = (*handler)(request);
    } catch (const std::exception& e) {
      response = {500, "text/plain; charset=utf-8",
                  absl::StrCat("error: ", e.what(), "\n")};
    }
  }
  std::string extra;
  for (const auto& [name, value] : response.headers) {
    absl::StrAppend(&extra, name, ": ", value, "\r\n");
  }
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
            "%s\r\n",
            response.status, Reason(response.status),
            response.content_type.c_str(), response.body.size(), extra.c_str());
  if (std::string(info->request_method) != "HEAD") {
    mg_write(conn, response.body.data(), response.body.size());
  }
  return response.status;
}

}  // namespace anneal
