// Names used in the config file and in messages, and the built-in dangerous-function list.
#include "policy/policy.h"

namespace pgmoat::policy {

std::string_view action_name(Action a) {
  switch (a) {
    case Action::allow:
      return "allow";
    case Action::deny:
      return "deny";
    case Action::require_approval:
      return "require_approval";
    case Action::log:
      return "log";
  }
  return "allow";
}

std::optional<Action> action_from_name(std::string_view name) {
  for (Action a : {Action::allow, Action::deny, Action::require_approval, Action::log}) {
    if (action_name(a) == name) return a;
  }
  return std::nullopt;
}

std::string_view mode_name(Mode m) {
  return m == Mode::monitor ? "monitor" : "enforce";
}

// Functions that kill sessions, touch the server's files, reconfigure or promote the server,
// or run SQL given as text where pgmoat cannot see it (dblink runs it over another connection,
// which need not pass through pgmoat; query_to_xml runs any query string it is given).
// set_config is not here: applications call it for row-level-security settings all the time;
// the classifier reports set_config('session_replication_role', ...) as
// session_replication_role instead.
std::vector<std::string> default_dangerous_functions() {
  return {
      "pg_terminate_backend",
      "pg_cancel_backend",
      "pg_reload_conf",
      "pg_rotate_logfile",
      "pg_promote",
      "pg_drop_replication_slot",
      "pg_read_file",
      "pg_read_binary_file",
      "pg_ls_dir",
      "pg_stat_file",
      "pg_file_write",
      "pg_file_unlink",
      "pg_file_rename",
      "lo_import",
      "lo_export",
      "lo_unlink",
      "dblink",
      "dblink_exec",
      "dblink_send_query",
      "dblink_open",
      "query_to_xml",
      "query_to_xmlschema",
      "query_to_xml_and_xmlschema",
  };
}

}  // namespace pgmoat::policy
