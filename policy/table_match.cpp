// Table globs against the classifier's table names (rules and approvals).
#include "policy/engine_detail.h"

namespace pgmoat::policy::detail {
namespace {
using parser::StatementClass;

struct Split {
  std::optional<std::string_view> schema;
  std::string_view name;
};

// "db.schema.table" keeps the last two parts; the database part never decides anything.
Split split_name(std::string_view qualified) {
  auto dot = qualified.rfind('.');
  if (dot == std::string_view::npos) return {std::nullopt, qualified};
  std::string_view schema = qualified.substr(0, dot);
  if (auto prev = schema.rfind('.'); prev != std::string_view::npos) {
    schema = schema.substr(prev + 1);
  }
  return {schema, qualified.substr(dot + 1)};
}
}  // namespace

bool is_write_class(StatementClass c) {
  switch (c) {
    case StatementClass::drop:
    case StatementClass::truncate:
    case StatementClass::delete_without_where:
    case StatementClass::update_without_where:
    case StatementClass::delete_:
    case StatementClass::update:
    case StatementClass::insert:
    case StatementClass::merge:
    case StatementClass::alter_drop_column:
    case StatementClass::alter_column_type:
    case StatementClass::ddl:
    case StatementClass::copy_from:
      return true;
    default:
      return false;
  }
}

bool table_glob_matches(std::string_view glob, std::string_view table, Bias bias) {
  Split g = split_name(glob);
  Split t = split_name(table);
  if (!glob_match(g.name, t.name, true)) return false;
  if (!g.schema) return true;  // "users": any schema
  if (t.schema) return glob_match(*g.schema, *t.schema, true);
  // Unqualified table: its schema depends on the search_path.
  if (bias == Bias::restrictive) return true;
  return glob_match(*g.schema, "", true);  // only "*" (or similar) matches an unknown schema
}

bool tables_unknown(const parser::Statement& st) {
  if (st.opaque || parser::has(st.classes, StatementClass::do_block)) return true;
  if (!parser::has(st.classes, StatementClass::drop)) return false;
  // Objects whose DROP (with CASCADE, which the classification does not record) takes tables
  // or columns with it.
  for (std::string_view t :
       {"schema", "database", "owned objects", "extension", "type", "domain"}) {
    if (st.object_type == t) return true;
  }
  return false;
}

std::vector<const parser::TableRef*> relevant_tables(const parser::Statement& st,
                                                     parser::ClassSet classes) {
  bool all = classes == 0;
  for (auto i = 0u; i < static_cast<unsigned>(StatementClass::kCount) && !all; ++i) {
    auto c = static_cast<StatementClass>(i);
    if (parser::has(classes, c) && !is_write_class(c)) all = true;
  }
  std::vector<const parser::TableRef*> out;
  out.reserve(st.tables.size());
  for (const auto& t : st.tables) {
    if (all || t.access != parser::Access::read) out.push_back(&t);
  }
  return out;
}

bool rule_tables_match(const std::vector<std::string>& globs, const parser::Statement& st,
                       parser::ClassSet classes, Bias bias) {
  if (globs.empty()) return true;
  if (bias == Bias::restrictive && tables_unknown(st)) return true;
  for (const parser::TableRef* t : relevant_tables(st, classes)) {
    for (const auto& g : globs) {
      if (table_glob_matches(g, t->name, bias)) return true;
    }
  }
  return false;
}

}  // namespace pgmoat::policy::detail
