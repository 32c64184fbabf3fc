// The seam between the byte pumps and the policy: every Query and Parse passes through
// here before it is forwarded, and the server's answers are reported back so refusals can
// be rewritten and outcomes recorded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "proxy/session_info.h"
#include "proxy/wire/messages.h"

namespace pgmoat::proxy {

struct GateServices;

class StatementGate {
 public:
  StatementGate(GateServices* services, SessionInfo& info);

  struct Verdict {
    bool replace = false;  // forward `bytes` instead of the original message
    std::string bytes;
  };
  boost::asio::awaitable<Verdict> on_query(wire::Bytes message, std::string_view sql);
  boost::asio::awaitable<Verdict> on_parse(wire::Bytes message, const wire::ParseMsg& parse);

  // Startup: may strip parameters meant for pgmoat (an approval token in `options`).
  // Returns a refusal message when the connection must not proceed.
  std::optional<std::string> on_startup(wire::StartupPacket& startup);
  // Every other whole client message (Bind, Execute, Sync, ...), for tying Execute to Parse.
  void on_client_message(wire::Bytes message);

  // Server side. Returns replacement bytes for an ErrorResponse that answers a refusal.
  // `fields` is null when the ErrorResponse could not be decoded.
  std::optional<std::string> on_error(const wire::ErrorFields* fields);
  void on_command_complete(wire::Bytes message);
  void on_ready(char status);
  bool watching_errors() const { return pending_refusals_ > 0; }

 private:
  GateServices* services_;
  SessionInfo& info_;
  std::uint32_t pending_refusals_ = 0;
};

}  // namespace pgmoat::proxy
