// Typed readers and builders for the messages pgmoat looks into or writes itself.
// https://www.postgresql.org/docs/15/protocol-message-formats.html
// Readers take a whole message (header included) and return nullopt when it is malformed.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgmoat::wire {

using Bytes = std::span<const std::uint8_t>;

// --- Startup phase (untagged packets: int32 length, int32 code, payload) ---

struct StartupPacket {
  std::uint32_t code = 0;  // protocol version, or one of the request codes
  std::vector<std::pair<std::string, std::string>> params;  // StartupMessage only
  std::uint32_t cancel_pid = 0;                             // CancelRequest only
  std::uint32_t cancel_key = 0;
  const std::string* get(std::string_view name) const;
};

// `packet` is the whole packet including its length word. Returns an error text on failure.
std::optional<StartupPacket> parse_startup(Bytes packet, std::string* error);
std::string build_startup(const StartupPacket& p);
std::string build_cancel_request(std::uint32_t pid, std::uint32_t key);

// --- ErrorResponse / NoticeResponse ---

struct ErrorField {
  char code;
  std::string value;
};
struct ErrorFields {
  std::vector<ErrorField> fields;
  const std::string* get(char code) const;
  std::string sqlstate() const;
  std::string message() const;
  // Severity FATAL or PANIC: the server closes the connection after it.
  bool fatal() const;
};
std::optional<ErrorFields> parse_error(Bytes message);
std::string build_error(const ErrorFields& fields, char tag = 'E');
// A complete ErrorResponse; severity is "ERROR" or "FATAL".
std::string error_response(std::string_view severity, std::string_view sqlstate,
                           std::string_view message, std::string_view detail = {},
                           std::string_view hint = {});

// --- Query and Parse (frontend) ---

std::optional<std::string_view> parse_query(Bytes message);
std::string build_query(std::string_view sql);

struct ParseMsg {
  std::string_view name;
  std::string_view query;
  Bytes param_types;  // int16 count followed by count int32 OIDs, raw
};
std::optional<ParseMsg> parse_parse(Bytes message);
std::string build_parse(std::string_view name, std::string_view query, Bytes param_types);

// Bind: only the names, for tying Execute back to the statement that runs.
struct BindNames {
  std::string_view portal;
  std::string_view statement;
};
std::optional<BindNames> parse_bind_names(Bytes message);
// Bind's parameter values as text: text-format values as they are, binary ones as "\\x<hex>",
// SQL NULL as nullopt. nullopt when the message is malformed or incomplete.
std::optional<std::vector<std::optional<std::string>>> parse_bind_values(Bytes message);
// Describe/Close: 'S' or 'P' and a name. Execute: portal name.
std::optional<std::pair<char, std::string_view>> parse_target(Bytes message);
std::optional<std::string_view> parse_execute_portal(Bytes message);
// Messages pgmoat sends on its own: Bind without parameters (text results), Execute, Close.
std::string build_bind(std::string_view portal, std::string_view statement);
std::string build_execute(std::string_view portal, std::uint32_t max_rows = 0);
std::string build_close(char kind, std::string_view name);  // kind 'S' or 'P'
std::string build_sync();
std::string build_flush();

// --- Backend messages pgmoat reads ---

struct CommandComplete {
  std::string_view tag;  // "DELETE 3", "INSERT 0 1", "SELECT 10", "CREATE TABLE"
  std::optional<std::uint64_t> rows;
};
std::optional<CommandComplete> parse_command_complete(Bytes message);

// DataRow columns; nullopt for SQL NULL. nullopt overall when malformed.
std::optional<std::vector<std::optional<std::string_view>>> parse_data_row(Bytes message);

std::optional<char> parse_ready_for_query(Bytes message);  // 'I', 'T' or 'E'
std::string ready_for_query(char status);

struct BackendKey {
  std::uint32_t pid;
  std::uint32_t secret;
};
std::optional<BackendKey> parse_backend_key(Bytes message);

struct Authentication {
  std::uint32_t code;
  std::vector<std::string> sasl_mechanisms;  // code 10 only
};
std::optional<Authentication> parse_authentication(Bytes message);
std::string build_sasl_mechanisms(const std::vector<std::string>& mechanisms);

std::optional<std::pair<std::string_view, std::string_view>> parse_parameter_status(Bytes message);

}  // namespace pgmoat::wire
