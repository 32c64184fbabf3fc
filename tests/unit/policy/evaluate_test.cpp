// evaluate(): rule order, actions, per-class decisions, multi-statement queries, monitor mode,
// parse errors and refusal texts.
#include <algorithm>

#include <gtest/gtest.h>

#include "tests/unit/policy/test_support.h"

namespace pgmoat::policy::test {
namespace {

struct Expect {
  bool allowed;
  bool would_refuse;
  Action action;
  const char* rule;
};

struct EvalCase {
  const char* name;
  std::vector<Rule> rules;
  parser::Statement statement;
  Expect expect;
};

void PrintTo(const EvalCase& c, std::ostream* os) {
  *os << c.name;
}

class EvaluateTest : public ::testing::TestWithParam<EvalCase> {};

TEST_P(EvaluateTest, Decides) {
  const EvalCase& c = GetParam();
  Policy p;
  p.rules = c.rules;
  Decision d = evaluate(one(c.statement), session(), p);
  ASSERT_EQ(d.statements.size(), 1u);
  const StatementVerdict& v = d.statements[0];
  EXPECT_EQ(v.allowed, c.expect.allowed) << c.name;
  EXPECT_EQ(d.allowed, c.expect.allowed) << c.name;
  EXPECT_EQ(v.would_refuse, c.expect.would_refuse) << c.name;
  EXPECT_EQ(v.action, c.expect.action) << c.name;
  EXPECT_EQ(v.rule, c.expect.rule) << c.name;
}

Rule for_user(Rule r, std::string user) {
  r.match.users = {std::move(user)};
  return r;
}

parser::Statement cte_delete() {
  // WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d
  return stmt()
      .cls({SC::select, SC::delete_, SC::delete_without_where})
      .table("orders", Access::write)
      .command("SELECT")
      .target("orders");
}

const Expect kAllowNoRule{true, false, Action::allow, ""};

INSTANTIATE_TEST_SUITE_P(
    Cases, EvaluateTest,
    ::testing::Values(
        EvalCase{"no rules allows", {}, drop_table("users"), kAllowNoRule},
        EvalCase{"rule for another class allows",
                 {rule("no-truncate", {SC::truncate}, Action::deny)},
                 drop_table("users"),
                 kAllowNoRule},
        EvalCase{"deny",
                 {rule("no-drop", {SC::drop}, Action::deny)},
                 drop_table("users"),
                 {false, false, Action::deny, "no-drop"}},
        EvalCase{"require_approval without approvals",
                 {rule("drop-needs-ok", {SC::drop}, Action::require_approval)},
                 drop_table("users"),
                 {false, false, Action::require_approval, "drop-needs-ok"}},
        EvalCase{"log allows but flags",
                 {rule("watch-drop", {SC::drop}, Action::log)},
                 drop_table("users"),
                 {true, true, Action::log, "watch-drop"}},
        EvalCase{"explicit allow",
                 {rule("ok", {SC::drop}, Action::allow)},
                 drop_table("users"),
                 {true, false, Action::allow, "ok"}},
        EvalCase{"first match wins: earlier allow for tmp tables",
                 {rule("tmp-ok", {SC::drop}, Action::allow, {"tmp_*"}),
                  rule("no-drop", {SC::drop}, Action::deny)},
                 drop_table("tmp_import"),
                 {true, false, Action::allow, "tmp-ok"}},
        EvalCase{"first match wins: non-matching table falls through",
                 {rule("tmp-ok", {SC::drop}, Action::allow, {"tmp_*"}),
                  rule("no-drop", {SC::drop}, Action::deny)},
                 drop_table("users"),
                 {false, false, Action::deny, "no-drop"}},
        EvalCase{"first match wins: earlier deny shadows later allow",
                 {rule("no-drop", {SC::drop}, Action::deny),
                  rule("tmp-ok", {SC::drop}, Action::allow, {"tmp_*"})},
                 drop_table("tmp_import"),
                 {false, false, Action::deny, "no-drop"}},
        EvalCase{"rule for another user does not apply",
                 {for_user(rule("no-drop", {SC::drop}, Action::deny), "seed")},
                 drop_table("users"),
                 kAllowNoRule},
        EvalCase{"rule for this user applies",
                 {for_user(rule("no-drop", {SC::drop}, Action::deny), "app")},
                 drop_table("users"),
                 {false, false, Action::deny, "no-drop"}},
        EvalCase{"allow select cannot launder a delete in a CTE",
                 {rule("reads-ok", {SC::select}, Action::allow),
                  rule("mass-delete", {SC::delete_without_where}, Action::require_approval)},
                 cte_delete(),
                 {false, false, Action::require_approval, "mass-delete"}},
        EvalCase{"most restrictive class wins (deny over log)",
                 {rule("log-deletes", {SC::delete_}, Action::log),
                  rule("no-mass-delete", {SC::delete_without_where}, Action::deny)},
                 cte_delete(),
                 {false, false, Action::deny, "no-mass-delete"}},
        EvalCase{"table glob on read class sees read tables",
                 {rule("secrets", {SC::select}, Action::deny, {"secrets"})},
                 select_from("vault.secrets"),
                 {false, false, Action::deny, "secrets"}},
        EvalCase{"table glob on read class, other table",
                 {rule("secrets", {SC::select}, Action::deny, {"secrets"})},
                 select_from("users"),
                 kAllowNoRule},
        EvalCase{"restrictive table rule catches DROP SCHEMA CASCADE",
                 {rule("protect-users", {SC::drop}, Action::require_approval, {"users"})},
                 stmt().cls({SC::drop}).object("schema").command("DROP SCHEMA").target("public"),
                 {false, false, Action::require_approval, "protect-users"}},
        EvalCase{"allow table rule does not cover DROP SCHEMA",
                 {rule("tmp-ok", {SC::drop}, Action::allow, {"tmp_*"}),
                  rule("no-drop", {SC::drop}, Action::deny)},
                 stmt().cls({SC::drop}).object("schema").command("DROP SCHEMA").target("tmp_x"),
                 {false, false, Action::deny, "no-drop"}},
        EvalCase{"dangerous function gets its class",
                 {rule("danger", {SC::dangerous_function}, Action::require_approval)},
                 stmt().cls({SC::select}).fn("pg_terminate_backend").command("SELECT"),
                 {false, false, Action::require_approval, "danger"}},
        EvalCase{"ordinary function is not dangerous",
                 {rule("danger", {SC::dangerous_function}, Action::require_approval)},
                 stmt().cls({SC::select}).fn("now").fn("lower").command("SELECT"),
                 kAllowNoRule}),
    CaseName());

TEST(Evaluate, RefusalTextForDeny) {
  Policy p;
  p.rules = {rule("no-drop", {SC::drop}, Action::deny)};
  Decision d = evaluate(one(drop_table("public.users")), session(), p);
  ASSERT_FALSE(d.allowed);
  EXPECT_EQ(d.message, "pgmoat: DROP TABLE refused by rule \"no-drop\"");
  EXPECT_EQ(d.detail, "statement class drop (table) on public.users");
  EXPECT_NE(d.hint.find("denied by policy"), std::string::npos) << d.hint;
  EXPECT_EQ(d.statements[0].matched_class, SC::drop);
  EXPECT_EQ(d.statements[0].target, "public.users");
}

TEST(Evaluate, RefusalTextForRequireApproval) {
  Policy p;
  p.rules = {rule("drop-needs-ok", {SC::drop}, Action::require_approval)};
  SessionContext ctx = session("deploy", "shop");
  Decision d = evaluate(one(drop_table("public.users")), ctx, p);
  ASSERT_FALSE(d.allowed);
  EXPECT_EQ(d.message, "pgmoat: DROP TABLE refused by rule \"drop-needs-ok\"");
  EXPECT_EQ(d.detail, "statement class drop (table) on public.users");
  EXPECT_EQ(d.hint.rfind("Ask an approver for a token: pgmoat token issue", 0), 0u) << d.hint;
  EXPECT_NE(d.hint.find("--database shop"), std::string::npos) << d.hint;
  EXPECT_NE(d.hint.find("--classes drop"), std::string::npos) << d.hint;
  EXPECT_NE(d.hint.find("--tables public.users"), std::string::npos) << d.hint;
  EXPECT_NE(d.hint.find("SET pgmoat.approval = '<token>'"), std::string::npos) << d.hint;
}

TEST(Evaluate, QueryHintAsksForOneTokenCoveringEveryStatement) {
  Policy p;
  p.rules = {rule("drop-needs-ok", {SC::drop}, Action::require_approval),
             rule("truncate-needs-ok", {SC::truncate}, Action::require_approval)};
  parser::Statement truncate = stmt().cls({SC::truncate}).table("orders").command("TRUNCATE");
  Decision d = evaluate(many({drop_table("users"), select_from("x"), truncate}),
                        session("deploy", "shop"), p);
  ASSERT_FALSE(d.allowed);
  EXPECT_NE(d.hint.find("--classes drop,truncate --tables users,orders "), std::string::npos)
      << d.hint;
  // Each statement's own hint names only what it needs.
  EXPECT_NE(d.statements[0].hint.find("--classes drop --tables users "), std::string::npos)
      << d.statements[0].hint;
}

TEST(Evaluate, QueryHintOmitsTablesWhenAStatementMayAffectAnyTable) {
  Policy p;
  p.rules = {rule("drop-needs-ok", {SC::drop}, Action::require_approval)};
  parser::Statement drop_schema =
      stmt().cls({SC::drop}).object("schema").command("DROP SCHEMA").target("app");
  Decision d = evaluate(many({drop_table("users"), drop_schema}), session(), p);
  ASSERT_FALSE(d.allowed);
  EXPECT_NE(d.hint.find("--classes drop --reason"), std::string::npos) << d.hint;
}

TEST(Evaluate, RuleMessageIsAppended) {
  Policy p;
  Rule r = rule("no-drop", {SC::drop}, Action::deny);
  r.message = "drops go through the DBA team";
  p.rules = {r};
  Decision d = evaluate(one(drop_table("users")), session(), p);
  EXPECT_EQ(d.message,
            "pgmoat: DROP TABLE refused by rule \"no-drop\": drops go through the DBA team");
}

TEST(Evaluate, DangerousFunctionDetailNamesTheFunction) {
  Policy p;
  p.rules = {rule("danger", {SC::dangerous_function}, Action::deny)};
  parser::Statement st =
      stmt().cls({SC::select}).fn("count").fn("pg_terminate_backend").command("SELECT");
  Decision d = evaluate(one(st), session(), p);
  ASSERT_FALSE(d.allowed);
  EXPECT_TRUE(parser::has(d.statements[0].classes, SC::dangerous_function));
  EXPECT_EQ(d.statements[0].matched_class, SC::dangerous_function);
  EXPECT_EQ(d.detail, "statement class dangerous_function (pg_terminate_backend())");
}

TEST(Evaluate, DangerousFunctionListIsConfigurable) {
  Policy p;
  p.dangerous_functions = {"my_nuke"};
  p.rules = {rule("danger", {SC::dangerous_function}, Action::deny)};
  EXPECT_FALSE(evaluate(one(stmt().cls({SC::select}).fn("my_nuke")), session(), p).allowed);
  EXPECT_TRUE(
      evaluate(one(stmt().cls({SC::select}).fn("pg_terminate_backend")), session(), p).allowed);
}

TEST(Evaluate, DefaultDangerousFunctions) {
  auto fns = default_dangerous_functions();
  for (const char* f :
       {"pg_terminate_backend", "pg_cancel_backend", "lo_unlink", "dblink_exec", "dblink",
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import",
        "lo_export", "pg_reload_conf", "pg_rotate_logfile", "pg_promote"}) {
    EXPECT_NE(std::find(fns.begin(), fns.end(), f), fns.end()) << f;
  }
}

TEST(Evaluate, EmptyQueryIsAllowed) {
  Policy p;
  p.rules = {rule("no-drop", {SC::drop}, Action::deny)};
  Decision d = evaluate(parser::Classification{}, session(), p);
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.statements.empty());
  EXPECT_FALSE(d.first_refused.has_value());
}

TEST(Evaluate, AnyRefusedStatementRefusesTheQuery) {
  Policy p;
  p.rules = {rule("no-drop", {SC::drop}, Action::deny)};
  Decision d = evaluate(many({select_from("users"), drop_table("orders"), drop_table("users")}),
                        session(), p);
  EXPECT_FALSE(d.allowed);
  ASSERT_EQ(d.statements.size(), 3u);
  EXPECT_TRUE(d.statements[0].allowed);
  EXPECT_FALSE(d.statements[1].allowed);
  EXPECT_FALSE(d.statements[2].allowed);
  ASSERT_TRUE(d.first_refused.has_value());
  EXPECT_EQ(*d.first_refused, 1u);
  EXPECT_EQ(d.detail, "statement class drop (table) on orders");
}

TEST(Evaluate, MonitorModeAllowsAndFlags) {
  Policy p;
  p.mode = Mode::monitor;
  p.rules = {rule("no-drop", {SC::drop}, Action::deny),
             rule("truncate-ok", {SC::truncate}, Action::require_approval)};
  Decision d = evaluate(many({select_from("users"), drop_table("users")}), session(), p);
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.would_refuse);
  EXPECT_TRUE(d.statements[1].allowed);
  EXPECT_TRUE(d.statements[1].would_refuse);
  EXPECT_FALSE(d.statements[0].would_refuse);
  EXPECT_EQ(d.statements[1].action, Action::deny);
  ASSERT_TRUE(d.first_refused.has_value());
  EXPECT_EQ(*d.first_refused, 1u);
  EXPECT_EQ(d.message, "pgmoat: DROP TABLE refused by rule \"no-drop\"");
}

TEST(Evaluate, LogRuleMessageSaysLogged) {
  Policy p;
  p.rules = {rule("watch", {SC::drop}, Action::log)};
  Decision d = evaluate(one(drop_table("users")), session(), p);
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.would_refuse);
  EXPECT_EQ(d.statements[0].message, "pgmoat: DROP TABLE matched log rule \"watch\"");
}

parser::Classification unparseable() {
  parser::Classification c;
  c.ok = false;
  c.error = "syntax error at or near \"DROPP\"";
  c.error_position = 1;
  return c;
}

TEST(Evaluate, ParseErrorIsRefusedByDefault) {
  Decision d = evaluate(unparseable(), session(), Policy{});
  EXPECT_FALSE(d.allowed);
  EXPECT_TRUE(d.parse_error);
  EXPECT_EQ(d.message, "pgmoat: statement could not be parsed (syntax error at or near \"DROPP\")");
  EXPECT_FALSE(d.hint.empty());
}

TEST(Evaluate, ParseErrorAllowedWhenConfigured) {
  Policy p;
  p.on_parse_error = OnParseError::allow;
  Decision d = evaluate(unparseable(), session(), p);
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.parse_error);
}

TEST(Evaluate, ParseErrorInMonitorModeIsAllowedAndFlagged) {
  Policy p;
  p.mode = Mode::monitor;
  Decision d = evaluate(unparseable(), session(), p);
  EXPECT_TRUE(d.allowed);
  EXPECT_TRUE(d.would_refuse);
  EXPECT_TRUE(d.parse_error);
}

}  // namespace
}  // namespace pgmoat::policy::test
