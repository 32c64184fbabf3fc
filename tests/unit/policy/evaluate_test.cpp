// evaluate(): rule order, actions, per-class decisions, multi-statement queries, monitor mode,
// parse errors, refusal texts and row limits (max_rows rules).
#include <algorithm>
#include <optional>

#include <gtest/gtest.h>

#include "policy/engine_detail.h"
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

// ---- Row limits (max_rows rules) --------------------------------------------------------

constexpr std::int64_t kNow = 1'700'000'000;

Rule limit_rule(std::string name, std::initializer_list<StatementClass> cs, std::int64_t max_rows,
                Action a = Action::require_approval, std::vector<std::string> tables = {}) {
  Rule r = rule(std::move(name), cs, a, std::move(tables));
  r.max_rows = max_rows;
  return r;
}

Rule row_limit(std::int64_t max_rows = 1000, Action a = Action::require_approval) {
  return limit_rule("row-limit", {SC::delete_, SC::update, SC::merge}, max_rows, a);
}

// DELETE FROM <table> WHERE ... (where = false: no WHERE, so also delete_without_where).
parser::Statement delete_from(const std::string& table, bool where = true) {
  StatementBuilder b = stmt().cls({SC::delete_}).table(table).command("DELETE").target(table);
  if (!where) b.cls({SC::delete_without_where});
  return b;
}
parser::Statement update_of(const std::string& table) {
  return stmt().cls({SC::update}).table(table).command("UPDATE").target(table);
}
parser::Statement merge_into(const std::string& table) {
  return stmt().cls({SC::merge}).table(table).command("MERGE").target(table);
}
// WITH d AS (DELETE FROM <a> WHERE ...) UPDATE <b> ...
parser::Statement delete_and_update(const std::string& a, const std::string& b) {
  return stmt().cls({SC::delete_, SC::update}).table(a).table(b).command("UPDATE").target(b);
}

Approval token(std::string id, std::initializer_list<StatementClass> cs) {
  Approval a;
  a.id = std::move(id);
  a.approver = "dba";
  a.expires_at = kNow + 600;
  a.classes = classes(cs);
  return a;
}

struct LimitCase {
  std::string name;
  std::vector<Rule> rules;
  parser::Statement statement;
  std::vector<Approval> approvals;
  Mode mode = Mode::enforce;
  // Expected:
  bool allowed = true;
  std::optional<std::int64_t> max_rows;  // nullopt: no row limit
  std::string limit_rule;
  SC limited_class = SC::delete_;
  Action limit_action = Action::require_approval;
  bool enforce = true;
  std::string approval_id;
  std::vector<std::string> approvals_used;
  std::vector<std::int64_t> approval_uses;

  LimitCase& with(std::vector<Rule> r) {
    rules = std::move(r);
    return *this;
  }
  LimitCase& on(parser::Statement st) {
    statement = std::move(st);
    return *this;
  }
  LimitCase& holding(std::vector<Approval> a) {
    approvals = std::move(a);
    return *this;
  }
  LimitCase& in(Mode m) {
    mode = m;
    return *this;
  }
  LimitCase& refused() {
    allowed = false;
    return *this;
  }
  LimitCase& limited(std::int64_t max, std::string by, SC c, Action a = Action::require_approval,
                     bool enforced = true) {
    max_rows = max;
    limit_rule = std::move(by);
    limited_class = c;
    limit_action = a;
    enforce = enforced;
    return *this;
  }
  // The statement's approval_id, then each used approval and its uses (same order).
  LimitCase& used(std::string id, std::vector<std::string> ids, std::vector<std::int64_t> uses) {
    approval_id = std::move(id);
    approvals_used = std::move(ids);
    approval_uses = std::move(uses);
    return *this;
  }
};

LimitCase limit_case(std::string name) {
  LimitCase c;
  c.name = std::move(name);
  return c;
}

void PrintTo(const LimitCase& c, std::ostream* os) {
  *os << c.name;
}

class RowLimitTest : public ::testing::TestWithParam<LimitCase> {};

TEST_P(RowLimitTest, Decides) {
  const LimitCase& c = GetParam();
  Policy p;
  p.mode = c.mode;
  p.rules = c.rules;
  SessionContext ctx = session();
  ctx.now = kNow;
  ctx.approvals = &c.approvals;
  Decision d = evaluate(one(c.statement), ctx, p);
  ASSERT_EQ(d.statements.size(), 1u);
  const StatementVerdict& v = d.statements[0];
  EXPECT_EQ(d.allowed, c.allowed);
  EXPECT_EQ(v.allowed, c.allowed);
  if (c.allowed) {
    // Only what the statement does at run time can refuse it.
    EXPECT_FALSE(v.would_refuse);
    EXPECT_TRUE(v.message.empty()) << v.message;
  }
  ASSERT_EQ(v.row_limit.has_value(), c.max_rows.has_value())
      << (v.row_limit ? v.row_limit->rule : std::string("no limit"));
  if (c.max_rows) {
    EXPECT_EQ(v.row_limit->max_rows, *c.max_rows);
    EXPECT_EQ(v.row_limit->rule, c.limit_rule);
    EXPECT_EQ(v.row_limit->limited_class, c.limited_class);
    EXPECT_EQ(v.row_limit->action, c.limit_action);
    EXPECT_EQ(v.row_limit->enforce, c.enforce);
    EXPECT_FALSE(v.row_limit->message.empty());
    EXPECT_FALSE(v.row_limit->hint.empty());
  }
  EXPECT_EQ(v.approval_id, c.approval_id);
  EXPECT_EQ(d.approvals_used, c.approvals_used);
  EXPECT_EQ(d.approval_uses, c.approval_uses);
}

// A require_approval rule for mass deletes placed before the row limit, as in the shipped config.
Rule mass_delete() {
  return rule("mass-delete", {SC::delete_without_where, SC::update_without_where},
              Action::require_approval);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RowLimitTest,
    ::testing::Values(
        limit_case("delete is limited")
            .with({row_limit()})
            .on(delete_from("orders"))
            .limited(1000, "row-limit", SC::delete_),
        limit_case("update is limited")
            .with({row_limit()})
            .on(update_of("orders"))
            .limited(1000, "row-limit", SC::update),
        limit_case("merge is limited")
            .with({row_limit()})
            .on(merge_into("orders"))
            .limited(1000, "row-limit", SC::merge),
        limit_case("zero rows is a limit")
            .with({row_limit(0)})
            .on(delete_from("orders"))
            .limited(0, "row-limit", SC::delete_),
        limit_case("other classes are not limited")
            .with({row_limit()})
            .on(stmt().cls({SC::insert}).table("orders").command("INSERT")),
        limit_case("rule without max_rows refuses up front, no limit")
            .with({rule("deletes", {SC::delete_}, Action::require_approval)})
            .on(delete_from("orders"))
            .refused(),
        limit_case("smallest of two limits")
            .with({limit_rule("delete-limit", {SC::delete_}, 500),
                   limit_rule("update-limit", {SC::update}, 50)})
            .on(delete_and_update("a", "b"))
            .limited(50, "update-limit", SC::update),
        limit_case("smallest of two limits, other order")
            .with({limit_rule("update-limit", {SC::update}, 500),
                   limit_rule("delete-limit", {SC::delete_}, 50)})
            .on(delete_and_update("a", "b"))
            .limited(50, "delete-limit", SC::delete_),
        limit_case("equal limits keep the first class")
            .with({limit_rule("update-limit", {SC::update}, 100),
                   limit_rule("delete-limit", {SC::delete_}, 100)})
            .on(delete_and_update("a", "b"))
            .limited(100, "delete-limit", SC::delete_),
        limit_case("approval lifts the limit and counts a use")
            .with({row_limit()})
            .on(delete_from("orders"))
            .holding({token("t1", {SC::delete_})})
            .used("t1", {"t1"}, {1}),
        limit_case("approval for another class does not lift")
            .with({row_limit()})
            .on(delete_from("orders"))
            .holding({token("t1", {SC::update})})
            .limited(1000, "row-limit", SC::delete_),
        limit_case("approval for another table does not lift")
            .with({row_limit()})
            .on(delete_from("orders"))
            .holding({[] {
              Approval a = token("t1", {SC::delete_});
              a.tables = {"customers"};
              return a;
            }()})
            .limited(1000, "row-limit", SC::delete_),
        limit_case("expired approval does not lift")
            .with({row_limit()})
            .on(delete_from("orders"))
            .holding({[] {
              Approval a = token("t1", {SC::delete_});
              a.expires_at = kNow;
              return a;
            }()})
            .limited(1000, "row-limit", SC::delete_),
        limit_case("approval without uses left does not lift")
            .with({row_limit()})
            .on(delete_from("orders"))
            .holding({[] {
              Approval a = token("t1", {SC::delete_});
              a.uses_left = 0;
              return a;
            }()})
            .limited(1000, "row-limit", SC::delete_),
        limit_case("second approval lifts")
            .with({row_limit()})
            .on(update_of("orders"))
            .holding({token("t1", {SC::delete_}), token("t2", {SC::update})})
            .used("t2", {"t2"}, {1}),
        limit_case("one token for the mass delete and the limit is one use")
            .with({mass_delete(), row_limit()})
            .on(delete_from("orders", false))
            .holding({[] {
              Approval a = token("t1", {SC::delete_without_where, SC::delete_});
              a.uses_left = 1;
              return a;
            }()})
            .used("t1", {"t1"}, {1}),
        limit_case("token for the mass delete only leaves the limit")
            .with({mass_delete(), row_limit()})
            .on(delete_from("orders", false))
            .holding({token("t1", {SC::delete_without_where})})
            .limited(1000, "row-limit", SC::delete_)
            .used("t1", {"t1"}, {1}),
        limit_case("two tokens, one per class, are two uses")
            .with({mass_delete(), row_limit()})
            .on(delete_from("orders", false))
            .holding({token("t1", {SC::delete_without_where}), token("t2", {SC::delete_})})
            .used("t1", {"t1", "t2"}, {1, 1}),
        limit_case("the token covering both classes is preferred")
            .with({mass_delete(), row_limit()})
            .on(delete_from("orders", false))
            .holding({token("t1", {SC::delete_without_where}),
                      token("t2", {SC::delete_without_where, SC::delete_})})
            .used("t2", {"t2"}, {1}),
        limit_case("token for the limited class only: still needs approval, nothing used")
            .with({mass_delete(), row_limit()})
            .on(delete_from("orders", false))
            .holding({token("t1", {SC::delete_})})
            .refused()
            .limited(1000, "row-limit", SC::delete_),
        limit_case("denied statement keeps its limit and spends no use")
            .with({rule("no-mass-delete", {SC::delete_without_where}, Action::deny), row_limit()})
            .on(delete_from("orders", false))
            .holding({token("t1", {SC::delete_})})
            .refused()
            .limited(1000, "row-limit", SC::delete_),
        limit_case("log action is not enforced")
            .with({row_limit(1000, Action::log)})
            .on(delete_from("orders"))
            .limited(1000, "row-limit", SC::delete_, Action::log, false),
        limit_case("monitor mode is not enforced")
            .with({row_limit()})
            .on(delete_from("orders"))
            .in(Mode::monitor)
            .limited(1000, "row-limit", SC::delete_, Action::require_approval, false),
        limit_case("deny action is enforced")
            .with({row_limit(1000, Action::deny)})
            .on(delete_from("orders"))
            .limited(1000, "row-limit", SC::delete_, Action::deny),
        limit_case("approval does not lift a deny limit")
            .with({row_limit(1000, Action::deny)})
            .on(delete_from("orders"))
            .holding({token("t1", {SC::delete_})})
            .limited(1000, "row-limit", SC::delete_, Action::deny),
        limit_case("table glob limits its table")
            .with({limit_rule("station-limit", {SC::delete_}, 10, Action::require_approval,
                              {"public.station"})})
            .on(delete_from("public.station"))
            .limited(10, "station-limit", SC::delete_),
        limit_case("table glob limits its table written without a schema")
            .with({limit_rule("station-limit", {SC::delete_}, 10, Action::require_approval,
                              {"public.station"})})
            .on(delete_from("station"))
            .limited(10, "station-limit", SC::delete_),
        limit_case("table glob does not limit other tables")
            .with({limit_rule("station-limit", {SC::delete_}, 10, Action::require_approval,
                              {"public.station"})})
            .on(delete_from("public.measurement")),
        limit_case("earlier allow rule for the table means no limit")
            .with({rule("tmp-ok", {SC::delete_}, Action::allow, {"tmp_*"}), row_limit()})
            .on(delete_from("tmp_import")),
        limit_case("earlier allow rule for another table")
            .with({rule("tmp-ok", {SC::delete_}, Action::allow, {"tmp_*"}), row_limit()})
            .on(delete_from("orders"))
            .limited(1000, "row-limit", SC::delete_),
        limit_case("earlier higher limit for the table wins")
            .with({limit_rule("big-table", {SC::delete_}, 100000, Action::require_approval,
                              {"events"}),
                   row_limit()})
            .on(delete_from("events"))
            .limited(100000, "big-table", SC::delete_),
        limit_case("limit for another user does not apply")
            .with({for_user(row_limit(), "seed")})
            .on(delete_from("orders")),
        limit_case("limit for this user applies")
            .with({for_user(row_limit(), "app")})
            .on(delete_from("orders"))
            .limited(1000, "row-limit", SC::delete_)),
    CaseName());

TEST(RowLimit, LimitedStatementIsAllowedWithoutADecidingRule) {
  Policy p;
  p.rules = {row_limit()};
  Decision d = evaluate(one(delete_from("orders")), session(), p);
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(d.would_refuse);
  EXPECT_FALSE(d.first_refused.has_value());
  EXPECT_TRUE(d.message.empty());
  const StatementVerdict& v = d.statements[0];
  EXPECT_EQ(v.action, Action::allow);
  EXPECT_EQ(v.rule, "");
  EXPECT_FALSE(v.matched_class.has_value());
  ASSERT_TRUE(v.row_limit.has_value());
}

TEST(RowLimit, MessageAndApprovalHint) {
  Policy p;
  Rule r = row_limit();
  r.message = "ask the DBA team";
  p.rules = {r};
  SessionContext ctx = session("deploy", "shop");
  parser::Statement st = delete_from("public.station");
  Decision d = evaluate(one(st), ctx, p);
  ASSERT_TRUE(d.statements[0].row_limit.has_value());
  const RowLimit& limit = *d.statements[0].row_limit;
  EXPECT_EQ(
      limit.message,
      "pgmoat: DELETE on public.station touched more rows than rule \"row-limit\" allows: ask "
      "the DBA team");
  detail::ApprovalRequest request;
  request.add(st, parser::bit(SC::delete_));
  EXPECT_EQ(limit.hint, request.hint(ctx));
  EXPECT_NE(limit.hint.find("--database shop --user deploy --classes delete --tables "
                            "public.station --reason"),
            std::string::npos)
      << limit.hint;
}

TEST(RowLimit, MessageWithoutCommandOrTarget) {
  Policy p;
  p.rules = {row_limit()};
  Decision d = evaluate(one(stmt().cls({SC::update}).table("t")), session(), p);
  ASSERT_TRUE(d.statements[0].row_limit.has_value());
  EXPECT_EQ(d.statements[0].row_limit->message,
            "pgmoat: statement touched more rows than rule \"row-limit\" allows");
}

TEST(RowLimit, HintNamesTheLimitedClassOnly) {
  Policy p;
  p.rules = {mass_delete(), row_limit()};
  std::vector<Approval> approvals{token("t1", {SC::delete_without_where})};
  SessionContext ctx = session();
  ctx.now = kNow;
  ctx.approvals = &approvals;
  Decision d = evaluate(one(delete_from("orders", false)), ctx, p);
  ASSERT_TRUE(d.allowed);
  ASSERT_TRUE(d.statements[0].row_limit.has_value());
  EXPECT_NE(d.statements[0].row_limit->hint.find("--classes delete --tables orders "),
            std::string::npos)
      << d.statements[0].row_limit->hint;
}

TEST(RowLimit, DenyHintSaysNoTokenCanAllowIt) {
  Policy p;
  p.rules = {row_limit(1000, Action::deny)};
  Decision d = evaluate(one(delete_from("orders")), session(), p);
  ASSERT_TRUE(d.statements[0].row_limit.has_value());
  const std::string& hint = d.statements[0].row_limit->hint;
  EXPECT_NE(hint.find("no approval token can allow it"), std::string::npos) << hint;
  EXPECT_EQ(hint.find("pgmoat token issue"), std::string::npos) << hint;
}

TEST(RowLimit, ApprovalUsesCountPerStatementWithinAQuery) {
  Policy p;
  p.rules = {row_limit()};
  Approval a = token("t1", {SC::delete_, SC::update});
  a.uses_left = 1;
  std::vector<Approval> approvals{a};
  SessionContext ctx = session();
  ctx.now = kNow;
  ctx.approvals = &approvals;
  Decision d = evaluate(many({delete_from("a"), update_of("b")}), ctx, p);
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(d.statements[0].row_limit.has_value());
  EXPECT_EQ(d.statements[0].approval_id, "t1");
  // The only use went to the first statement: the second keeps its limit.
  ASSERT_TRUE(d.statements[1].row_limit.has_value());
  EXPECT_EQ(d.statements[1].row_limit->limited_class, SC::update);
  EXPECT_TRUE(d.statements[1].approval_id.empty());
  EXPECT_EQ(d.approvals_used, std::vector<std::string>{"t1"});
  EXPECT_EQ(d.approval_uses, std::vector<std::int64_t>{1});
}

TEST(RowLimit, UnlimitedApprovalCountsEveryLiftedStatement) {
  Policy p;
  p.rules = {mass_delete(), row_limit()};
  std::vector<Approval> approvals{token("t1", {SC::delete_without_where, SC::delete_})};
  SessionContext ctx = session();
  ctx.now = kNow;
  ctx.approvals = &approvals;
  Decision d =
      evaluate(many({delete_from("a", false), select_from("x"), delete_from("b")}), ctx, p);
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(d.statements[0].row_limit.has_value());
  EXPECT_FALSE(d.statements[2].row_limit.has_value());
  EXPECT_EQ(d.approvals_used, std::vector<std::string>{"t1"});
  EXPECT_EQ(d.approval_uses, std::vector<std::int64_t>{2});
}

// The token a refused mass delete asks for also lifts its row limit, else it would run into it.
TEST(RowLimit, RefusalHintAsksForTheLimitedClassToo) {
  Policy p;
  p.rules = {mass_delete(), row_limit()};
  Decision d = evaluate(many({delete_from("orders", false), select_from("x")}), session(), p);
  ASSERT_FALSE(d.allowed);
  EXPECT_NE(d.statements[0].hint.find("--classes delete_without_where,delete --tables orders "),
            std::string::npos)
      << d.statements[0].hint;
  EXPECT_NE(d.hint.find("--classes delete_without_where,delete --tables orders "),
            std::string::npos)
      << d.hint;
  // A token like that lets it run, without a limit.
  std::vector<Approval> approvals{token("t1", {SC::delete_without_where, SC::delete_})};
  approvals[0].tables = {"orders"};
  SessionContext ctx = session();
  ctx.now = kNow;
  ctx.approvals = &approvals;
  Decision ok = evaluate(one(delete_from("orders", false)), ctx, p);
  EXPECT_TRUE(ok.allowed);
  EXPECT_FALSE(ok.statements[0].row_limit.has_value());
}

TEST(RowLimit, RefusalHintLeavesOutLimitsNoTokenLifts) {
  for (Action a : {Action::deny, Action::require_approval}) {
    Policy p;
    p.rules = {mass_delete()};
    if (a == Action::deny) p.rules.push_back(row_limit(1000, Action::deny));
    Decision d = evaluate(one(delete_from("orders", false)), session(), p);
    ASSERT_FALSE(d.allowed);
    EXPECT_NE(d.hint.find("--classes delete_without_where --tables orders "), std::string::npos)
        << action_name(a) << ": " << d.hint;
  }
}

}  // namespace
}  // namespace pgmoat::policy::test
