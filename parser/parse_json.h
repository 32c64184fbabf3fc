// Internal to parser/: the one place that calls pg_query_parse and turns its JSON into a DOM.
#pragma once

#include <pg_query.h>
#include <rapidjson/document.h>

#include <optional>
#include <string>
#include <string_view>

namespace pgmoat::parser::detail {

// How libpg_query reads a backslash in a '...' string on this thread: as Postgres does with
// standard_conforming_strings on (`standard`, libpg_query's default) or off. Set for the
// length of one classification; every parse inside it (function bodies too) reads so.
class StringsScope {
 public:
  explicit StringsScope(bool standard);
  ~StringsScope();
  StringsScope(const StringsScope&) = delete;
  StringsScope& operator=(const StringsScope&) = delete;
  static bool standard();

 private:
  bool saved_standard_;
  bool saved_warning_;
};

struct ParseOutcome {
  bool ok = false;
  std::string error;
  int error_position = 0;
};

// SHA-256 (raw bytes) of a statement's parse tree without its constants and locations: the
// part of the tree libpg_query's fingerprint depends on (parser/fingerprint.cpp). Empty for a
// tree too deep to serialise.
// `params_are_numbers`: the tree is a literal template's (parser/literal_template.h), whose
// $n each replaced a number: a ParamRef, and a unary minus of one (which the grammar folds into
// a negative constant when it is a number), count as the constant they stand for.
std::string shape_digest(const rapidjson::Value& stmt, bool params_are_numbers = false);

// Owns one pg_query_parse result and the DOM read in place from it.
class ParsedSql {
 public:
  ParsedSql();
  ~ParsedSql();
  ParsedSql(const ParsedSql&) = delete;
  ParsedSql& operator=(const ParsedSql&) = delete;

  // Parses `sql` (which must not contain NUL bytes) with libpg_query.
  ParseOutcome parse(std::string_view sql);
  // `stmts[]` of the parse tree; null when parse() failed.
  const rapidjson::Value* stmts() const;

 private:
  PgQueryParseResult result_{};
  bool have_result_ = false;
  // The outermost parse on a thread builds its DOM in a reused thread-local buffer (no malloc
  // for typical statements); nested parses (function bodies) use their own heap pool.
  bool owns_thread_buffer_ = false;
  std::optional<rapidjson::MemoryPoolAllocator<>> pool_;
  std::optional<rapidjson::Document> doc_;
};

// The text of one entry of `stmts[]`, using stmt_location / stmt_len, trimmed.
std::string_view statement_text(std::string_view sql, const rapidjson::Value& raw_stmt);

}  // namespace pgmoat::parser::detail
