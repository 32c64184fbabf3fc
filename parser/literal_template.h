// A statement's text with its numeric literals replaced by $1, $2, ...: the key under which
// ClassificationCache lets statements that differ only in their numbers (pgbench -M simple,
// clients that write ids inline) share one parse. Pure text, no libpg_query: the scan is
// conservative, and any text it does not fully understand gets no template.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "parser/classification.h"

namespace pgmoat::parser {

struct LiteralTemplate {
  // A NUL byte, then the input with $1, $2, ... in place of its numbers: the cache key of the
  // template's classification, which no client text can equal (Query and Parse texts end at
  // their first NUL).
  std::string key;
  std::string_view text() const { return std::string_view(key).substr(1); }
  // The input's one statement as classify() reports it: trimmed, without its final ';'.
  std::string_view statement;
};

// nullopt unless the text is one statement with at least one numeric literal and nothing the
// scan does not follow: no '$' (dollar quotes, parameters), no backslash (escape strings),
// no NUL, no '[' (a parameter can be subscripted, a number cannot), no ';' before the last
// non-blank character, no unterminated quote or comment, and no number touching an identifier, a
// quote or a dot (PostgreSQL 15 rejects "123abc"), and no OPERATOR(...) (its minus is not
// folded into a number as a plain one is).
std::optional<LiteralTemplate> numeric_template(std::string_view sql);
// The same into `out`, whose key's storage is reused (the cache keeps one per thread); false
// where the other returns nullopt (then `out` holds nothing of use).
bool numeric_template(std::string_view sql, LiteralTemplate& out);

// Whether a template of `sql` could stand for it: only a text whose first word is SELECT,
// INSERT, UPDATE, DELETE or MERGE (the cache skips the scan and lookup for anything else).
bool may_have_template(std::string_view sql);

// classify() of a template's text(), with its shape digest as the numbers' own text would
// have it (a $n, or -$n, counts as the constant it replaced). `depends_on_numbers` is set when
// some WHERE clause might be constant-true for some numbers (`WHERE $1 = $2`): then the
// classification does not stand for the texts the template was made from.
Classification classify_template(std::string_view template_text, bool& depends_on_numbers);

}  // namespace pgmoat::parser
