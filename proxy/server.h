// The listening side: one io_context per thread with sessions pinned to one of them, a
// connection limit, graceful shutdown on SIGTERM/SIGINT and reload on SIGHUP.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <boost/asio.hpp>

#include "proxy/services.h"

namespace pgmoat::proxy {

class Server {
 public:
  explicit Server(std::shared_ptr<Services> services);
  ~Server();

  // Called on SIGHUP from the signal thread; must not throw.
  void set_reload_handler(std::function<void()> handler) { on_reload_ = std::move(handler); }

  // Binds the listener. Throws std::runtime_error with a clear message on failure.
  void listen();
  // Serves until SIGTERM/SIGINT and the drain that follows. Returns the exit code.
  int run();

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> refuse_busy(boost::asio::ip::tcp::socket socket);
  void wait_signal();
  void begin_shutdown();
  void drain_tick(std::chrono::steady_clock::time_point deadline);

  std::shared_ptr<Services> services_;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::unique_ptr<boost::asio::signal_set> signals_;
  std::unique_ptr<boost::asio::steady_timer> drain_timer_;
  std::function<void()> on_reload_;
  std::string listen_addr_;
  std::size_t next_context_ = 0;
  bool stopping_ = false;
};

}  // namespace pgmoat::proxy
