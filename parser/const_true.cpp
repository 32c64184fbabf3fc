// Constant folding of WHERE clauses: `DELETE FROM t WHERE 1=1` deletes every row, so it is
// treated as a DELETE without WHERE. Anything not understood is "unknown" (a real condition).
//
// A parameter ($n) is unknown too, but of another kind: in a literal template (parser/
// literal_template.h) it stands for a number, and some number might make the clause true.
// Val::param marks such an unknown, and is_constant_true() reports it, so that a template's
// answer is used only when no number could change it (`aid = $1` is unknown whatever $1 is:
// the column already makes it so; `$1 = $2` is not, and neither is `NOT ($1 = $2 AND aid = 3)`).
#include <charconv>
#include <cstdlib>
#include <optional>

#include "parser/walker.h"

namespace pgmoat::parser::detail {
namespace {

struct Val {
  enum Kind : std::uint8_t { unknown, null, boolean, number, string } kind = unknown;
  // For an unknown: it is unknown only because of parameters, so some values might make it
  // known, true or false (false: a column, a function call ... leave it unknown, whatever
  // the parameters are).
  bool param = false;
  bool b = false;
  double num = 0;
  std::string str;
};

const Json* unwrap_any(const Json& v, std::string_view& type) {
  if (!v.IsObject() || v.MemberCount() != 1) return nullptr;
  auto it = v.MemberBegin();
  type = sv(it->name);
  return &it->value;
}

std::optional<double> to_number(std::string_view s) {
  double d = 0;
  const auto* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, d);
  if (ec != std::errc{} || p != end) return std::nullopt;
  return d;
}

std::optional<bool> to_bool(const Val& v) {
  if (v.kind == Val::boolean) return v.b;
  if (v.kind == Val::number) return v.num != 0;
  if (v.kind != Val::string) return std::nullopt;
  const std::string l = lower(v.str);
  if (l == "t" || l == "true" || l == "y" || l == "yes" || l == "on" || l == "1") return true;
  if (l == "f" || l == "false" || l == "n" || l == "no" || l == "off" || l == "0") return false;
  return std::nullopt;
}

Val make_bool(bool b) {
  Val v;
  v.kind = Val::boolean;
  v.b = b;
  return v;
}
Val make_null() {
  Val v;
  v.kind = Val::null;
  return v;
}
Val param_unknown() {
  Val v;
  v.param = true;
  return v;
}
// An unknown that no parameter value can make known.
bool fixed_unknown(const Val& v) {
  return v.kind == Val::unknown && !v.param;
}

Val eval(const Json& node, std::string_view source, int depth);

// Three-way comparison of two known, non-null values; nullopt when not comparable.
std::optional<int> compare(const Val& a, const Val& b) {
  if (a.kind == Val::number || b.kind == Val::number) {
    // An untyped literal compared with a number is read as a number ('1' = 1).
    std::optional<double> x = a.kind == Val::number ? a.num : to_number(a.str);
    std::optional<double> y = b.kind == Val::number ? b.num : to_number(b.str);
    if (a.kind == Val::boolean || b.kind == Val::boolean || !x || !y) return std::nullopt;
    return *x < *y ? -1 : (*x > *y ? 1 : 0);
  }
  if (a.kind == Val::boolean || b.kind == Val::boolean) {
    auto x = to_bool(a);
    auto y = to_bool(b);
    if (!x || !y) return std::nullopt;
    return static_cast<int>(*x) - static_cast<int>(*y);
  }
  const int c = a.str.compare(b.str);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

Val eval_a_expr(const Json& body, std::string_view source, int depth) {
  const Json* kind = member(body, "kind");
  const Json* names = member(body, "name");
  if (kind == nullptr || names == nullptr || !names->IsArray() || names->Empty()) return {};
  std::string_view t;
  const Json* s = unwrap_any((*names)[names->Size() - 1], t);
  const Json* sval = s ? member(*s, "sval") : nullptr;
  const std::string_view op = sval ? sv(*sval) : std::string_view{};
  const Json* l = member(body, "lexpr");
  const Json* r = member(body, "rexpr");
  if (r != nullptr && r->IsObject()) {  // the IN list is written as {"List": {"items": []}}
    std::string_view lt0;
    const Json* list = unwrap_any(*r, lt0);
    if (list != nullptr && lt0 == "List") {
      if (const Json* items = member(*list, "items")) r = items;
    }
  }
  if (sv(*kind) == "AEXPR_IN" && l != nullptr && r != nullptr && r->IsArray()) {
    const Val a = eval(*l, source, depth + 1);
    if (a.kind == Val::unknown || a.kind == Val::null) return a;
    bool any = false;
    for (const auto& item : r->GetArray()) {
      const Val b = eval(item, source, depth + 1);
      if (b.kind == Val::unknown) return b;
      if (b.kind == Val::null) continue;
      auto c = compare(a, b);
      if (!c) return {};
      any = any || *c == 0;
    }
    return make_bool(op == "=" ? any : !any);
  }
  if (sv(*kind) != "AEXPR_OP" || r == nullptr) return {};
  if (l == nullptr) {  // prefix operator: -(1), +(1)
    Val v = eval(*r, source, depth + 1);
    if (v.kind == Val::unknown) return v;
    if (v.kind != Val::number) return {};
    if (op == "-") v.num = -v.num;
    return op == "-" || op == "+" ? v : Val{};
  }
  // `id = id` keeps every row whose id is not NULL: treated as constant-true.
  std::string_view lt;
  std::string_view rt;
  const Json* lb = unwrap_any(*l, lt);
  const Json* rb = unwrap_any(*r, rt);
  if (op == "=" && lb != nullptr && rb != nullptr && lt == "ColumnRef" && rt == "ColumnRef") {
    const Json* lf = member(*lb, "fields");
    const Json* rf = member(*rb, "fields");
    if (lf != nullptr && rf != nullptr && *lf == *rf) return make_bool(true);
  }
  const Val a = eval(*l, source, depth + 1);
  const Val b = eval(*r, source, depth + 1);
  if (a.kind == Val::unknown || b.kind == Val::unknown) {
    // Unknown whatever the parameters are if either side is so; otherwise known values for
    // the parameters might give any answer.
    return fixed_unknown(a) || fixed_unknown(b) ? Val{} : param_unknown();
  }
  if (a.kind == Val::null || b.kind == Val::null) return make_null();
  if (a.kind == Val::number && b.kind == Val::number &&
      (op == "+" || op == "-" || op == "*" || (op == "/" && b.num != 0))) {
    Val n;
    n.kind = Val::number;
    n.num = op == "+" ? a.num + b.num
                      : (op == "-" ? a.num - b.num : (op == "*" ? a.num * b.num : a.num / b.num));
    return n;
  }
  auto c = compare(a, b);
  if (!c) return {};
  if (op == "=") return make_bool(*c == 0);
  if (op == "<>" || op == "!=") return make_bool(*c != 0);
  if (op == "<") return make_bool(*c < 0);
  if (op == ">") return make_bool(*c > 0);
  if (op == "<=") return make_bool(*c <= 0);
  if (op == ">=") return make_bool(*c >= 0);
  return {};
}

Val eval(const Json& node, std::string_view source, int depth) {
  // Too deep to follow: a template (whose unary minus adds a level a number does not) cannot
  // tell what its numbers would give.
  if (depth > 64) return param_unknown();
  std::string_view type;
  const Json* body = unwrap_any(node, type);
  if (body == nullptr) return {};
  if (type == "ParamRef") return param_unknown();
  if (type == "A_Const") {
    Val v;
    if (const Json* n = member(*body, "isnull"); n != nullptr && n->IsTrue()) return make_null();
    if (const Json* b = member(*body, "boolval")) {
      const Json* inner = member(*b, "boolval");
      return make_bool(inner != nullptr && inner->IsTrue());
    }
    const std::string text = const_text(*body, source);
    if (member(*body, "ival") != nullptr || member(*body, "fval") != nullptr) {
      auto d = to_number(text);
      if (!d) return {};
      v.kind = Val::number;
      v.num = *d;
      return v;
    }
    if (member(*body, "sval") != nullptr) {
      v.kind = Val::string;
      v.str = text;
      return v;
    }
    return {};
  }
  if (type == "BoolExpr") {
    const Json* op = member(*body, "boolop");
    const Json* args = member(*body, "args");
    if (op == nullptr || args == nullptr || !args->IsArray()) return {};
    const std::string_view o = sv(*op);
    if (o == "NOT_EXPR") {
      if (args->Empty()) return {};
      const Val v = eval((*args)[0], source, depth + 1);
      if (v.kind == Val::unknown) return v;
      auto b = to_bool(v);
      if (v.kind == Val::null) return v;
      return b ? make_bool(!*b) : Val{};
    }
    const bool is_and = o == "AND_EXPR";
    bool saw_unknown = false;
    bool saw_param_unknown = false;  // an argument parameter values might make known
    bool saw_null = false;
    for (const auto& a : args->GetArray()) {
      const Val v = eval(a, source, depth + 1);
      if (v.kind == Val::null) {
        saw_null = true;
        continue;
      }
      auto b = to_bool(v);
      if (!b) {
        saw_unknown = true;
        saw_param_unknown = saw_param_unknown || v.param;
        continue;
      }
      if (is_and && !*b) return make_bool(false);
      if (!is_and && *b) return make_bool(true);
    }
    // Numbers in place of the parameters might make an argument false (or true), and so the
    // whole: under a NOT either answer matters.
    if (saw_unknown) return saw_param_unknown ? param_unknown() : Val{};
    if (saw_null) return make_null();
    return make_bool(is_and);
  }
  if (type == "A_Expr") return eval_a_expr(*body, source, depth);
  if (type == "TypeCast") {
    const Json* arg = member(*body, "arg");
    const Json* tn = member(*body, "typeName");
    const Json* names = tn ? member(*tn, "names") : nullptr;
    if (arg == nullptr || names == nullptr || !names->IsArray() || names->Empty()) return {};
    std::string_view t;
    const Json* last = unwrap_any((*names)[names->Size() - 1], t);
    const Json* tname = last ? member(*last, "sval") : nullptr;
    const Val v = eval(*arg, source, depth + 1);
    if (v.kind == Val::null || v.kind == Val::unknown) return v;
    const std::string_view target = tname ? sv(*tname) : std::string_view{};
    if (target == "bool" || target == "boolean") {
      auto b = to_bool(v);
      return b ? make_bool(*b) : Val{};
    }
    if (target == "text" || target == "varchar" || target == "bpchar") {
      if (v.kind == Val::string) return v;
      return {};
    }
    if (v.kind == Val::number) return v;
    if (v.kind == Val::string && to_number(v.str)) {
      Val n;
      n.kind = Val::number;
      n.num = *to_number(v.str);
      return n;
    }
    return {};
  }
  if (type == "NullTest") {
    const Json* arg = member(*body, "arg");
    const Json* t = member(*body, "nulltesttype");
    if (arg == nullptr || t == nullptr) return {};
    const Val v = eval(*arg, source, depth + 1);
    if (v.kind == Val::unknown) return v;
    const bool is_null = v.kind == Val::null;
    return make_bool(sv(*t) == "IS_NULL" ? is_null : !is_null);
  }
  if (type == "BooleanTest") {
    const Json* arg = member(*body, "arg");
    const Json* t = member(*body, "booltesttype");
    if (arg == nullptr || t == nullptr) return {};
    const Val v = eval(*arg, source, depth + 1);
    if (v.kind == Val::unknown) return v;
    const std::string_view k = sv(*t);
    const bool is_null = v.kind == Val::null;
    auto b = to_bool(v);
    if (!is_null && !b) return {};
    if (k == "IS_TRUE") return make_bool(!is_null && *b);
    if (k == "IS_NOT_TRUE") return make_bool(is_null || !*b);
    if (k == "IS_FALSE") return make_bool(!is_null && !*b);
    if (k == "IS_NOT_FALSE") return make_bool(is_null || *b);
    if (k == "IS_UNKNOWN") return make_bool(is_null);
    if (k == "IS_NOT_UNKNOWN") return make_bool(!is_null);
    return {};
  }
  return {};
}

}  // namespace

std::string const_text(const Json& a_const_body, std::string_view source) {
  if (const Json* s = member(a_const_body, "sval")) {
    const Json* v = member(*s, "sval");
    return v ? std::string(sv(*v)) : std::string{};
  }
  if (const Json* f = member(a_const_body, "fval")) {
    const Json* v = member(*f, "fval");
    return v ? std::string(sv(*v)) : std::string{};
  }
  if (const Json* b = member(a_const_body, "bsval")) {
    const Json* v = member(*b, "bsval");
    return v ? std::string(sv(*v)) : std::string{};
  }
  if (const Json* b = member(a_const_body, "boolval")) {
    const Json* v = member(*b, "boolval");
    return v != nullptr && v->IsTrue() ? "true" : "false";
  }
  if (const Json* i = member(a_const_body, "ival")) {
    if (const Json* v = member(*i, "ival"); v != nullptr && v->IsInt64()) {
      return std::to_string(v->GetInt64());
    }
    // Written as {} for 0 and (in this libpg_query version) for negative numbers: read the
    // digits from the statement text at the constant's location.
    const Json* loc = member(a_const_body, "location");
    if (loc == nullptr || !loc->IsInt() || loc->GetInt() < 0) return "0";
    auto pos = static_cast<std::size_t>(loc->GetInt());
    if (pos >= source.size()) return "0";
    std::string out;
    if (source[pos] == '-') out += source[pos++];
    while (pos < source.size() && (source[pos] == ' ' || source[pos] == '\t')) ++pos;
    while (pos < source.size() && source[pos] >= '0' && source[pos] <= '9') out += source[pos++];
    if (out.empty() || out == "-") return "0";
    return out;
  }
  return {};
}

bool is_constant_true(const Json& expr, std::string_view source, bool* depends_on_params) {
  const Val v = eval(expr, source, 0);
  if (depends_on_params != nullptr) *depends_on_params = v.kind == Val::unknown && v.param;
  // `WHERE 't'` is a boolean literal too; a bare number is an error in Postgres.
  auto b = to_bool(v);
  return v.kind != Val::number && b && *b;
}

}  // namespace pgmoat::parser::detail
