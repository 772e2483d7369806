// HTTPS for the telemetry port: its certificate and key (see http_tls.h).
#include "anneal/server/telemetry/exporter/http_tls.h"

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"

namespace anneal {

struct HttpTlsContext::Pair {
  X509* leaf = nullptr;
  STACK_OF(X509) * chain = nullptr;  // the certificates after the leaf
  EVP_PKEY* key = nullptr;
  ~Pair() {
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
  }
};

namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

absl::Status Bad(const std::string& path, absl::string_view what) {
  return absl::FailedPreconditionError(
      absl::StrCat("telemetry TLS: ", path, " ", what));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const HttpTlsContext::Pair>>
HttpTlsContext::Read(const HttpTlsFiles& files) {
  auto pair = std::make_shared<Pair>();
  File cert(std::fopen(files.cert.c_str(), "r"));
  if (!cert) return Bad(files.cert, "cannot be read");
  pair->leaf = PEM_read_X509(cert.get(), nullptr, nullptr, nullptr);
  if (pair->leaf == nullptr) return Bad(files.cert, "holds no certificate");
  pair->chain = sk_X509_new_null();
  while (X509* next = PEM_read_X509(cert.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(pair->chain, next);
  }
  File key(std::fopen(files.key.c_str(), "r"));
  if (!key) return Bad(files.key, "cannot be read");
  pair->key = PEM_read_PrivateKey(key.get(), nullptr, nullptr, nullptr);
  if (pair->key == nullptr) return Bad(files.key, "holds no private key");
  if (X509_check_private_key(pair->leaf, pair->key) != 1) {
    return Bad(files.key, absl::StrCat("is not the key of ", files.cert));
  }
  return std::shared_ptr<const Pair>(std::move(pair));
}

absl::StatusOr<std::unique_ptr<HttpTlsContext>> HttpTlsContext::Load(
    HttpTlsFiles files) {
  absl::StatusOr<std::shared_ptr<const Pair>> pair = Read(files);
  if (!pair.ok()) return pair.status();
  std::unique_ptr<HttpTlsContext> context(new HttpTlsContext(std::move(files)));
  absl::MutexLock lock(&context->mu_);
  context->pair_ = *std::move(pair);
  context->read_at_ = absl::Now();
  return context;
}

HttpTlsContext::~HttpTlsContext() = default;

std::shared_ptr<const HttpTlsContext::Pair> HttpTlsContext::Current() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (now - read_at_ >= files_.reload_interval) {
    read_at_ = now;
    // A failed read keeps the pair in service (the next interval retries).
    if (absl::StatusOr<std::shared_ptr<const Pair>> fresh = Read(files_);
        fresh.ok()) {
      pair_ = *std::move(fresh);
    }
  }
  return pair_;
}

int HttpTlsContext::OnHandshake(void* ssl, void* self) {
  std::shared_ptr<const Pair> pair =
      static_cast<HttpTlsContext*>(self)->Current();
  // override=1: replaces whatever the context or an earlier call set.
  return SSL_use_cert_and_key(static_cast<SSL*>(ssl), pair->leaf, pair->key,
                              pair->chain, /*override=*/1);
}

void HttpTlsContext::Configure(void* ssl_ctx) {
  SSL_CTX* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_cert_cb(
      ctx, [](SSL* ssl, void* self) { return OnHandshake(ssl, self); }, this);
}

}  // namespace anneal
