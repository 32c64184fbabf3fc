// Internal to parser/: walks libpg_query's JSON parse tree and fills a Statement.
// The JSON shape: a node is `{"TypeName": {fields}}`; some struct-valued fields (a DML
// statement's `relation`, `withClause`, `intoClause`) are written without the wrapper.
#pragma once

#include <rapidjson/document.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "parser/classification.h"

namespace pgmoat::parser::detail {

using Json = rapidjson::Value;

// JSON nesting beyond this is refused (fail closed) rather than risking the stack.
inline constexpr int kMaxJsonDepth = 600;
// How many times a body may contain another body to parse (function body -> EXECUTE string
// -> CREATE FUNCTION -> ...). Deeper bodies are marked opaque.
inline constexpr int kMaxBodyDepth = 6;

inline std::string_view sv(const Json& v) {
  return v.IsString() ? std::string_view{v.GetString(), v.GetStringLength()} : std::string_view{};
}
const Json* member(const Json& obj, std::string_view key);
std::string lower(std::string_view s);

// Constant folding of a WHERE clause, enough to see `WHERE true`, `1=1`, `'a'='a'`,
// `1=1 OR x`, `NOT false`, `id = id`. `source` is the text the node's locations point into.
// `depends_on_params`: set when the answer is "no" only because of parameters ($n), which
// some values could make known, and so perhaps true (see const_true.cpp).
bool is_constant_true(const Json& expr, std::string_view source, bool* depends_on_params = nullptr);
// Reads an A_Const body as text (negative integers are read from `source`, because this
// libpg_query version writes them as `"ival": {}`).
std::string const_text(const Json& a_const_body, std::string_view source);

class Walker {
 public:
  // `source` is the text this parse tree came from (locations index into it).
  Walker(Statement& st, std::string_view source, int body_depth)
      : st_(st), source_(source), body_depth_(body_depth) {}

  // A statement-level node (`{"DeleteStmt": {...}}`), e.g. a top-level statement, a CTE-less
  // statement inside EXPLAIN ANALYZE / PREPARE / CREATE RULE / COPY / a function body.
  // `stmt_text` is that statement's own text (used to re-parse PL/pgSQL functions).
  void statement(const Json& node, std::string_view stmt_text);
  // Any node below statement level: collects tables, functions and nested DML.
  void walk(const Json& v);

  bool too_deep() const { return too_deep_; }
  // Some WHERE clause was judged "not constant-true" only because of parameters ($n): with
  // numbers in their place it might be (see is_constant_true).
  bool where_depends_on_params() const { return where_depends_on_params_; }

 private:
  void dispatch(std::string_view type, const Json& body, bool statement_level,
                std::string_view stmt_text);
  void walk_members(const Json& body, std::initializer_list<std::string_view> skip = {});
  void walk_as(const Json* v, Access access);
  void range_var(const Json& rv, Access access);
  void func_call(const Json& body);
  void note_set_stmt(const Json& set_body);

  void select_stmt(const Json& body, bool statement_level);
  void dml_stmt(std::string_view type, const Json& body);
  void with_clause_begin(const Json& body, std::size_t& mark);
  void with_clause_end(std::size_t mark);

  void explain_stmt(const Json& body);
  void copy_stmt(const Json& body);
  void create_function(const Json& body, std::string_view stmt_text);
  void drop_like(std::string_view type, const Json& body);
  void variable_set(const Json& body);
  void transaction_stmt(const Json& body);
  void ddl_stmt(std::string_view type, const Json& body);

  void add(StatementClass c) { st_.classes |= bit(c); }
  void set_command(std::string_view c);
  void set_object_type(std::string_view t);
  void set_target(std::string_view t);
  void add_table(std::string name, Access access);
  void mark_opaque(std::string_view reason);

  Statement& st_;
  std::string_view source_;
  int body_depth_;
  int depth_ = 0;
  bool too_deep_ = false;
  bool where_depends_on_params_ = false;
  Access access_ = Access::read;
  // Names of CTEs in scope, innermost last. A RangeVar without schema that matches one is a
  // CTE reference, not a table.
  std::vector<std::string_view> ctes_;
};

// Parses `sql` (a SQL function body, a constant EXECUTE string) and merges every statement's
// classes, tables and functions into `st`. Unparseable text makes `st` opaque.
void classify_body_sql(std::string_view sql, Statement& st, int body_depth);
// Parses a whole CREATE FUNCTION/PROCEDURE ... LANGUAGE plpgsql statement with
// pg_query_parse_plpgsql and merges the embedded SQL into `st`. `body`: the body's value.
void classify_plpgsql(std::string_view create_stmt_text, std::string_view body, Statement& st,
                      int body_depth);

}  // namespace pgmoat::parser::detail
