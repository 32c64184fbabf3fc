#include "parser/classification.h"

#include <array>

namespace pgmoat::parser {
namespace {

// Same order as StatementClass.
constexpr std::array<std::string_view, static_cast<std::size_t>(StatementClass::kCount)>
    kStatementClassNames = {
        "drop",
        "truncate",
        "delete_without_where",
        "update_without_where",
        "delete",
        "update",
        "insert",
        "merge",
        "select",
        "alter_drop_column",
        "alter_column_type",
        "ddl",
        "do_block",
        "copy_from",
        "copy_to",
        "copy_program",
        "alter_system",
        "role_admin",
        "session_replication_role",
        "dangerous_function",
        "transaction",
        "set",
        "other",
};

}  // namespace

std::string_view class_name(StatementClass c) {
  const auto i = static_cast<std::size_t>(c);
  return i < kStatementClassNames.size() ? kStatementClassNames[i] : std::string_view{"?"};
}

std::optional<StatementClass> class_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kStatementClassNames.size(); ++i) {
    if (kStatementClassNames[i] == name) return static_cast<StatementClass>(i);
  }
  if (name == "delete_") return StatementClass::delete_;
  return std::nullopt;
}

std::string class_list(ClassSet s) {
  std::string out;
  for (std::size_t i = 0; i < kStatementClassNames.size(); ++i) {
    if ((s & (ClassSet{1} << i)) == 0) continue;
    if (!out.empty()) out += ',';
    out += kStatementClassNames[i];
  }
  return out;
}

namespace {

bool same_statement(const Statement& a, const Statement& b) {
  return a.classes == b.classes && a.tables == b.tables && a.functions == b.functions &&
         a.object_type == b.object_type && a.command == b.command && a.text == b.text &&
         a.set_name == b.set_name && a.set_value == b.set_value && a.is_reset == b.is_reset &&
         a.set_local == b.set_local && a.prepared_name == b.prepared_name &&
         a.discard_all == b.discard_all && a.opaque == b.opaque;
}

}  // namespace

bool same_judgement(const Classification& a, const Classification& b) {
  if (a.ok != b.ok || a.statements.size() != b.statements.size()) return false;
  for (std::size_t i = 0; i < a.statements.size(); ++i) {
    if (!same_statement(a.statements[i], b.statements[i])) return false;
  }
  return true;
}

}  // namespace pgmoat::parser
