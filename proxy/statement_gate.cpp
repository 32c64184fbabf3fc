#include "proxy/statement_gate.h"

namespace pgmoat::proxy {

StatementGate::StatementGate(GateServices* services, SessionInfo& info)
    : services_(services), info_(info) {}

boost::asio::awaitable<StatementGate::Verdict> StatementGate::on_query(wire::Bytes,
                                                                      std::string_view) {
  co_return Verdict{};
}

boost::asio::awaitable<StatementGate::Verdict> StatementGate::on_parse(wire::Bytes,
                                                                      const wire::ParseMsg&) {
  co_return Verdict{};
}

std::optional<std::string> StatementGate::on_startup(wire::StartupPacket&) { return std::nullopt; }
void StatementGate::on_client_message(wire::Bytes) {}
std::optional<std::string> StatementGate::on_error(const wire::ErrorFields*) { return std::nullopt; }
void StatementGate::on_command_complete(wire::Bytes) {}
void StatementGate::on_ready(char status) { info_.transaction_status = status; }

}  // namespace pgmoat::proxy
