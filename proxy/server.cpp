#include "proxy/server.h"

#include <csignal>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

#include "proxy/session.h"
#include "proxy/wire/messages.h"

namespace pgmoat::proxy {

Server::Server(std::shared_ptr<Services> services) : services_(std::move(services)) {
  unsigned n = services_->settings.threads;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  // One thread per io_context, and a socket's operations are only ever started from its own
  // context's thread (sessions are pinned; the acceptor only registers the socket, which
  // stays locked): the per-socket reactor lock can go. Posting between threads (audit
  // completions, the acceptor spawning sessions) still locks the scheduler.
  for (unsigned i = 0; i < n; ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO));
  }
}

Server::~Server() = default;

void Server::listen() {
  const auto& s = services_->settings;
  auto& ctx = *contexts_.front();
  ErrorCode ec;
  auto address = asio::ip::make_address(s.listen_host, ec);
  tcp::endpoint endpoint;
  if (ec) {
    tcp::resolver resolver(ctx);
    auto results = resolver.resolve(s.listen_host, std::to_string(s.listen_port), ec);
    if (ec || results.empty()) {
      throw std::runtime_error("cannot listen on " + s.listen_host + ":" +
                               std::to_string(s.listen_port) +
                               ": cannot resolve host: " + ec.message());
    }
    endpoint = results.begin()->endpoint();
  } else {
    endpoint = tcp::endpoint(address, s.listen_port);
  }
  acceptor_ = std::make_unique<tcp::acceptor>(ctx);
  acceptor_->open(endpoint.protocol(), ec);
  if (!ec) acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_->bind(endpoint, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + s.listen_host + ":" +
                             std::to_string(s.listen_port) + ": " + ec.message());
  }
  listen_addr_ = s.listen_host + ":" + std::to_string(acceptor_->local_endpoint().port());
}

asio::awaitable<void> Server::refuse_busy(tcp::socket socket) {
  // Answer the startup packet's slot with the same FATAL Postgres sends when full.
  std::string msg = wire::error_response("FATAL", "53300", "sorry, too many clients already");
  co_await asio::async_write(socket, asio::buffer(msg), kTuple);
  ErrorCode ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
}

asio::awaitable<void> Server::accept_loop() {
  asio::steady_timer backoff(acceptor_->get_executor());
  while (!stopping_) {
    auto& target = *contexts_[next_context_];
    next_context_ = (next_context_ + 1) % contexts_.size();
    auto [ec, socket] = co_await acceptor_->async_accept(target.get_executor(), kTuple);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) co_return;
      // EMFILE and friends: say so and breathe instead of spinning.
      spdlog::error("accept failed: {}", ec.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(kTuple);
      continue;
    }
    auto exec = socket.get_executor();
    if (services_->active_sessions.load() >= services_->settings.max_client_connections) {
      spdlog::warn("connection refused: {} sessions open (limits.max_client_connections)",
                   services_->active_sessions.load());
      asio::co_spawn(exec, refuse_busy(std::move(socket)), asio::detached);
      continue;
    }
    auto session = std::make_shared<Session>(std::move(socket), services_, listen_addr_);
    // Moved, not copied: the last reference must not stay on this thread, or a session that
    // ends at once would be destroyed here, closing its socket from outside its own context
    // (which runs without per-socket locks, see the constructor).
    asio::co_spawn(
        exec,
        [session = std::move(session)]() -> asio::awaitable<void> { co_await session->run(); },
        asio::detached);
  }
}

void Server::wait_signal() {
  signals_->async_wait([this](const ErrorCode& ec, int signo) {
    if (ec) return;
    if (signo == SIGHUP) {
      spdlog::info("SIGHUP: reloading configuration");
      if (on_reload_) on_reload_();
      wait_signal();
      return;
    }
    spdlog::info("{}: shutting down", signo == SIGTERM ? "SIGTERM" : "SIGINT");
    begin_shutdown();
    wait_signal();  // a second SIGTERM during the drain stops at once
  });
}

void Server::begin_shutdown() {
  if (stopping_) {
    spdlog::warn("second shutdown signal: closing {} sessions now",
                 services_->active_sessions.load());
    for (auto& c : contexts_) c->stop();
    return;
  }
  stopping_ = true;
  ErrorCode ignored;
  if (acceptor_) acceptor_->close(ignored);
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(services_->settings.shutdown_timeout_ms);
  spdlog::info("no longer accepting connections; waiting up to {} ms for {} sessions",
               services_->settings.shutdown_timeout_ms, services_->active_sessions.load());
  drain_tick(deadline);
}

void Server::drain_tick(std::chrono::steady_clock::time_point deadline) {
  std::size_t all = services_->active_sessions.load();
  std::size_t in_login = services_->sessions_in_login.load();
  std::size_t open = all > in_login ? all - in_login : 0;
  if (open == 0 || std::chrono::steady_clock::now() >= deadline) {
    if (open > 0) spdlog::warn("shutdown deadline reached: closing {} sessions", open);
    for (auto& c : contexts_) c->stop();
    return;
  }
  drain_timer_->expires_after(std::chrono::milliseconds(50));
  drain_timer_->async_wait([this, deadline](const ErrorCode& ec) {
    if (!ec) drain_tick(deadline);
  });
}

int Server::run() {
  std::signal(SIGPIPE, SIG_IGN);
  // A size-limited audit file must fail the write (EFBIG, so writes are refused), not kill us.
  std::signal(SIGXFSZ, SIG_IGN);
  auto& main_ctx = *contexts_.front();
  signals_ = std::make_unique<asio::signal_set>(main_ctx, SIGTERM, SIGINT, SIGHUP);
  drain_timer_ = std::make_unique<asio::steady_timer>(main_ctx);
  wait_signal();
  asio::co_spawn(main_ctx, accept_loop(), asio::detached);
  spdlog::info("pgmoat listening on {} -> upstream {}:{} ({} threads)", listen_addr_,
               services_->settings.upstream_host, services_->settings.upstream_port,
               contexts_.size());

  std::vector<std::thread> threads;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (std::size_t i = 1; i < contexts_.size(); ++i) {
    guards.emplace_back(contexts_[i]->get_executor());
    threads.emplace_back([ctx = contexts_[i].get()] { ctx->run(); });
  }
  main_ctx.run();
  for (auto& c : contexts_) c->stop();
  for (auto& t : threads) t.join();
  spdlog::info("pgmoat stopped");
  return 0;
}

}  // namespace pgmoat::proxy
