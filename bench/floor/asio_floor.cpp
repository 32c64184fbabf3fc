// The Asio floor: a TCP proxy that does nothing but move bytes, built on the I/O layer pgmoat
// is built on. bench/floor/floor_proxy.cpp is what any proxy costs on a machine; this is what
// a proxy costs that moves its bytes the way pgmoat does, before it does any work of its own:
// C++20 coroutines on Boost.Asio, one io_context per thread with its sessions pinned to it
// (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO), each direction a coroutine that awaits
// async_read_some into a 64 KiB buffer and then writes at once without waiting (awaiting
// async_write only for what the socket did not take). It reads no message, checks nothing
// and records nothing: never put it in front of a database anyone uses.
//
//   asio-floor LISTEN_PORT UPSTREAM_PORT [THREADS]      (both on 127.0.0.1; THREADS default 1)
//
// The difference between this and floor-proxy is what Boost.Asio costs per transaction; the
// difference between pgmoat and this is what pgmoat's parsing, policy and audit cost.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

void close_both(tcp::socket& a, tcp::socket& b) {
  boost::system::error_code ignored;
  a.shutdown(tcp::socket::shutdown_both, ignored);
  b.shutdown(tcp::socket::shutdown_both, ignored);
  a.close(ignored);
  b.close(ignored);
}

// One direction of a connection. `from` and `to` stay alive while either direction runs.
asio::awaitable<void> pump(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to) {
  std::vector<char> buf(64 * 1024);
  boost::system::error_code ec;
  to->non_blocking(true, ec);
  for (;;) {
    auto [rec, n] = co_await from->async_read_some(asio::buffer(buf), kTuple);
    if (rec) break;
    // As pgmoat's Session::write_now: most writes fit in the socket buffer at once.
    std::size_t done = to->write_some(asio::buffer(buf.data(), n), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      ec.clear();
      done = 0;
    }
    if (ec) break;
    if (done < n) {
      auto [wec, w] =
          co_await asio::async_write(*to, asio::buffer(buf.data() + done, n - done), kTuple);
      (void)w;
      if (wec) break;
    }
  }
  close_both(*from, *to);
}

asio::awaitable<void> session(tcp::socket client, tcp::endpoint upstream) {
  auto c = std::make_shared<tcp::socket>(std::move(client));
  auto s = std::make_shared<tcp::socket>(c->get_executor());
  auto [ec] = co_await s->async_connect(upstream, kTuple);
  if (ec) {
    std::fprintf(stderr, "asio-floor: upstream %s:%u: %s\n", upstream.address().to_string().c_str(),
                 upstream.port(), ec.message().c_str());
    co_return;
  }
  c->set_option(tcp::no_delay(true), ec);
  s->set_option(tcp::no_delay(true), ec);
  auto ex = c->get_executor();
  asio::co_spawn(ex, pump(c, s), asio::detached);
  asio::co_spawn(ex, pump(s, c), asio::detached);
}

// Accepts on the first context and hands each connection to the next context in turn.
asio::awaitable<void> accept_loop(tcp::acceptor& acceptor,
                                  std::vector<std::unique_ptr<asio::io_context>>& contexts,
                                  tcp::endpoint upstream) {
  std::size_t next = 0;
  for (;;) {
    asio::io_context& ctx = *contexts[next];
    next = (next + 1) % contexts.size();
    auto [ec, sock] = co_await acceptor.async_accept(ctx, kTuple);
    if (ec) {
      std::fprintf(stderr, "asio-floor: accept: %s\n", ec.message().c_str());
      continue;
    }
    asio::co_spawn(ctx, session(std::move(sock), upstream), asio::detached);
  }
}

unsigned short number_arg(const char* s, long max, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < 1 || v > max) {
    std::fprintf(stderr, "asio-floor: not a %s: %s\n", what, s);
    std::exit(2);
  }
  return static_cast<unsigned short>(v);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr,
                 "usage: asio-floor LISTEN_PORT UPSTREAM_PORT [THREADS] (both on 127.0.0.1)\n");
    return 2;
  }
  const auto loopback = asio::ip::address_v4::loopback();
  const tcp::endpoint listen_at(loopback, number_arg(argv[1], 65535, "port"));
  const tcp::endpoint upstream(loopback, number_arg(argv[2], 65535, "port"));
  const unsigned threads = argc == 4 ? number_arg(argv[3], 256, "thread count") : 1;

  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (unsigned i = 0; i < threads; ++i) {
    contexts.push_back(std::make_unique<asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO));
  }
  tcp::acceptor acceptor(*contexts[0]);
  try {
    acceptor.open(listen_at.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(listen_at);
    acceptor.listen();
  } catch (const boost::system::system_error& e) {
    std::fprintf(stderr, "asio-floor: listen on port %u: %s\n", listen_at.port(), e.what());
    return 1;
  }
  asio::co_spawn(*contexts[0], accept_loop(acceptor, contexts, upstream), asio::detached);

  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& c : contexts) guards.push_back(asio::make_work_guard(*c));
  // SIGINT / SIGTERM: stop every context and exit normally (bench/instructions.sh runs this
  // under callgrind, which writes its counts at exit).
  asio::signal_set signals(*contexts[0], SIGINT, SIGTERM);
  signals.async_wait([&contexts](const boost::system::error_code&, int) {
    for (auto& c : contexts) c->stop();
  });
  std::vector<std::thread> runners;
  for (unsigned i = 1; i < threads; ++i)
    runners.emplace_back([c = contexts[i].get()] { c->run(); });
  contexts[0]->run();
  for (auto& t : runners) t.join();
}
