// `[policy]` and `[[rules]]` from the config file, with strict checking: every problem is a
// cfg::ConfigError "file:line:column: what is wrong".
#include <algorithm>
#include <cctype>
#include <set>

#include "common/toml_reader.h"
#include "policy/policy.h"

namespace pgmoat::policy {
namespace {
using parser::StatementClass;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return s;
}

std::string known_classes() {
  std::string out;
  for (auto i = 0u; i < static_cast<unsigned>(StatementClass::kCount); ++i) {
    if (!out.empty()) out += ", ";
    out += parser::class_name(static_cast<StatementClass>(i));
  }
  return out;
}

parser::ClassSet read_classes(cfg::Table& t) {
  auto names = t.get_string_list("classes");
  if (!names) t.fail("", "'" + t.path() + "' needs 'classes' (a list of statement classes)");
  if (names->empty()) t.fail("classes", "'" + t.path() + ".classes' must not be empty");
  parser::ClassSet set = 0;
  for (const auto& n : *names) {
    if (n == "*") {
      set |= parser::bit(StatementClass::kCount) - 1;
      continue;
    }
    auto c = parser::class_from_name(n);
    if (!c) {
      t.fail("classes", "unknown statement class '" + n + "' in '" + t.path() +
                            ".classes'; known classes: " + known_classes() + ", or \"*\"");
    }
    set |= parser::bit(*c);
  }
  return set;
}

ClientMatch read_match(cfg::Table& m) {
  ClientMatch match;
  match.users = m.get_string_list("user").value_or(std::vector<std::string>{});
  match.databases = m.get_string_list("database").value_or(std::vector<std::string>{});
  match.application_names =
      m.get_string_list("application_name").value_or(std::vector<std::string>{});
  match.tls_subjects = m.get_string_list("tls_subject").value_or(std::vector<std::string>{});
  for (const auto& text : m.get_string_list("client_addr").value_or(std::vector<std::string>{})) {
    auto c = parse_cidr(text);
    if (!c) {
      m.fail("client_addr", "'" + text + "' in '" + m.path() +
                                ".client_addr' is not an IP address or network such as "
                                "\"10.0.0.0/8\", \"192.168.1.7\" or \"2001:db8::/32\" (host "
                                "bits must be zero)");
    }
    match.client_addrs.push_back(std::move(*c));
  }
  m.finish();
  return match;
}

void check_row_limits(cfg::Table& t, const Rule& r) {
  if (t.has("max_fraction")) {
    // cfg::Table has no floating-point getter yet; refuse rather than ignore a safety limit.
    t.fail("max_fraction", "'" + t.path() + ".max_fraction' is not supported yet");
  }
  if (!r.max_rows) return;
  constexpr parser::ClassSet kRowClasses =
      parser::bit(StatementClass::delete_) | parser::bit(StatementClass::update) |
      parser::bit(StatementClass::merge) | parser::bit(StatementClass::delete_without_where) |
      parser::bit(StatementClass::update_without_where);
  if (r.action == Action::allow) {
    t.fail("max_rows", "'" + t.path() +
                           ".max_rows' needs action require_approval, deny or log: the action "
                           "applies to statements over the limit");
  }
  if ((r.classes & ~kRowClasses) != 0) {
    t.fail("max_rows", "'" + t.path() +
                           ".max_rows' is only valid for rules whose classes are all among "
                           "delete, update, merge, delete_without_where, update_without_where");
  }
}

Rule read_rule(cfg::Table& t) {
  Rule r;
  r.source = t.where("");
  auto name = t.get_string("name");
  if (!name) t.fail("", "'" + t.path() + "' needs a 'name'");
  if (name->empty()) t.fail("name", "'" + t.path() + ".name' must not be empty");
  r.name = *name;
  auto action = t.get_string("action");
  if (!action) t.fail("", "rule \"" + r.name + "\" needs an 'action'");
  auto a = action_from_name(*action);
  if (!a) {
    t.fail("action", "unknown action '" + *action + "' in rule \"" + r.name +
                         "\"; use allow, deny, require_approval or log");
  }
  r.action = *a;
  r.classes = read_classes(t);
  r.tables = t.get_string_list("tables").value_or(std::vector<std::string>{});
  for (const auto& g : r.tables) {
    if (g.empty()) t.fail("tables", "'" + t.path() + ".tables' has an empty pattern");
  }
  r.message = t.get_string("message", "");
  if (t.has("max_rows")) {
    r.max_rows = t.get_int("max_rows", 0, 0, INT64_MAX);
  }
  check_row_limits(t, r);
  if (auto m = t.get_table("match")) r.match = read_match(*m);
  t.finish();
  return r;
}

void read_policy_section(cfg::Table& p, Policy& policy) {
  std::string mode = p.get_string("mode", "enforce");
  if (mode == "enforce") {
    policy.mode = Mode::enforce;
  } else if (mode == "monitor") {
    policy.mode = Mode::monitor;
  } else {
    p.fail("mode", "'policy.mode' must be \"enforce\" or \"monitor\", got \"" + mode + "\"");
  }
  std::string ope = p.get_string("on_parse_error", "refuse");
  if (ope == "refuse") {
    policy.on_parse_error = OnParseError::refuse;
  } else if (ope == "allow") {
    policy.on_parse_error = OnParseError::allow;
  } else {
    p.fail("on_parse_error",
           "'policy.on_parse_error' must be \"refuse\" or \"allow\", got \"" + ope + "\"");
  }
  if (auto fns = p.get_string_list("dangerous_functions")) {
    policy.dangerous_functions.clear();
    for (auto& f : *fns) policy.dangerous_functions.push_back(lower(f));
  }
  if (auto extra = p.get_string_list("extra_dangerous_functions")) {
    for (auto& f : *extra) policy.dangerous_functions.push_back(lower(f));
  }
  p.finish();
}
}  // namespace

Policy load_policy(cfg::Table& root) {
  Policy policy;
  if (auto p = root.get_table("policy")) read_policy_section(*p, policy);
  std::set<std::string, std::less<>> names;
  for (cfg::Table& t : root.get_table_array("rules")) {
    Rule r = read_rule(t);
    if (!names.insert(r.name).second) {
      t.fail("name", "duplicate rule name \"" + r.name + "\"");
    }
    policy.rules.push_back(std::move(r));
  }
  return policy;
}

}  // namespace pgmoat::policy
