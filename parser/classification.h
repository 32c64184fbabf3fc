// Plain data produced by the classifier. No libpg_query type ever leaves parser/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgmoat::parser {

// The vocabulary rules name. A statement carries a *set* of classes: `DELETE FROM t` is both
// `delete` and `delete_without_where`; `WITH d AS (DELETE ...) SELECT ...` is `select` and
// `delete`. Keep kStatementClassNames in classification.cpp in the same order.
enum class StatementClass : std::uint8_t {
  drop,
  truncate,
  delete_without_where,
  update_without_where,
  delete_,
  update,
  insert,
  merge,
  select,
  alter_drop_column,
  alter_column_type,
  ddl,
  do_block,
  copy_from,
  copy_to,
  copy_program,
  alter_system,
  role_admin,
  session_replication_role,
  dangerous_function,  // set by the policy layer from `functions`, never by the classifier
  transaction,
  set,
  other,
  kCount
};

using ClassSet = std::uint32_t;
static_assert(static_cast<int>(StatementClass::kCount) <= 32);

constexpr ClassSet bit(StatementClass c) {
  return ClassSet{1} << static_cast<unsigned>(c);
}
inline bool has(ClassSet s, StatementClass c) {
  return (s & bit(c)) != 0;
}

// Reads, transaction control, plain SETs and the unclassified: statements that change no data,
// schema, roles or server state. The audit trail records the others (by default).
constexpr ClassSet kReadOnlyClasses = bit(StatementClass::select) | bit(StatementClass::copy_to) |
                                      bit(StatementClass::transaction) | bit(StatementClass::set) |
                                      bit(StatementClass::other);

// "delete" for StatementClass::delete_, etc.
std::string_view class_name(StatementClass c);
// nullopt for an unknown name.
std::optional<StatementClass> class_from_name(std::string_view name);
// "delete,delete_without_where" in enum order.
std::string class_list(ClassSet s);

enum class Access : std::uint8_t { read, write, ddl };

struct TableRef {
  std::string name;  // schema-qualified when written so: "public.users", "users"
  Access access = Access::read;
  bool operator==(const TableRef&) const = default;
};

struct Statement {
  ClassSet classes = 0;
  std::vector<TableRef> tables;        // tables written, read or changed by DDL (no CTE names)
  std::vector<std::string> functions;  // every function called anywhere, lower-case, unqualified
  std::string object_type;             // for drop/ddl: "table", "schema", "index", ...
  std::string target;                  // human summary of the main target, e.g. "public.users"
  std::string command;                 // "DELETE", "DROP TABLE", "SELECT", ... (for messages)
  std::string text;                    // this statement's own text, trimmed
  // SHA-256 of the parse tree without constants and locations (what libpg_query's fingerprint
  // depends on); empty for read-only statements (kReadOnlyClasses), which are not audited by
  // default.
  std::string shape;
  // For SET / RESET / SHOW of a variable (e.g. "pgmoat.approval"), lower-case name and value.
  std::string set_name;
  std::string set_value;
  bool is_reset = false;
  bool set_local = false;  // SET LOCAL: ends with the transaction
  // PREPARE name AS ... / EXECUTE name / DEALLOCATE name: the SQL-level prepared statement's
  // name (empty for DEALLOCATE ALL). Also set by statements that run one: EXPLAIN ANALYZE
  // EXECUTE name, CREATE TABLE ... AS EXECUTE name.
  std::string prepared_name;
  // DISCARD ALL: drops every prepared statement of the session (and more).
  bool discard_all = false;
  // Contains code that cannot be judged before it runs: a DO block (class do_block), or a
  // function/procedure body that is not fully readable -- dynamic EXECUTE of a computed string,
  // a language other than sql/plpgsql, a body that does not parse. Such a CREATE FUNCTION keeps
  // its classes (ddl + whatever was readable) and gets no extra class: policies look at `opaque`.
  bool opaque = false;
  std::string opaque_reason;  // why `opaque` is set, for messages ("DO block", ...)
};

struct Classification {
  bool ok = true;
  std::string error;  // libpg_query's message when !ok
  int error_position = 0;
  std::vector<Statement> statements;
  // Set on the classification ClassificationCache shares between texts that differ only in
  // their numbers (parser/literal_template.h): its one statement's `text` is the template's,
  // with $1, $2, ... for the numbers. with_own_text() (classify.h) gives the text its own.
  bool shared_template = false;
  // Some statement prepares, runs or drops a prepared statement: has a `prepared_name`, or is
  // DEALLOCATE ALL or DISCARD ALL. The gate follows names only then.
  bool names_prepared = false;
  // Union over statements, for a quick "is any of these here" test.
  ClassSet all_classes() const {
    ClassSet s = 0;
    for (const auto& st : statements) s |= st.classes;
    return s;
  }
};

// Whether two classifications judge alike: the same statements (text, classes, tables,
// functions, names, settings, opacity).
bool same_judgement(const Classification& a, const Classification& b);

}  // namespace pgmoat::parser
