// OpenSSL contexts: one for clients connecting to pgmoat, one for pgmoat connecting upstream.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "proxy/settings.h"

namespace pgmoat::proxy {

// nullptr when client TLS is not configured. Throws std::runtime_error naming the file.
std::unique_ptr<boost::asio::ssl::context> make_server_tls(const Settings& s);
// nullptr when upstream TLS is disabled. verify-full also checks the host name.
std::unique_ptr<boost::asio::ssl::context> make_upstream_tls(const Settings& s);

// "TLSv1.3" etc., and the client certificate's subject ("" when none).
std::string tls_version(SSL* ssl);
std::string peer_subject(SSL* ssl);
// "sha256:<hex>" of the client certificate (DER), "" when none was presented.
std::string peer_fingerprint(SSL* ssl);

}  // namespace pgmoat::proxy
