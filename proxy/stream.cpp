#include "proxy/stream.h"

namespace pgmoat::proxy {

asio::awaitable<ErrorCode> Stream::start_tls(asio::ssl::context& ctx,
                                             asio::ssl::stream_base::handshake_type type,
                                             const std::string& sni) {
  auto tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, ctx);
  if (!sni.empty()) {
    // SSL_set_tlsext_host_name is a macro with an old-style cast; this is what it expands to.
    SSL_ctrl(tls->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(sni.c_str()));
  }
  auto [ec] = co_await tls->async_handshake(type, kTuple);
  if (!ec) tls_ = std::move(tls);
  co_return ec;
}

}  // namespace pgmoat::proxy
