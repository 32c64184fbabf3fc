// Function and procedure bodies: SQL bodies are parsed again; PL/pgSQL bodies go through
// pg_query_parse_plpgsql and every embedded SQL expression or statement is parsed again.
#include <pg_query.h>

#include <algorithm>
#include <string>
#include <vector>

#include "parser/parse_json.h"
#include "parser/walker.h"

namespace pgmoat::parser::detail {
namespace {

void mark_opaque(Statement& st, std::string reason) {
  st.opaque = true;
  if (st.opaque_reason.empty()) st.opaque_reason = std::move(reason);
}

const Json* expr_query(const Json* expr) {
  if (expr == nullptr) return nullptr;
  const Json* e = member(*expr, "PLpgSQL_expr");
  return e ? member(*e, "query") : nullptr;
}

class PlWalker {
 public:
  PlWalker(Statement& st, int body_depth) : st_(st), body_depth_(body_depth) {}

  void walk(const Json& v, int depth) {
    if (depth > kMaxJsonDepth) {
      mark_opaque(st_, "PL/pgSQL body nested too deeply to inspect");
      return;
    }
    if (v.IsArray()) {
      for (const auto& e : v.GetArray()) walk(e, depth + 1);
      return;
    }
    if (!v.IsObject()) return;
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      const std::string_view key = sv(it->name);
      const Json& val = it->value;
      if (key == "PLpgSQL_stmt_commit" || key == "PLpgSQL_stmt_rollback") {
        st_.classes |= bit(StatementClass::transaction);  // COMMIT / ROLLBACK in a procedure
      } else if (key == "PLpgSQL_expr") {
        if (const Json* q = member(val, "query")) static_sql(sv(*q));
      } else if (key == "PLpgSQL_stmt_dynexecute" || key == "PLpgSQL_stmt_dynfors") {
        if (const Json* q = expr_query(member(val, "query"))) dynamic_sql(sv(*q));
        walk_except(val, "query", depth);
      } else if (key == "PLpgSQL_stmt_open" && member(val, "dynquery") != nullptr) {
        if (const Json* q = expr_query(member(val, "dynquery"))) dynamic_sql(sv(*q));
        walk_except(val, "dynquery", depth);
      } else if (val.IsObject() || val.IsArray()) {
        walk(val, depth + 1);
      }
    }
  }

 private:
  void walk_except(const Json& obj, std::string_view skip, int depth) {
    for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it) {
      if (sv(it->name) != skip) walk(it->value, depth + 1);
    }
  }

  // An embedded statement ("delete from t") or expression ("a > (select 1)", "x := f(1)").
  void static_sql(std::string_view q) {
    {
      ParsedSql doc;
      if (doc.parse(q).ok) {
        merge(doc, q, true);
        return;
      }
    }
    std::string_view expr = q;
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::string wrapped = "SELECT " + std::string(expr);
      ParsedSql doc;
      if (doc.parse(wrapped).ok) {
        merge(doc, wrapped, false);
        return;
      }
      // An assignment `x := expr` / `x[1] := expr`: look at the right-hand side.
      const auto pos = expr.find(":=");
      if (pos == std::string_view::npos) break;
      expr = expr.substr(pos + 2);
    }
    mark_opaque(st_, "PL/pgSQL expression could not be parsed");
  }

  // EXECUTE <expr>: a constant string is SQL we can read; anything computed is opaque.
  void dynamic_sql(std::string_view q) {
    std::string wrapped = "SELECT " + std::string(q);
    ParsedSql doc;
    if (!doc.parse(wrapped).ok) {
      mark_opaque(st_, "dynamic SQL (EXECUTE) with an unreadable expression");
      return;
    }
    if (const std::string_view text = constant_string(doc); text.data() != nullptr) {
      if (body_depth_ >= kMaxBodyDepth) {
        mark_opaque(st_, "EXECUTE string nested too deeply to inspect");
      } else {
        classify_body_sql(text, st_, body_depth_ + 1);
      }
      return;
    }
    merge(doc, wrapped, false);  // functions and tables used to build the string
    mark_opaque(st_, "dynamic SQL (EXECUTE of a computed string)");
  }

  // The string when `SELECT <expr>` is a single string constant; a null view otherwise.
  static std::string_view constant_string(const ParsedSql& doc) {
    const Json* stmts = doc.stmts();
    if (stmts == nullptr || !stmts->IsArray() || stmts->Size() != 1) return {};
    const Json* stmt = member((*stmts)[0], "stmt");
    const Json* sel = stmt ? member(*stmt, "SelectStmt") : nullptr;
    const Json* targets = sel ? member(*sel, "targetList") : nullptr;
    if (targets == nullptr || !targets->IsArray() || targets->Size() != 1) return {};
    const Json* rt = member((*targets)[0], "ResTarget");
    const Json* val = rt ? member(*rt, "val") : nullptr;
    const Json* c = val ? member(*val, "A_Const") : nullptr;
    const Json* s = c ? member(*c, "sval") : nullptr;
    const Json* str = s ? member(*s, "sval") : nullptr;
    if (str == nullptr) return {};
    const std::string_view out = sv(*str);
    return out.data() != nullptr ? out : std::string_view{"", 0};
  }

  void merge(const ParsedSql& doc, std::string_view source, bool statement_level) {
    const Json* stmts = doc.stmts();
    if (stmts == nullptr || !stmts->IsArray()) return;
    Walker w(st_, source, body_depth_);
    for (const auto& raw : stmts->GetArray()) {
      const Json* stmt = member(raw, "stmt");
      if (stmt == nullptr) continue;
      if (statement_level) {
        w.statement(*stmt, statement_text(source, raw));
      } else {
        w.walk(*stmt);
      }
    }
    if (w.too_deep()) mark_opaque(st_, "embedded SQL nested too deeply to inspect");
  }

  Statement& st_;
  int body_depth_;
};

void read_body_sql(std::string_view sql, Statement& st, int body_depth) {
  ParsedSql doc;
  const ParseOutcome r = doc.parse(sql);
  if (!r.ok) {
    mark_opaque(st, "function body does not parse: " + r.error);
    return;
  }
  const Json* stmts = doc.stmts();
  if (stmts == nullptr || !stmts->IsArray()) return;
  Walker w(st, sql, body_depth);
  for (const auto& raw : stmts->GetArray()) {
    if (const Json* stmt = member(raw, "stmt")) w.statement(*stmt, statement_text(sql, raw));
  }
  if (w.too_deep()) mark_opaque(st, "function body nested too deeply to inspect");
}

void read_plpgsql(std::string_view create_stmt_text, Statement& st, int body_depth) {
  const std::string buf(create_stmt_text);
  PgQueryPlpgsqlParseResult r = pg_query_parse_plpgsql(buf.c_str());
  if (r.error != nullptr) {
    mark_opaque(st, std::string("PL/pgSQL body does not parse: ") +
                        (r.error->message ? r.error->message : "unknown error"));
    pg_query_free_plpgsql_parse_result(r);
    return;
  }
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(r.plpgsql_funcs ? r.plpgsql_funcs : "[]");
  pg_query_free_plpgsql_parse_result(r);
  if (doc.HasParseError()) {
    mark_opaque(st, "PL/pgSQL parse tree unreadable");
    return;
  }
  PlWalker(st, body_depth).walk(doc, 0);
}

template <typename T>
void add_missing(std::vector<T>& into, const std::vector<T>& from) {
  for (const auto& x : from) {
    if (std::find(into.begin(), into.end(), x) == into.end()) into.push_back(x);
  }
}

// The server parses a body again each time it runs, reading a backslash in a '...' string as
// standard_conforming_strings says at that moment. A body with a backslash is read both ways;
// one that reads differently is opaque, with what either reading found.
template <typename Read>
void read_both_ways(std::string_view text, Statement& st, Read read) {
  if (text.find('\\') == std::string_view::npos) {
    read(st);
    return;
  }
  Statement other = st;
  {
    StringsScope flipped(!StringsScope::standard());
    read(other);
  }
  read(st);
  if (st.classes == other.classes && st.tables == other.tables && st.functions == other.functions &&
      st.opaque == other.opaque) {
    return;
  }
  st.classes |= other.classes;
  add_missing(st.tables, other.tables);
  add_missing(st.functions, other.functions);
  st.opaque = true;
  st.opaque_reason =
      "the body reads differently with standard_conforming_strings off (a backslash in a quoted "
      "string)";
}

}  // namespace

void classify_body_sql(std::string_view sql, Statement& st, int body_depth) {
  read_both_ways(sql, st, [&](Statement& into) { read_body_sql(sql, into, body_depth); });
}

namespace {

// The CREATE statement with its PL/pgSQL body between dollar quotes, so that reading it with
// the other setting reads the same body (the server stores the value and parses it again
// when it compiles the function); empty when the body's text cannot be found.
std::string with_dollar_quoted_body(std::string_view text, std::string_view body) {
  constexpr std::string_view kTag = "$pgmoat_body$";
  if (body.find(kTag) != std::string_view::npos) return {};
  // Between dollar quotes already: the text holds the value as it is.
  for (auto at = text.find(body); at != std::string_view::npos; at = text.find(body, at + 1)) {
    const auto end = at + body.size();
    if (at > 0 && text[at - 1] == '$' && end < text.size() && text[end] == '$') {
      return std::string(text);
    }
  }
  // A '...' string: the value with each quote doubled. Escaped forms (E'...', or with
  // standard_conforming_strings off) are not looked for.
  std::string quoted = "'";
  for (char ch : body) {
    quoted += ch;
    if (ch == '\'') quoted += '\'';
  }
  quoted += '\'';
  const auto at = text.find(quoted);
  if (at == std::string_view::npos || text.find(quoted, at + 1) != std::string_view::npos) {
    return {};
  }
  std::string out(text.substr(0, at));
  out.append(kTag).append(body).append(kTag).append(text.substr(at + quoted.size()));
  return out;
}

}  // namespace

void classify_plpgsql(std::string_view create_stmt_text, std::string_view body, Statement& st,
                      int body_depth) {
  if (body.find('\\') == std::string_view::npos) {
    read_plpgsql(create_stmt_text, st, body_depth);
    return;
  }
  const std::string text = with_dollar_quoted_body(create_stmt_text, body);
  if (text.empty()) {
    // Fail closed: a body pgmoat cannot read both ways is judged like a DO block.
    read_plpgsql(create_stmt_text, st, body_depth);
    st.classes |= bit(StatementClass::do_block);
    st.opaque = true;
    st.opaque_reason =
        "PL/pgSQL body with a backslash in an escaped string: write it between dollar quotes";
    return;
  }
  read_both_ways(text, st, [&](Statement& into) { read_plpgsql(text, into, body_depth); });
}

}  // namespace pgmoat::parser::detail
