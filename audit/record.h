// What one audit record says: who (Identity, on every record so no join is needed) and what
// happened (Event). encode() turns them into one JSON object; AuditLog adds the chain fields.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgmoat::audit {

// Who is on the other end of a session. Filled in as the session learns it: the address at
// accept, user/database/parameters at startup, auth_method and backend_pid once the server
// has answered. Never put a password here (encode() drops a "password" parameter anyway).
struct Identity {
  std::string session_id;
  std::string client_addr;  // textual IP, no port ("10.0.0.5", "::1"); empty for unix sockets
  std::uint16_t client_port = 0;
  std::string listen_addr;  // pgmoat's own listening address ("0.0.0.0:6432")
  std::string tls_version;  // empty when the connection is not encrypted
  std::string client_cert_subject;
  std::string client_cert_fingerprint;  // "sha256:<hex>"
  std::string user;
  std::string database;
  std::string application_name;
  std::map<std::string, std::string> startup_parameters;  // everything else from StartupMessage
  std::string auth_method;  // "trust", "cleartext", "md5", "scram-sha-256", ...
  std::int32_t backend_pid = 0;
};

enum class EventType {
  kConnectionAccepted,
  kAuthenticated,
  kAuthFailed,
  kConnectionClosed,
  kStatement,  // intent: written (and made durable) before the statement is forwarded
  kOutcome,    // CommandComplete or ErrorResponse for an earlier kStatement (same statement_id)
  kRefusal,
  kWouldRefuse,  // shadow mode: would have been refused, was forwarded
  kApprovalUse,
  kChainResume,  // written by AuditLog itself after a torn tail or a write failure
  kRotate,       // written by AuditLog as the first record of a file opened by rotate()
};

std::string_view to_string(EventType type);
std::optional<EventType> event_type_from_string(std::string_view name);

// Either a command tag (ok) or an error.
struct Outcome {
  std::string command_tag;  // "DELETE 42"; empty on error
  std::optional<std::int64_t> rows;
  std::string sqlstate;  // set on error
  std::string message;
};

struct Event {
  EventType type = EventType::kStatement;
  std::int64_t ts_us = 0;          // UTC microseconds since the epoch; 0 = "now" at encode()
  std::uint64_t statement_id = 0;  // per-session counter linking kStatement and kOutcome
  std::string statement;           // full or normalized text, as [audit] text says
  std::string fingerprint;
  std::vector<std::string> classes;  // "delete", "ddl", "truncate", ...
  std::vector<std::string> tables_written;
  std::vector<std::string> tables_read;
  std::string decision;  // "allow", "deny", "needs_approval", "approved", ...
  std::string rule;
  std::string token_id;
  std::string approver;
  std::string reason;
  std::optional<Outcome> outcome;
  std::optional<std::int64_t> duration_us;
  std::optional<std::int64_t> would_have_affected_rows;
  std::vector<std::optional<std::string>> parameters;  // only with [audit] parameters = true
  std::string detail;
};

// One JSON object, no newline, no chain fields. Field order is fixed: type, ts, identity,
// then the event's fields; empty optional fields are left out. Invalid UTF-8 in any string
// becomes U+FFFD so the line is always valid JSON.
std::string encode(const Identity& identity, const Event& event);

// Appends `text` as a JSON string literal (with quotes) to `out`.
void append_json_string(std::string& out, std::string_view text);

// "2024-05-01T12:34:56.123456Z" for UTC microseconds since the epoch.
std::string format_timestamp(std::int64_t ts_us);
// Inverse of format_timestamp; also accepts "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.frac]]" with
// 'T' or ' ', and a trailing 'Z' or "+HH:MM"/"-HH:MM". No zone means UTC.
std::optional<std::int64_t> parse_timestamp(std::string_view text);
std::int64_t now_us();

}  // namespace pgmoat::audit
