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
#include "proxy/response_tracker.h"
#include "proxy/row_guard.h"
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
  // Sends `out` and clears it; false when the connection failed (the session is closed).
  asio::awaitable<bool> flush(Stream& to, Outbox& out);
  // The part of flush() that never waits: true when all of `out` went out. False leaves the
  // rest in `out` for flush_rest(), or the session closed after a write error.
  bool write_now(Stream& to, Outbox& out);
  asio::awaitable<bool> flush_rest(Stream& to, Outbox& out);
  // Hands one whole server message that answers the client to the client (through the gate).
  void deliver(char tag, wire::Bytes bytes, Outbox& out, bool copy);
  void deliver_owned(const std::string& message, Outbox& out);
  // Row guard (proxy/row_guard.h). Client side: runs `message` under the guard and waits for
  // the verdict. Server side: one answer to a guard message, and the verdict once every
  // message of the guard is answered.
  asio::awaitable<bool> run_guard(std::shared_ptr<const GuardSpec> spec, wire::Bytes message,
                                  bool simple);
  void on_guard_message(std::string_view message, Outbox& out);
  void guard_decide(Outbox& out);
  asio::awaitable<void> wait_guard_signal();
  // Tells the gate how the client's Parses ended (ResponseTracker::take_parse_outcome).
  void report_parse_outcomes();
  // Asks the server to flush its answers (extended messages without a Sync wait for one) and
  // waits until every message sent to it is answered. False when the session ended.
  asio::awaitable<bool> wait_until_answered();
  void guard_signal();
  asio::awaitable<bool> send_tracked(std::vector<RowGuard::Send> sends);
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
  std::chrono::steady_clock::time_point last_activity_;  // kept only when watch_idle_
  bool watch_idle_ = false;                              // an idle_timeout is set
  // Login deadline, then idle deadline. close() cancels it, so a finished session is never
  // kept alive (and counted as open during a drain) by a sleeping timer.
  asio::steady_timer timer_;
  // Which message each server answer belongs to, and the row guard's state.
  ResponseTracker tracker_;
  RowGuard guard_;
  asio::steady_timer guard_signal_;
  bool guard_waiting_ = false;
  std::vector<RowGuard::Send> guard_final_;  // left by guard_decide() for the client pump
  std::uint64_t discards_seen_ = 0;          // gate_.statements_discarded() at the last guard
  std::uint64_t enders_seen_ = 0;            // gate_.may_end_transaction() at the last guard
  std::uint64_t changers_seen_ = 0;          // gate_.may_change_counts() at the last guard
  bool extended_open_ = false;      // extended-protocol messages forwarded since the last Sync
  ResponseTracker::Answer answer_;  // of the server message being read
  std::string guard_message_;       // a guard answer being assembled from pieces
  bool guard_message_oversized_ = false;
  bool fatal_seen_ = false;
  bool key_registered_ = false;
  bool logged_in_ = false;
  bool closed_ = false;
  bool upstream_lost_ = false;
  std::string login_error_;  // why the login did not complete, for the audit trail
};

}  // namespace pgmoat::proxy
