// A statement's text with its numeric literals replaced by $1, $2, ...: the key under which
// ClassificationCache lets statements that differ only in their numbers (pgbench -M simple,
// clients that write ids inline) share one parse. Pure text, no libpg_query: the scan is
// conservative, and any text it does not fully understand gets no template.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgmoat::parser {

struct LiteralTemplate {
  std::string text;  // the input with $1, $2, ... in place of its numbers
  // The input's one statement as classify() reports it: trimmed, without its final ';'.
  std::string_view statement;
};

// nullopt unless the text is one statement with at least one numeric literal and nothing the
// scan does not follow: no '$' (dollar quotes, parameters), no backslash (escape strings),
// no NUL, no '[' (a parameter can be subscripted, a number cannot), no ';' before the last
// non-blank character, no unterminated quote or comment, and no number touching an identifier, a
// quote or a dot (PostgreSQL 15 rejects "123abc").
std::optional<LiteralTemplate> numeric_template(std::string_view sql);

}  // namespace pgmoat::parser
