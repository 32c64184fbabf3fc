// A TCP socket that may be upgraded to TLS mid-connection (after SSLRequest). Reads and
// writes go to whichever layer is active. Network errors come back as values.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

namespace pgmoat::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using ErrorCode = boost::system::error_code;
// Every awaited operation completes with (error_code, value) instead of throwing.
inline constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

class Stream {
 public:
  explicit Stream(tcp::socket socket) : socket_(std::move(socket)) {}

  tcp::socket& socket() { return socket_; }
  bool tls() const { return tls_ != nullptr; }
  SSL* native_ssl() { return tls_ ? tls_->native_handle() : nullptr; }

  // Performs the TLS handshake as server or client; on failure the stream stays plaintext.
  asio::awaitable<ErrorCode> start_tls(asio::ssl::context& ctx,
                                       asio::ssl::stream_base::handshake_type type,
                                       const std::string& sni = {});

  template <typename Buffers>
  asio::awaitable<std::pair<ErrorCode, std::size_t>> read_some(const Buffers& b) {
    auto [ec, n] = tls_ ? co_await tls_->async_read_some(b, kTuple)
                        : co_await socket_.async_read_some(b, kTuple);
    co_return std::make_pair(ec, n);
  }
  template <typename Buffers>
  asio::awaitable<ErrorCode> write(const Buffers& b) {
    auto [ec, n] = tls_ ? co_await asio::async_write(*tls_, b, kTuple)
                        : co_await asio::async_write(socket_, b, kTuple);
    (void)n;
    co_return ec;
  }
  template <typename Buffers>
  asio::awaitable<ErrorCode> read_exact(const Buffers& b) {
    auto [ec, n] = tls_ ? co_await asio::async_read(*tls_, b, kTuple)
                        : co_await asio::async_read(socket_, b, kTuple);
    (void)n;
    co_return ec;
  }

  void close() {
    ErrorCode ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  tcp::socket socket_;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
};

}  // namespace pgmoat::proxy
