// The server's TLS files (see tls_files.h).
#include "anneal/server/tls_files.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"

namespace anneal {
namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

absl::Status Unreadable(const char* flag, const std::string& path,
                        const char* what) {
  return absl::FailedPreconditionError(
      absl::StrCat("--", flag, ": ", path, " ", what));
}

}  // namespace

absl::Status CheckTlsFiles(const std::string& cert, const std::string& key,
                           const std::string& client_ca) {
  File cert_file(std::fopen(cert.c_str(), "r"));
  if (!cert_file) return Unreadable("tls_cert", cert, "cannot be read");
  X509* x509 = PEM_read_X509(cert_file.get(), nullptr, nullptr, nullptr);
  if (x509 == nullptr) {
    return Unreadable("tls_cert", cert, "holds no PEM certificate");
  }
  std::unique_ptr<X509, void (*)(X509*)> certificate(x509, X509_free);
  File key_file(std::fopen(key.c_str(), "r"));
  if (!key_file) return Unreadable("tls_key", key, "cannot be read");
  EVP_PKEY* pkey =
      PEM_read_PrivateKey(key_file.get(), nullptr, nullptr, nullptr);
  if (pkey == nullptr) {
    return Unreadable("tls_key", key,
                      "holds no PEM private key (an encrypted key is not "
                      "supported)");
  }
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> private_key(pkey,
                                                             EVP_PKEY_free);
  if (X509_check_private_key(certificate.get(), private_key.get()) != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--tls_key: ", key, " is not the key of the certificate in ", cert));
  }
  if (!client_ca.empty()) {
    File ca_file(std::fopen(client_ca.c_str(), "r"));
    if (!ca_file)
      return Unreadable("tls_client_ca", client_ca, "cannot be read");
    X509* ca = PEM_read_X509(ca_file.get(), nullptr, nullptr, nullptr);
    if (ca == nullptr) {
      return Unreadable("tls_client_ca", client_ca, "holds no PEM certificate");
    }
    X509_free(ca);
  }
  return absl::OkStatus();
}

}  // namespace anneal
