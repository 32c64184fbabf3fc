// Internals of evaluate(), shared by its .cpp files and the unit tests. Not for other folders.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parser/classification.h"
#include "policy/policy.h"

namespace pgmoat::policy::detail {

// Restrictive matching (deny / require_approval rules) counts "could be this table" as a
// match; permissive matching (allow / log rules, approvals) needs "is certainly this table".
enum class Bias : std::uint8_t { restrictive, permissive };

inline Bias bias_of(Action a) {
  return a == Action::deny || a == Action::require_approval ? Bias::restrictive : Bias::permissive;
}

// Classes that change data or schema: only written / DDL'd tables count for their table globs.
// For every other class (select, copy_to, dangerous_function, ...) every referenced table counts.
bool is_write_class(parser::StatementClass c);

// One table glob against one table name from the classifier (see Rule in policy.h).
bool table_glob_matches(std::string_view glob, std::string_view table, Bias bias);

// True when the statement may affect tables the classifier cannot list: DO blocks and other
// opaque code, DROP SCHEMA / DATABASE / OWNED / EXTENSION / TYPE / DOMAIN.
bool tables_unknown(const parser::Statement& st);

// The tables that count for a set of classes.
std::vector<const parser::TableRef*> relevant_tables(const parser::Statement& st,
                                                     parser::ClassSet classes);

// A rule's table globs against a statement, for the given classes.
bool rule_tables_match(const std::vector<std::string>& globs, const parser::Statement& st,
                       parser::ClassSet classes, Bias bias);

// nullopt when `a` covers the statement's `needed` classes for this session; otherwise the
// reason it does not, e.g. "approval 1a2b expired at 2024-05-01 12:00:00 UTC". `used` is how
// many earlier statements of the same query already use `a` (each statement is one use).
std::optional<std::string> approval_gap(const Approval& a, const SessionContext& ctx,
                                        const parser::Statement& st, parser::ClassSet needed,
                                        std::int64_t used = 0);

// "2024-05-01 12:00:00 UTC" (same format as policy/token.h format_utc).
std::string utc_text(std::int64_t unix_seconds);

// What a token must grant for some statements: builds the `pgmoat token issue` hint. One
// request can collect every statement of a query that needs approval, so that one token
// covers the whole migration.
struct ApprovalRequest {
  parser::ClassSet classes = 0;
  std::vector<std::string> tables;
  bool any_table = false;  // a statement affects tables that cannot be listed
  void add(const parser::Statement& st, parser::ClassSet needed);
  std::string hint(const SessionContext& ctx) const;
};

// The three parts of a Postgres error for a refused (or would-be refused) statement.
struct ErrorText {
  std::string message;
  std::string detail;
  std::string hint;
};
// `needed`: the classes that need approval (for the hint's token command); `approval_gaps`:
// why each of the session's approvals did not cover the statement.
ErrorText refusal_text(const parser::Statement& st, parser::StatementClass matched,
                       const Rule& rule, const SessionContext& ctx,
                       const std::vector<std::string>& dangerous, parser::ClassSet needed,
                       const std::vector<std::string>& approval_gaps);
// For a statement over a max_rows rule's limit (the proxy adds the counts as DETAIL).
ErrorText row_limit_text(const parser::Statement& st, parser::StatementClass limited,
                         const Rule& rule, const SessionContext& ctx);
// For a statement that could not be parsed.
ErrorText parse_error_text(const parser::Classification& c);

}  // namespace pgmoat::policy::detail
