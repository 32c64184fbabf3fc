// The rule engine: which statements a client may run. Pure — no I/O, no clocks, no globals —
// so it is tested with tables of cases (tests/unit/policy/).
//
// How a statement is decided (see evaluate()):
//   1. Its classes come from the classifier; `dangerous_function` is added here when any called
//      function is in Policy::dangerous_functions.
//   2. Each class of the statement is decided on its own by the first rule (in file order)
//      whose client match, class list and table globs match it; a class no rule matches is
//      allowed. The statement gets the most restrictive of those per-class results
//      (deny > require_approval > log > allow). Deciding per class rather than "first rule
//      that shares any class wins" closes a hole: with that reading an earlier
//      `allow select` rule would also let `WITH d AS (DELETE FROM t) SELECT ...` through.
//   3. require_approval is lifted when one session approval covers every class that needed
//      it (and the tables, database, user, client, expiry and uses).
//   4. Monitor mode turns refusals into allows flagged would_refuse.
//   5. A rule with max_rows that decides a class does not refuse up front and does not take
//      part in step 2: the statement gets a RowLimit (the smallest when several classes are
//      limited) and the proxy refuses it at run time when it touched more rows. An approval
//      covering the class lifts the limit, for one use per statement (none extra when the
//      approval that lifted require_approval covers it too). Limits of deny rules are never
//      lifted, and a statement refused for another reason spends no use on its limit.
// A query string is refused as a whole when any of its statements is refused.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parser/classification.h"

namespace pgmoat::cfg {
class Table;
}

namespace pgmoat::policy {

enum class Action : std::uint8_t { allow, deny, require_approval, log };
enum class Mode : std::uint8_t { enforce, monitor };
enum class OnParseError : std::uint8_t { refuse, allow };

std::string_view action_name(Action a);  // "allow", "deny", "require_approval", "log"
std::optional<Action> action_from_name(std::string_view name);
std::string_view mode_name(Mode m);  // "enforce", "monitor"

// An IPv4 or IPv6 network. IPv4 is stored as an IPv4-mapped IPv6 address (::ffff:a.b.c.d/96+n)
// so a client reaching a dual-stack socket as ::ffff:10.1.2.3 matches "10.0.0.0/8".
struct Cidr {
  std::array<std::uint8_t, 16> addr{};
  unsigned prefix = 0;  // in bits of the 128-bit form
  std::string text;     // as written in the config, for messages
  bool contains(const std::array<std::uint8_t, 16>& ip) const;
};
// "10.0.0.0/8", "10.1.2.3" (= /32), "2001:db8::/32", "::1" (= /128). Host bits beyond the
// prefix must be zero ("10.0.0.1/8" is refused as a likely typo). nullopt when malformed.
std::optional<Cidr> parse_cidr(std::string_view text);
// A plain address in 128-bit form (IPv4 mapped); nullopt when not an IP address.
std::optional<std::array<std::uint8_t, 16>> parse_ip(std::string_view text);

// `*` matches any run of characters (also none), `?` exactly one; everything else is literal.
bool glob_match(std::string_view pattern, std::string_view text, bool ignore_case = false);

struct SessionContext;

// Which clients a rule applies to. Every non-empty list must have a matching entry (lists are
// OR, attributes are AND); an empty list matches every client. Globs are case-sensitive, as
// Postgres role and database names are. A client without an address (Unix socket) or without
// a certificate never matches a non-empty client_addr / tls_subject list.
struct ClientMatch {
  std::vector<std::string> users;
  std::vector<std::string> databases;
  std::vector<std::string> application_names;
  std::vector<Cidr> client_addrs;
  std::vector<std::string> tls_subjects;
  bool matches(const SessionContext& ctx) const;
  bool empty() const;
};

// Table globs ("users", "public.*", "app.order_*") are matched case-insensitively.
//  - A glob without a dot matches the table name in any schema: "users" matches "users",
//    "public.users" and "audit.users".
//  - A glob with a dot is matched against "schema.table". A table written without a schema
//    could be in any schema on the search_path, so for restrictive rules (deny,
//    require_approval) "public.users" matches plain "users"; for allow and log rules, and for
//    approvals, an unqualified table matches only when the schema part of the glob is "*".
//  - Restrictive rules with table globs also match statements whose affected tables cannot be
//    known in advance: DO blocks and other opaque statements, DROP SCHEMA / DATABASE / OWNED /
//    EXTENSION / TYPE / DOMAIN (with CASCADE they take tables or columns with them).
struct Rule {
  std::string name;
  ClientMatch match;
  parser::ClassSet classes = 0;
  std::vector<std::string> tables;  // empty = every table (and statements without tables)
  Action action = Action::allow;
  std::string message;  // optional text appended to the refusal message
  // Row-count limit (delete/update/merge classes only; action must be require_approval, deny
  // or log): a statement of a limited class runs, and `action` applies only when it touched
  // more than max_rows rows (counted by the proxy's blast-radius guard, cascades included).
  std::optional<std::int64_t> max_rows;
  std::optional<double> max_fraction;
  std::string source;  // "file:line:column" of the rule in the config, "" when built in code
};

std::vector<std::string> default_dangerous_functions();

struct Policy {
  Mode mode = Mode::enforce;
  OnParseError on_parse_error = OnParseError::refuse;
  std::vector<std::string> dangerous_functions = default_dangerous_functions();  // lower-case
  std::vector<Rule> rules;
};

// What a verified approval token grants (policy/token.h turns a token into this).
struct Approval {
  std::string id;  // token id, recorded in the verdict and the audit trail
  std::string approver;
  std::string reason;
  std::int64_t expires_at = 0;                  // unix seconds; valid while now < expires_at
  std::vector<std::string> databases;           // exact names; empty = any
  std::vector<std::string> users;               // exact names; empty = any
  std::optional<std::string> application_name;  // glob
  std::optional<std::string> client_cidr;
  parser::ClassSet classes = 0;
  std::vector<std::string> tables;  // globs; empty = any table
  // Statements it may still allow (nullopt = unlimited); each statement it allows in a query
  // counts, so 1 use left allows one DROP of `DROP TABLE a; DROP TABLE b`, not both.
  std::optional<std::int64_t> uses_left;
};

struct SessionContext {
  std::string user;
  std::string database;
  std::string application_name;
  std::string client_addr;  // "10.1.2.3", "::1"; "" for a Unix socket
  std::string tls_subject;  // client certificate subject, "" when none
  std::int64_t now = 0;     // unix seconds
  const std::vector<Approval>* approvals = nullptr;
};

// A row-count limit on one allowed statement: the proxy runs it, counts the rows it touched
// (cascades and triggers included) and refuses it over the limit (proxy/row_guard.h).
struct RowLimit {
  std::int64_t max_rows = 0;
  std::string rule;  // the rule that set it
  parser::StatementClass limited_class = parser::StatementClass::delete_;
  Action action = Action::require_approval;  // what applies over the limit
  bool enforce = true;  // false: over the limit is only recorded (log rule, monitor mode)
  // The refusal over the limit, without the counts (the proxy adds those):
  //   message  "pgmoat: DELETE on public.station touched more rows than rule \"row-limit\" allows"
  //            (+ ": " + rule.message when set)
  //   hint     the token command (require_approval, log) or the deny text
  std::string message;
  std::string hint;
};

struct StatementVerdict {
  bool allowed = true;
  // The statement runs but policy would have refused it (a log rule, monitor mode, or a
  // refusal turned into an allow).
  bool would_refuse = false;
  Action action = Action::allow;  // the deciding rule's action; allow when no rule matched
  std::string rule;               // deciding rule's name, "" when none
  std::optional<parser::StatementClass> matched_class;  // the class that decided
  parser::ClassSet classes = 0;           // the statement's classes, dangerous_function included
  parser::ClassSet approval_classes = 0;  // classes that needed approval
  std::string command;                    // "DROP TABLE"
  std::string target;                     // "public.users"
  // The token that allowed a require_approval class or lifted a row limit; the first when two
  // tokens did (Decision::approvals_used lists both).
  std::string approval_id;
  // Set when a max_rows rule decides one of the statement's classes and no approval lifts it;
  // the tightest limit when several apply.
  std::optional<RowLimit> row_limit;
  // Set when the statement is refused or would be: a Postgres error's message/detail/hint.
  std::string message;
  std::string detail;
  std::string hint;
};

struct Decision {
  bool allowed = true;
  bool would_refuse = false;  // any statement would_refuse
  bool parse_error = false;   // the SQL could not be parsed (refused unless on_parse_error=allow)
  std::vector<StatementVerdict> statements;  // one per statement, in order
  // The first refused (or, when allowed, first would-refuse) statement; nullopt when none or
  // when the SQL did not parse.
  std::optional<std::size_t> first_refused;
  // The error to send: copies of the first refused statement's fields, or the parse error.
  std::string message;
  std::string detail;
  std::string hint;
  // Ids of the approvals that allowed statements, each once, in order of first use, and how
  // many statements each allowed (one statement = one use of Approval::uses_left).
  std::vector<std::string> approvals_used;
  std::vector<std::int64_t> approval_uses;
};

// Never throws: an internal failure (allocation) yields a refusal.
Decision evaluate(const parser::Classification& c, const SessionContext& ctx,
                  const Policy& policy) noexcept;

// Reads `[policy]` and `[[rules]]` from the root of the config file. Calls finish() on those
// tables but not on root (other sections belong to other owners). Throws cfg::ConfigError
// "file:line:column: ..." on any problem.
Policy load_policy(cfg::Table& root);

}  // namespace pgmoat::policy
