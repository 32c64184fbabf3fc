#include "parser/walker.h"

#include <algorithm>
#include <cctype>

namespace pgmoat::parser::detail {
namespace {

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// "OBJECT_MATVIEW" -> "materialized view", "OBJECT_FOREIGN_TABLE" -> "foreign table".
std::string object_type_name(std::string_view objtype) {
  if (starts_with(objtype, "OBJECT_")) objtype.remove_prefix(7);
  if (objtype == "MATVIEW") return "materialized view";
  std::string out = lower(objtype);
  std::replace(out.begin(), out.end(), '_', ' ');
  return out;
}

bool table_like(std::string_view object_type) {
  return object_type == "table" || object_type == "view" || object_type == "materialized view" ||
         object_type == "foreign table";
}

// The node inside a one-member wrapper: {"String": {...}} -> {...}; null when not a wrapper.
const Json* unwrap(const Json& v, std::string_view type) {
  if (!v.IsObject() || v.MemberCount() != 1) return nullptr;
  auto it = v.MemberBegin();
  return sv(it->name) == type ? &it->value : nullptr;
}

std::string_view string_node(const Json& v) {
  const Json* s = unwrap(v, "String");
  const Json* val = s ? member(*s, "sval") : nullptr;
  return val ? sv(*val) : std::string_view{};
}

// A qualified name: a List of String, a bare String, ObjectWithArgs or TypeName.
std::string object_name(const Json& v) {
  const Json* items = nullptr;
  if (const Json* l = unwrap(v, "List")) {
    items = member(*l, "items");
  } else if (const Json* owa = unwrap(v, "ObjectWithArgs")) {
    items = member(*owa, "objname");
  } else if (const Json* tn = unwrap(v, "TypeName")) {
    items = member(*tn, "names");
  } else if (v.IsArray()) {
    items = &v;
  } else {
    return std::string(string_node(v));
  }
  std::string out;
  if (items == nullptr || !items->IsArray()) return out;
  for (const auto& item : items->GetArray()) {
    if (!out.empty()) out += '.';
    out += string_node(item);
  }
  return out;
}

std::string role_name(const Json* v) {
  if (v == nullptr) return {};
  if (v->IsString()) return std::string(sv(*v));
  const Json* rs = unwrap(*v, "RoleSpec");
  if (rs == nullptr) rs = v;  // unwrapped RoleSpec
  if (const Json* n = member(*rs, "rolename")) return std::string(sv(*n));
  if (const Json* t = member(*rs, "roletype")) return lower(sv(*t));
  return {};
}

bool is_true_word(std::string_view s) {
  const std::string l = lower(s);
  return !(l == "false" || l == "off" || l == "0" || l == "no" || l == "f" || l == "n");
}

}  // namespace

const Json* member(const Json& obj, std::string_view key) {
  if (!obj.IsObject()) return nullptr;
  for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
    if (sv(it->name) == key) return &it->value;
  }
  return nullptr;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void Walker::set_command(std::string_view c) {
  if (st_.command.empty()) st_.command = std::string(c);
}
void Walker::set_object_type(std::string_view t) {
  if (st_.object_type.empty()) st_.object_type = std::string(t);
}
void Walker::set_target(std::string_view t) {
  if (st_.target.empty()) st_.target = std::string(t);
}
void Walker::add_table(std::string name, Access access) {
  if (name.empty()) return;
  for (const auto& t : st_.tables) {
    if (t.access == access && t.name == name) return;
  }
  st_.tables.push_back(TableRef{std::move(name), access});
}
void Walker::mark_opaque(std::string_view reason) {
  st_.opaque = true;
  if (st_.opaque_reason.empty()) st_.opaque_reason = std::string(reason);
}

void Walker::statement(const Json& node, std::string_view stmt_text) {
  if (node.IsObject() && node.MemberCount() == 1) {
    auto it = node.MemberBegin();
    if (++depth_ > kMaxJsonDepth) {
      too_deep_ = true;
    } else {
      dispatch(sv(it->name), it->value, true, stmt_text);
    }
    --depth_;
    return;
  }
  walk(node);
}

void Walker::walk(const Json& v) {
  if (v.IsArray()) {
    for (const auto& e : v.GetArray()) walk(e);
    return;
  }
  if (!v.IsObject() || too_deep_) return;
  if (++depth_ > kMaxJsonDepth) {
    too_deep_ = true;
    --depth_;
    return;
  }
  auto first = v.MemberBegin();
  if (v.MemberCount() == 1 && first->name.GetStringLength() > 0 &&
      std::isupper(static_cast<unsigned char>(first->name.GetString()[0]))) {
    dispatch(sv(first->name), first->value, false, {});
  } else if (member(v, "relname") != nullptr) {
    range_var(v, access_);  // an unwrapped RangeVar (e.g. Constraint.pktable)
  } else {
    walk_members(v);
  }
  --depth_;
}

void Walker::walk_members(const Json& body, std::initializer_list<std::string_view> skip) {
  if (!body.IsObject()) return;
  for (auto it = body.MemberBegin(); it != body.MemberEnd(); ++it) {
    const Json& val = it->value;
    if (!val.IsObject() && !val.IsArray()) continue;
    const std::string_view key = sv(it->name);
    if (std::find(skip.begin(), skip.end(), key) != skip.end()) continue;
    walk(val);
  }
}

void Walker::walk_as(const Json* v, Access access) {
  if (v == nullptr) return;
  const Access saved = access_;
  access_ = access;
  walk(*v);
  access_ = saved;
}

void Walker::range_var(const Json& rv, Access access) {
  const Json* rel = member(rv, "relname");
  if (rel == nullptr) return;
  const Json* schema = member(rv, "schemaname");
  const Json* catalog = member(rv, "catalogname");
  const std::string_view relname = sv(*rel);
  if (schema == nullptr && catalog == nullptr) {
    // A CTE in scope shadows a table of the same name.
    for (auto it = ctes_.rbegin(); it != ctes_.rend(); ++it) {
      if (*it == relname) return;
    }
    add_table(std::string(relname), access);
    return;
  }
  std::string name;
  if (catalog != nullptr) {
    name += sv(*catalog);
    name += '.';
  }
  if (schema != nullptr) {
    name += sv(*schema);
    name += '.';
  }
  name += relname;
  add_table(std::move(name), access);
}

static std::string range_var_name(const Json* rv) {
  if (rv == nullptr) return {};
  if (const Json* w = unwrap(*rv, "RangeVar")) rv = w;
  const Json* rel = member(*rv, "relname");
  if (rel == nullptr) return {};
  std::string name;
  if (const Json* c = member(*rv, "catalogname")) name = std::string(sv(*c)) + ".";
  if (const Json* s = member(*rv, "schemaname")) name += std::string(sv(*s)) + ".";
  name += sv(*rel);
  return name;
}

void Walker::func_call(const Json& body) {
  const Json* names = member(body, "funcname");
  if (names != nullptr && names->IsArray() && !names->Empty()) {
    std::string name = lower(string_node((*names)[names->Size() - 1]));
    if (name == "set_config") {
      const Json* args = member(body, "args");
      if (args != nullptr && args->IsArray() && !args->Empty()) {
        if (const Json* c = unwrap((*args)[0], "A_Const")) {
          if (lower(const_text(*c, source_)) == "session_replication_role") {
            add(StatementClass::session_replication_role);
          }
        }
      }
    }
    if (!name.empty() &&
        std::find(st_.functions.begin(), st_.functions.end(), name) == st_.functions.end()) {
      st_.functions.push_back(std::move(name));
    }
  }
  walk_members(body, {"funcname"});
}

void Walker::note_set_stmt(const Json& set_body) {
  const Json* name = member(set_body, "name");
  const Json* kind = member(set_body, "kind");
  if (name == nullptr || kind == nullptr) return;
  const std::string_view k = sv(*kind);
  if ((k == "VAR_SET_VALUE" || k == "VAR_SET_CURRENT") &&
      lower(sv(*name)) == "session_replication_role") {
    add(StatementClass::session_replication_role);
  }
}

void Walker::with_clause_begin(const Json& body, std::size_t& mark) {
  mark = ctes_.size();
  const Json* with = member(body, "withClause");
  if (with == nullptr) return;
  const Json* ctes = member(*with, "ctes");
  if (ctes == nullptr || !ctes->IsArray()) return;
  const Json* rec = member(*with, "recursive");
  const bool recursive = rec != nullptr && rec->IsTrue();
  auto cte_name = [](const Json& cte) -> std::string_view {
    const Json* c = unwrap(cte, "CommonTableExpr");
    const Json* n = c ? member(*c, "ctename") : nullptr;
    return n ? sv(*n) : std::string_view{};
  };
  if (recursive) {
    for (const auto& cte : ctes->GetArray()) ctes_.push_back(cte_name(cte));
  }
  for (const auto& cte : ctes->GetArray()) {
    // In a non-recursive WITH a CTE sees only the CTEs before it: in
    // `WITH users AS (SELECT * FROM users)` the inner `users` is the real table.
    if (const Json* c = unwrap(cte, "CommonTableExpr")) {
      if (const Json* q = member(*c, "ctequery")) walk(*q);
    }
    if (!recursive) ctes_.push_back(cte_name(cte));
  }
}

void Walker::with_clause_end(std::size_t mark) {
  ctes_.resize(mark);
}

void Walker::select_stmt(const Json& body, bool statement_level) {
  if (const Json* into = member(body, "intoClause")) {
    add(StatementClass::ddl);
    set_command("SELECT INTO");
    set_object_type("table");
    const std::string name = range_var_name(member(*into, "rel"));
    set_target(name);
    add_table(name, Access::ddl);
  }
  if (statement_level) {
    add(StatementClass::select);
    set_command("SELECT");
  }
  const Access saved = access_;
  access_ = Access::read;
  std::size_t mark = 0;
  with_clause_begin(body, mark);
  walk_members(body, {"withClause", "intoClause"});
  with_clause_end(mark);
  access_ = saved;
}

void Walker::dml_stmt(std::string_view type, const Json& body) {
  const Json* where = member(body, "whereClause");
  bool depends = false;
  const bool no_where = where == nullptr || is_constant_true(*where, source_, &depends);
  where_depends_on_params_ = where_depends_on_params_ || depends;
  if (type == "InsertStmt") {
    add(StatementClass::insert);
    set_command("INSERT");
  } else if (type == "UpdateStmt") {
    add(StatementClass::update);
    if (no_where) add(StatementClass::update_without_where);
    set_command("UPDATE");
  } else if (type == "DeleteStmt") {
    add(StatementClass::delete_);
    if (no_where) add(StatementClass::delete_without_where);
    set_command("DELETE");
  } else {
    add(StatementClass::merge);
    set_command("MERGE");
  }
  const Access saved = access_;
  access_ = Access::read;
  std::size_t mark = 0;
  with_clause_begin(body, mark);
  if (const Json* rel = member(body, "relation")) {
    set_target(range_var_name(rel));
    range_var(*rel, Access::write);
  }
  walk_members(body, {"withClause", "relation"});
  with_clause_end(mark);
  access_ = saved;
}

void Walker::explain_stmt(const Json& body) {
  bool analyze = false;
  if (const Json* opts = member(body, "options"); opts != nullptr && opts->IsArray()) {
    for (const auto& o : opts->GetArray()) {
      const Json* d = unwrap(o, "DefElem");
      const Json* name = d ? member(*d, "defname") : nullptr;
      if (name == nullptr || lower(sv(*name)) != "analyze") continue;
      const Json* arg = member(*d, "arg");
      if (arg == nullptr) {
        analyze = true;
      } else if (const Json* s = unwrap(*arg, "String")) {
        const Json* val = member(*s, "sval");
        analyze = val == nullptr || is_true_word(sv(*val));
      } else if (const Json* i = unwrap(*arg, "Integer")) {
        analyze = member(*i, "ival") != nullptr;  // 0 is written as {}
      } else {
        analyze = true;  // unknown form: assume it executes
      }
    }
  }
  const Json* query = member(body, "query");
  if (analyze) {
    // EXPLAIN ANALYZE runs the statement: it has the statement's classes.
    set_command("EXPLAIN ANALYZE");
    if (query != nullptr) statement(*query, {});
  } else {
    // Plain EXPLAIN only plans; nothing inside runs.
    add(StatementClass::other);
    set_command("EXPLAIN");
  }
}

void Walker::copy_stmt(const Json& body) {
  const Json* is_from = member(body, "is_from");
  const Json* is_program = member(body, "is_program");
  const bool from = is_from != nullptr && is_from->IsTrue();
  set_command("COPY");
  add(from ? StatementClass::copy_from : StatementClass::copy_to);
  if (is_program != nullptr && is_program->IsTrue()) add(StatementClass::copy_program);
  if (const Json* rel = member(body, "relation")) {
    set_target(range_var_name(rel));
    range_var(*rel, from ? Access::write : Access::read);
  }
  if (const Json* q = member(body, "query")) statement(*q, {});
  walk_members(body, {"relation", "query"});
}

void Walker::create_function(const Json& body, std::string_view stmt_text) {
  add(StatementClass::ddl);
  const Json* proc = member(body, "is_procedure");
  const bool is_proc = proc != nullptr && proc->IsTrue();
  set_command(is_proc ? "CREATE PROCEDURE" : "CREATE FUNCTION");
  set_object_type(is_proc ? "procedure" : "function");
  if (const Json* fn = member(body, "funcname")) set_target(object_name(*fn));

  std::string language;
  std::string_view as_text;
  bool has_as = false;
  if (const Json* opts = member(body, "options"); opts != nullptr && opts->IsArray()) {
    for (const auto& o : opts->GetArray()) {
      const Json* d = unwrap(o, "DefElem");
      const Json* name = d ? member(*d, "defname") : nullptr;
      const Json* arg = d ? member(*d, "arg") : nullptr;
      if (name == nullptr || arg == nullptr) continue;
      if (sv(*name) == "language") {
        language = lower(string_node(*arg));
      } else if (sv(*name) == "as") {
        if (const Json* l = unwrap(*arg, "List")) {
          const Json* items = member(*l, "items");
          if (items != nullptr && items->IsArray() && !items->Empty()) {
            as_text = string_node((*items)[0]);
            has_as = true;
            if (items->Size() > 1) language = language.empty() ? "c" : language;
          }
        }
      }
    }
  }
  // Parameter defaults and `SET x = ...` options are walked like any expression.
  walk_members(body, {"funcname", "returnType", "sql_body"});

  if (const Json* sql_body = member(body, "sql_body")) {
    // BEGIN ATOMIC ... END: a List holding a List of statements; RETURN expr: a ReturnStmt.
    const Json* outer = unwrap(*sql_body, "List");
    const Json* items = outer ? member(*outer, "items") : nullptr;
    if (items != nullptr && items->IsArray()) {
      for (const auto& inner : items->GetArray()) {
        const Json* l = unwrap(inner, "List");
        const Json* stmts = l ? member(*l, "items") : nullptr;
        if (stmts == nullptr || !stmts->IsArray()) {
          walk(inner);
          continue;
        }
        for (const auto& s : stmts->GetArray()) statement(s, {});
      }
    } else {
      walk(*sql_body);
    }
    return;
  }
  if (!has_as) return;
  if (body_depth_ >= kMaxBodyDepth) {
    mark_opaque("function body nested too deeply to inspect");
  } else if (language.empty() || language == "sql") {
    classify_body_sql(as_text, st_, body_depth_ + 1);
  } else if (language == "plpgsql") {
    if (stmt_text.empty()) {
      mark_opaque("PL/pgSQL body without statement text");
    } else {
      classify_plpgsql(stmt_text, as_text, st_, body_depth_ + 1);
    }
  } else {
    mark_opaque("function body in language " + language + " cannot be inspected");
  }
}

void Walker::drop_like(std::string_view type, const Json& body) {
  add(StatementClass::drop);
  if (type == "DropStmt") {
    const Json* rt = member(body, "removeType");
    const std::string ot = rt ? object_type_name(sv(*rt)) : std::string("object");
    set_object_type(ot);
    set_command("DROP " + upper(ot));
    if (const Json* objs = member(body, "objects"); objs != nullptr && objs->IsArray()) {
      for (const auto& o : objs->GetArray()) {
        std::string name = object_name(o);
        set_target(name);
        if (table_like(ot)) add_table(std::move(name), Access::ddl);
      }
    }
    return;
  }
  if (type == "DropRoleStmt") {
    // DROP ROLE is both a drop and role administration.
    add(StatementClass::role_admin);
    set_object_type("role");
    set_command("DROP ROLE");
    if (const Json* roles = member(body, "roles"); roles != nullptr && roles->IsArray()) {
      if (!roles->Empty()) set_target(role_name(&(*roles)[0]));
    }
    return;
  }
  if (type == "DropOwnedStmt") {
    add(StatementClass::role_admin);
    set_object_type("owned objects");
    set_command("DROP OWNED");
    if (const Json* roles = member(body, "roles"); roles != nullptr && roles->IsArray()) {
      if (!roles->Empty()) set_target(role_name(&(*roles)[0]));
    }
    return;
  }
  struct Known {
    std::string_view type, object_type, name_field;
  };
  static constexpr Known kKnown[] = {
      {"DropdbStmt", "database", "dbname"},
      {"DropTableSpaceStmt", "tablespace", "tablespacename"},
      {"DropSubscriptionStmt", "subscription", "subname"},
      {"DropUserMappingStmt", "user mapping", "servername"},
  };
  for (const auto& k : kKnown) {
    if (k.type != type) continue;
    set_object_type(k.object_type);
    set_command("DROP " + upper(k.object_type));
    if (const Json* n = member(body, k.name_field)) set_target(sv(*n));
    return;
  }
  set_object_type("object");
  set_command("DROP");
}

void Walker::variable_set(const Json& body) {
  add(StatementClass::set);
  const Json* kind = member(body, "kind");
  const std::string_view k = kind ? sv(*kind) : std::string_view{};
  const Json* name = member(body, "name");
  st_.set_name = name ? lower(sv(*name)) : std::string{};
  if (const Json* local = member(body, "is_local"); local != nullptr && local->IsBool()) {
    st_.set_local = local->GetBool();
  }
  if (k == "VAR_RESET" || k == "VAR_RESET_ALL") {
    set_command("RESET");
    st_.is_reset = true;
    if (k == "VAR_RESET_ALL") st_.set_name = "all";
  } else {
    set_command("SET");
    st_.is_reset = k == "VAR_SET_DEFAULT";
  }
  std::string value;
  if (const Json* args = member(body, "args"); args != nullptr && args->IsArray()) {
    for (const auto& a : args->GetArray()) {
      const Json* c = unwrap(a, "A_Const");
      if (c == nullptr) {
        if (const Json* tc = unwrap(a, "TypeCast")) {
          if (const Json* arg = member(*tc, "arg")) c = unwrap(*arg, "A_Const");
        }
      }
      if (c == nullptr) continue;
      if (!value.empty()) value += ", ";
      value += const_text(*c, source_);
    }
  }
  st_.set_value = std::move(value);
  note_set_stmt(body);
}

void Walker::transaction_stmt(const Json& body) {
  add(StatementClass::transaction);
  static constexpr std::pair<std::string_view, std::string_view> kCommands[] = {
      {"TRANS_STMT_BEGIN", "BEGIN"},
      {"TRANS_STMT_START", "START TRANSACTION"},
      {"TRANS_STMT_COMMIT", "COMMIT"},
      {"TRANS_STMT_ROLLBACK", "ROLLBACK"},
      {"TRANS_STMT_SAVEPOINT", "SAVEPOINT"},
      {"TRANS_STMT_RELEASE", "RELEASE"},
      {"TRANS_STMT_ROLLBACK_TO", "ROLLBACK TO SAVEPOINT"},
      {"TRANS_STMT_PREPARE", "PREPARE TRANSACTION"},
      {"TRANS_STMT_COMMIT_PREPARED", "COMMIT PREPARED"},
      {"TRANS_STMT_ROLLBACK_PREPARED", "ROLLBACK PREPARED"},
  };
  const Json* kind = member(body, "kind");
  const std::string_view k = kind ? sv(*kind) : std::string_view{};
  for (const auto& [name, command] : kCommands) {
    if (name == k) set_command(command);
  }
  set_command("TRANSACTION");
}

void Walker::ddl_stmt(std::string_view type, const Json& body) {
  add(StatementClass::ddl);
  static constexpr std::pair<std::string_view, std::string_view> kObjectTypes[] = {
      {"CreateStmt", "table"},
      {"IndexStmt", "index"},
      {"ViewStmt", "view"},
      {"CreateSchemaStmt", "schema"},
      {"CreateSeqStmt", "sequence"},
      {"AlterSeqStmt", "sequence"},
      {"CreateTrigStmt", "trigger"},
      {"CreateEventTrigStmt", "event trigger"},
      {"CreateExtensionStmt", "extension"},
      {"AlterExtensionStmt", "extension"},
      {"CreatedbStmt", "database"},
      {"AlterDatabaseStmt", "database"},
      {"AlterDatabaseSetStmt", "database"},
      {"CreateDomainStmt", "domain"},
      {"AlterDomainStmt", "domain"},
      {"CompositeTypeStmt", "type"},
      {"CreateEnumStmt", "type"},
      {"AlterEnumStmt", "type"},
      {"CreateRangeStmt", "type"},
      {"CreatePolicyStmt", "policy"},
      {"AlterPolicyStmt", "policy"},
      {"CreatePublicationStmt", "publication"},
      {"AlterPublicationStmt", "publication"},
      {"CreateSubscriptionStmt", "subscription"},
      {"AlterSubscriptionStmt", "subscription"},
      {"CreateTableSpaceStmt", "tablespace"},
      {"CreateForeignTableStmt", "foreign table"},
      {"CreateForeignServerStmt", "server"},
      {"CreateFdwStmt", "foreign data wrapper"},
      {"CreateCastStmt", "cast"},
      {"CreateStatsStmt", "statistics"},
      {"AlterFunctionStmt", "function"},
      {"CreatePLangStmt", "language"},
      {"CreateConversionStmt", "conversion"},
      {"CreateTransformStmt", "transform"},
      {"CreateAmStmt", "access method"},
      {"CreateOpClassStmt", "operator class"},
      {"CreateOpFamilyStmt", "operator family"},
  };
  std::string ot;
  for (const auto& [t, o] : kObjectTypes) {
    if (t == type) ot = std::string(o);
  }
  if (ot.empty()) {
    for (std::string_view key : {"objtype", "renameType", "objectType", "kind"}) {
      const Json* v = member(body, key);
      if (v != nullptr && v->IsString() && starts_with(sv(*v), "OBJECT_")) {
        ot = object_type_name(sv(*v));
        break;
      }
    }
  }
  set_object_type(ot);

  std::string verb = "ALTER";
  if (starts_with(type, "Create") || type == "IndexStmt" || type == "ViewStmt" ||
      type == "CompositeTypeStmt" || type == "DefineStmt") {
    verb = "CREATE";
  } else if (type == "CommentStmt") {
    verb = "COMMENT ON";
  } else if (type == "SecLabelStmt") {
    verb = "SECURITY LABEL ON";
  } else if (type == "ImportForeignSchemaStmt") {
    verb = "IMPORT FOREIGN SCHEMA";
    ot.clear();
  }
  if (type == "CreateTableAsStmt") ot = ot == "materialized view" ? ot : "table as";
  set_command(ot.empty() ? verb : verb + " " + upper(ot));

  if (type == "AlterTableStmt") {
    if (const Json* cmds = member(body, "cmds"); cmds != nullptr && cmds->IsArray()) {
      for (const auto& c : cmds->GetArray()) {
        const Json* cmd = unwrap(c, "AlterTableCmd");
        const Json* sub = cmd ? member(*cmd, "subtype") : nullptr;
        if (sub == nullptr) continue;
        if (sv(*sub) == "AT_DropColumn") add(StatementClass::alter_drop_column);
        if (sv(*sub) == "AT_AlterColumnType") add(StatementClass::alter_column_type);
      }
    }
  }
  if (type == "AlterDatabaseSetStmt") {
    if (const Json* s = member(body, "setstmt")) note_set_stmt(*s);
  }

  // The object the DDL changes: a relation, or a name field.
  for (std::string_view key : {"relation", "view", "sequence", "typevar", "into", "table"}) {
    const Json* v = member(body, key);
    if (v == nullptr) continue;
    if (key == "into") v = member(*v, "rel");
    if (v == nullptr) continue;
    std::string name = range_var_name(v);
    set_target(name);
    add_table(std::move(name), Access::ddl);
  }
  for (std::string_view key : {"schemaname", "dbname", "extname", "trigname", "policy_name",
                               "servername", "tablespacename", "pubname", "subname"}) {
    if (const Json* v = member(body, key); v != nullptr && v->IsString()) set_target(sv(*v));
  }
  for (std::string_view key : {"object", "defnames", "typeName", "func", "domainname"}) {
    if (const Json* v = member(body, key)) set_target(object_name(*v));
  }
  if (type == "CreateTableAsStmt") {
    if (const Json* q = member(body, "query")) statement(*q, {});
    walk_members(body, {"relation", "view", "sequence", "typevar", "into", "table", "query"});
    return;
  }
  walk_members(body, {"relation", "view", "sequence", "typevar", "into", "table"});
}

void Walker::dispatch(std::string_view type, const Json& body, bool statement_level,
                      std::string_view stmt_text) {
  if (type == "RangeVar") return range_var(body, access_);
  if (type == "FuncCall") return func_call(body);
  if (type == "SelectStmt") return select_stmt(body, statement_level);
  if (type == "InsertStmt" || type == "UpdateStmt" || type == "DeleteStmt" || type == "MergeStmt") {
    return dml_stmt(type, body);
  }
  if (type == "VariableSetStmt") {
    if (statement_level) return variable_set(body);
    note_set_stmt(body);  // e.g. CREATE FUNCTION ... SET session_replication_role = replica
    return walk_members(body);
  }
  if (type.size() < 4 || type.substr(type.size() - 4) != "Stmt" || type == "ReturnStmt") {
    return walk_members(body);  // an expression or clause node
  }

  // Statement nodes. Nested ones (CREATE SCHEMA elements) are handled the same way.
  if (type == "ExplainStmt") return explain_stmt(body);
  if (type == "CopyStmt") return copy_stmt(body);
  if (type == "TruncateStmt") {
    add(StatementClass::truncate);
    set_command("TRUNCATE");
    set_object_type("table");
    if (const Json* rels = member(body, "relations"); rels != nullptr && rels->IsArray()) {
      if (!rels->Empty()) set_target(range_var_name(&(*rels)[0]));
      walk_as(rels, Access::write);
    }
    return;
  }
  if (type == "PrepareStmt") {
    // PREPARE has the classes of the statement it prepares.
    set_command("PREPARE");
    if (const Json* n = member(body, "name")) st_.prepared_name = std::string(sv(*n));
    // In a function body it changes what a name runs, unseen, whenever the function is called.
    if (body_depth_ > 0)
      mark_opaque("function body prepares statement \"" + st_.prepared_name + "\"");
    if (const Json* q = member(body, "query")) statement(*q, {});
    return walk_members(body, {"query"});
  }
  if (type == "DeclareCursorStmt") {
    set_command("DECLARE CURSOR");
    if (const Json* q = member(body, "query")) statement(*q, {});
    return;
  }
  if (type == "RuleStmt") {
    // A rule's actions run whenever the event fires: ddl plus the actions' classes.
    add(StatementClass::ddl);
    set_command("CREATE RULE");
    set_object_type("rule");
    if (const Json* rel = member(body, "relation")) {
      set_target(range_var_name(rel));
      range_var(*rel, Access::ddl);
    }
    if (const Json* w = member(body, "whereClause")) walk(*w);
    if (const Json* acts = member(body, "actions"); acts != nullptr && acts->IsArray()) {
      for (const auto& a : acts->GetArray()) statement(a, {});
    }
    return;
  }
  if (type == "DoStmt") {
    add(StatementClass::do_block);
    set_command("DO");
    mark_opaque("DO block");
    return;
  }
  if (type == "CreateFunctionStmt") return create_function(body, stmt_text);
  if (starts_with(type, "Drop")) return drop_like(type, body);
  if (type == "TransactionStmt") return transaction_stmt(body);
  if (type == "VariableShowStmt") {
    add(StatementClass::set);
    set_command("SHOW");
    if (const Json* n = member(body, "name")) st_.set_name = lower(sv(*n));
    return;
  }
  if (type == "AlterSystemStmt") {
    add(StatementClass::alter_system);
    set_command("ALTER SYSTEM");
    if (const Json* s = member(body, "setstmt")) {
      note_set_stmt(*s);
      if (const Json* n = member(*s, "name")) set_target(lower(sv(*n)));
    }
    return;
  }
  if (type == "CreateRoleStmt" || type == "AlterRoleStmt" || type == "AlterRoleSetStmt" ||
      type == "GrantStmt" || type == "GrantRoleStmt" || type == "AlterDefaultPrivilegesStmt" ||
      type == "ReassignOwnedStmt" ||
      (type == "RenameStmt" && member(body, "renameType") != nullptr &&
       sv(*member(body, "renameType")) == "OBJECT_ROLE")) {
    add(StatementClass::role_admin);
    if (type == "GrantStmt") {
      const Json* g = member(body, "is_grant");
      set_command(g != nullptr && g->IsTrue() ? "GRANT" : "REVOKE");
      if (const Json* objs = member(body, "objects"); objs != nullptr && objs->IsArray()) {
        if (!objs->Empty()) {
          const Json& o = (*objs)[0];
          set_target(unwrap(o, "RangeVar") ? range_var_name(&o) : object_name(o));
        }
        walk_as(objs, Access::ddl);
      }
      return;
    }
    if (type == "GrantRoleStmt") {
      const Json* g = member(body, "is_grant");
      set_command(g != nullptr && g->IsTrue() ? "GRANT ROLE" : "REVOKE ROLE");
      return;
    }
    if (type == "CreateRoleStmt") {
      set_command("CREATE ROLE");
      set_target(role_name(member(body, "role")));
    } else if (type == "AlterRoleStmt" || type == "AlterRoleSetStmt") {
      set_command("ALTER ROLE");
      set_target(role_name(member(body, "role")));
      if (const Json* s = member(body, "setstmt")) note_set_stmt(*s);
    } else if (type == "RenameStmt") {
      set_command("ALTER ROLE");
      if (const Json* s = member(body, "subname")) set_target(sv(*s));
    } else if (type == "AlterDefaultPrivilegesStmt") {
      set_command("ALTER DEFAULT PRIVILEGES");
    } else {
      set_command("REASSIGN OWNED");
    }
    set_object_type("role");
    return;
  }
  if (starts_with(type, "Create") || starts_with(type, "Alter") || type == "IndexStmt" ||
      type == "ViewStmt" || type == "CompositeTypeStmt" || type == "DefineStmt" ||
      type == "CommentStmt" || type == "RenameStmt" || type == "SecLabelStmt" ||
      type == "ImportForeignSchemaStmt") {
    return ddl_stmt(type, body);
  }
  if (type == "CallStmt") {
    add(StatementClass::other);
    set_command("CALL");
    if (const Json* fc = member(body, "funccall")) func_call(*fc);
    return;
  }
  // Everything else (VACUUM, LISTEN, NOTIFY, LOCK, EXECUTE, DEALLOCATE, FETCH, ...).
  add(StatementClass::other);
  std::string_view word = type.substr(0, type.size() - 4);
  set_command(upper(word));
  if (type == "DiscardStmt") {
    const Json* target = member(body, "target");
    st_.discard_all = target != nullptr && target->IsString() && sv(*target) == "DISCARD_ALL";
    if (body_depth_ > 0 && st_.discard_all) mark_opaque("function body drops prepared statements");
  }
  if (type == "ExecuteStmt" || type == "DeallocateStmt") {
    const Json* n = member(body, "name");  // none: DEALLOCATE ALL
    if (n != nullptr) {
      set_target(sv(*n));
      st_.prepared_name = std::string(sv(*n));
    }
    // A function body runs (or drops) it when called, where pgmoat cannot see what the name
    // stands for then.
    if (body_depth_ > 0) {
      mark_opaque(std::string("function body ") + (type == "ExecuteStmt" ? "runs" : "drops") +
                  (n != nullptr ? " prepared statement \"" + std::string(sv(*n)) + "\""
                                : std::string(" every prepared statement")));
    }
  }
  walk_members(body);
}

}  // namespace pgmoat::parser::detail
