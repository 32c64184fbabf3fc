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

  // Not a coroutine: it hands back the read operation itself, so awaiting it costs one
  // coroutine frame, not two (this runs for every read of every session).
  template <typename Buffers>
  asio::awaitable<std::tuple<ErrorCode, std::size_t>> read_some(const Buffers& b) {
    return tls_ ? tls_->async_read_some(b, kTuple) : socket_.async_read_some(b, kTuple);
  }
  // Writes as much of `b` as the socket takes right now, without waiting: most writes fit in
  // the socket buffer, and then no coroutine suspends and no completion goes through the
  // scheduler. Returns the bytes written; `ec` is set only for a real error. Plaintext only:
  // with TLS it writes nothing (records go through the TLS stream), and write() does it all.
  template <typename Buffers>
  std::size_t write_now(const Buffers& b, ErrorCode& ec) {
    ec.clear();
    if (tls_) return 0;
    if (!non_blocking_) {
      socket_.non_blocking(true, ec);
      if (ec) return 0;
      non_blocking_ = true;
    }
    const std::size_t n = socket_.write_some(b, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) ec.clear();
    return n;
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
  bool non_blocking_ = false;  // the socket's user-visible non-blocking mode (write_now)
};

}  // namespace pgmoat::proxy
