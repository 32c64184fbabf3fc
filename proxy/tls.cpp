#include "proxy/tls.h"

#include <stdexcept>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <boost/asio/ssl.hpp>

#include "common/hex.h"

namespace pgmoat::proxy {

namespace ssl = boost::asio::ssl;

namespace {
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}
}  // namespace

std::unique_ptr<ssl::context> make_server_tls(const Settings& s) {
  if (!s.tls_enabled()) return nullptr;
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(native, s.tls_cert_file.c_str()) != 1) {
    throw std::runtime_error("tls.cert_file " + s.tls_cert_file + ": " + openssl_error());
  }
  if (SSL_CTX_use_PrivateKey_file(native, s.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw std::runtime_error("tls.key_file " + s.tls_key_file + ": " + openssl_error());
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    throw std::runtime_error("tls.key_file " + s.tls_key_file +
                             " does not match tls.cert_file: " + openssl_error());
  }
  if (!s.tls_client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(native, s.tls_client_ca_file.c_str(), nullptr) != 1) {
      throw std::runtime_error("tls.client_ca_file " + s.tls_client_ca_file + ": " +
                               openssl_error());
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.tls_client_ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(native, names);
    // Ask for a certificate; one that is presented must verify. Clients without one still
    // connect (rules decide what they may do).
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

std::unique_ptr<ssl::context> make_upstream_tls(const Settings& s) {
  if (s.upstream_tls == UpstreamTls::disable) return nullptr;
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  if (s.upstream_tls == UpstreamTls::require) {
    ctx->set_verify_mode(ssl::verify_none);
    return ctx;
  }
  boost::system::error_code ec;
  ctx->load_verify_file(s.upstream_tls_ca_file, ec);
  if (ec) {
    throw std::runtime_error("upstream.tls_ca_file " + s.upstream_tls_ca_file + ": " +
                             ec.message());
  }
  ctx->set_verify_mode(ssl::verify_peer);
  if (s.upstream_tls == UpstreamTls::verify_full) {
    ctx->set_verify_callback(ssl::host_name_verification(s.upstream_host));
  }
  return ctx;
}

std::string tls_version(SSL* ssl) {
  if (ssl == nullptr) return {};
  return SSL_get_version(ssl);
}

std::string peer_subject(SSL* ssl) {
  if (ssl == nullptr) return {};
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return {};
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  X509_free(cert);
  return buf;
}

std::string peer_fingerprint(SSL* ssl) {
  if (ssl == nullptr) return {};
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return {};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const bool ok = X509_digest(cert, EVP_sha256(), md, &len) == 1;
  X509_free(cert);
  if (!ok) return {};
  std::string out = "sha256:";
  append_hex(out, std::span<const unsigned char>(md, len));
  return out;
}

}  // namespace pgmoat::proxy
