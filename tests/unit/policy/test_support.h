// Hand-built classifications and sessions for the engine tests (no parser needed).
#pragma once

#include <cctype>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "parser/classification.h"
#include "policy/policy.h"

namespace pgmoat::policy::test {

using parser::Access;
using parser::StatementClass;
using SC = parser::StatementClass;

inline parser::ClassSet classes(std::initializer_list<StatementClass> cs) {
  parser::ClassSet s = 0;
  for (auto c : cs) s |= parser::bit(c);
  return s;
}

struct StatementBuilder {
  parser::Statement st;
  StatementBuilder& cls(std::initializer_list<StatementClass> cs) {
    st.classes |= classes(cs);
    return *this;
  }
  StatementBuilder& table(std::string name, Access access = Access::write) {
    st.tables.push_back({std::move(name), access});
    return *this;
  }
  StatementBuilder& fn(std::string name) {
    st.functions.push_back(std::move(name));
    return *this;
  }
  StatementBuilder& command(std::string c) {
    st.command = std::move(c);
    return *this;
  }
  StatementBuilder& target(std::string t) {
    st.target = std::move(t);
    return *this;
  }
  StatementBuilder& object(std::string o) {
    st.object_type = std::move(o);
    return *this;
  }
  StatementBuilder& opaque() {
    st.opaque = true;
    return *this;
  }
  operator parser::Statement() const { return st; }  // NOLINT: implicit by design
};

inline StatementBuilder stmt() {
  return {};
}

inline parser::Statement drop_table(const std::string& name) {
  return stmt()
      .cls({SC::drop})
      .table(name, Access::ddl)
      .command("DROP TABLE")
      .object("table")
      .target(name);
}
inline parser::Statement select_from(const std::string& name) {
  return stmt().cls({SC::select}).table(name, Access::read).command("SELECT").target(name);
}

inline parser::Classification one(parser::Statement st) {
  parser::Classification c;
  c.statements.push_back(std::move(st));
  return c;
}
inline parser::Classification many(std::vector<parser::Statement> sts) {
  parser::Classification c;
  c.statements = std::move(sts);
  return c;
}

inline Rule rule(std::string name, std::initializer_list<StatementClass> cs, Action a,
                 std::vector<std::string> tables = {}) {
  Rule r;
  r.name = std::move(name);
  r.classes = classes(cs);
  r.action = a;
  r.tables = std::move(tables);
  return r;
}

inline SessionContext session(std::string user = "app", std::string db = "prod") {
  SessionContext ctx;
  ctx.user = std::move(user);
  ctx.database = std::move(db);
  ctx.application_name = "psql";
  ctx.client_addr = "10.1.2.3";
  ctx.now = 1'700'000'000;
  return ctx;
}

// Readable names for table-driven cases whose struct has a `name`: "first match wins" ->
// "first_match_wins".
struct CaseName {
  template <class Case>
  std::string operator()(const ::testing::TestParamInfo<Case>& info) const {
    std::string out;
    for (char ch : std::string(info.param.name)) {
      out += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
    }
    return out;
  }
};

}  // namespace pgmoat::policy::test
