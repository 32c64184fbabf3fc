// One client connection: startup and TLS negotiation, the upstream connection, the relayed
// authentication exchange, then two pumps (client->server, server->client) until either side
// ends. All of a session's coroutines run on one single-threaded io_context, so its state
// needs no locks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio.hpp>

#include "proxy/buffer.h"
#include "proxy/services.h"
#include "proxy/session_info.h"
#include "proxy/statement_gate.h"
#include "proxy/stream.h"
#include "proxy/wire/messages.h"

namespace pgmoat::proxy {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket client, std::shared_ptr<Services> services, std::string listen_addr);
  ~Session();

  // Runs the session to its end; never throws.
  asio::awaitable<void> run();
  void close();

 private:
  enum class Login : std::uint8_t { proceed, done };

  asio::awaitable<void> run_inner();
  asio::awaitable<Login> login();
  asio::awaitable<std::optional<wire::StartupPacket>> read_startup();
  asio::awaitable<void> forward_cancel(std::uint32_t pid, std::uint32_t key);
  asio::awaitable<bool> connect_upstream();
  asio::awaitable<bool> relay_authentication();
  asio::awaitable<void> client_to_server();
  asio::awaitable<void> server_to_client();
  asio::awaitable<void> idle_watchdog();
  asio::awaitable<void> login_timer();

  // Reads one whole message (any tag) from a stream during login. nullopt on EOF/error.
  asio::awaitable<std::optional<std::vector<std::uint8_t>>> read_message(Stream& s, Buffer& buf,
                                                                         bool from_client);
  asio::awaitable<bool> flush(Stream& to, Outbox& out);
  // Sends an ErrorResponse to the client (best effort) and logs it.
  asio::awaitable<void> fail_client(std::string_view severity, std::string_view sqlstate,
                                    const std::string& message);

  std::shared_ptr<Services> services_;
  Stream client_;
  std::unique_ptr<Stream> server_;
  Buffer client_in_;
  Buffer server_in_;
  SessionInfo info_;
  StatementGate gate_;
  wire::StartupPacket startup_;
  std::chrono::steady_clock::time_point last_activity_;
  // Login deadline, then idle deadline. close() cancels it, so a finished session is never
  // kept alive (and counted as open during a drain) by a sleeping timer.
  asio::steady_timer timer_;
  bool key_registered_ = false;
  bool logged_in_ = false;
  bool closed_ = false;
  bool upstream_lost_ = false;
  std::string login_error_;  // why the login did not complete, for the audit trail
};

}  // namespace pgmoat::proxy
