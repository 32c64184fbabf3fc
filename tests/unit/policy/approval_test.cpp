// Approvals lifting require_approval: covered cases and each precise reason for not covering.
#include <gtest/gtest.h>

#include "policy/engine_detail.h"
#include "tests/unit/policy/test_support.h"

namespace pgmoat::policy::test {
namespace {

constexpr std::int64_t kNow = 1'700'000'000;  // 2023-11-14 22:13:20 UTC

Approval grant(std::string id = "t1") {
  Approval a;
  a.id = std::move(id);
  a.approver = "dba";
  a.reason = "migration 42";
  a.expires_at = kNow + 600;
  a.databases = {"prod"};
  a.classes = classes({SC::drop});
  return a;
}

Policy approval_policy() {
  Policy p;
  p.rules = {rule("needs-ok", {SC::drop, SC::truncate, SC::delete_without_where, SC::delete_},
                  Action::require_approval)};
  return p;
}

Decision run(const parser::Statement& st, const std::vector<Approval>& approvals,
             SessionContext ctx = session()) {
  ctx.now = kNow;
  ctx.approvals = &approvals;
  return evaluate(one(st), ctx, approval_policy());
}

TEST(Approval, CoveringApprovalAllows) {
  std::vector<Approval> approvals{grant()};
  Decision d = run(drop_table("users"), approvals);
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(d.would_refuse);
  EXPECT_EQ(d.statements[0].approval_id, "t1");
  EXPECT_EQ(d.statements[0].action, Action::require_approval);
  EXPECT_EQ(d.statements[0].rule, "needs-ok");
  EXPECT_TRUE(d.message.empty());
  EXPECT_EQ(d.approvals_used, std::vector<std::string>{"t1"});
}

TEST(Approval, SecondApprovalCovers) {
  Approval other_db = grant("t1");
  other_db.databases = {"staging"};
  std::vector<Approval> approvals{other_db, grant("t2")};
  Decision d = run(drop_table("users"), approvals);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.statements[0].approval_id, "t2");
}

TEST(Approval, DoesNotLiftDeny) {
  Policy p;
  p.rules = {rule("never", {SC::drop}, Action::deny)};
  std::vector<Approval> approvals{grant()};
  SessionContext ctx = session();
  ctx.now = kNow;
  ctx.approvals = &approvals;
  EXPECT_FALSE(evaluate(one(drop_table("users")), ctx, p).allowed);
}

TEST(Approval, EmptyListsMeanAny) {
  Approval a = grant();
  a.databases.clear();
  a.users.clear();
  std::vector<Approval> approvals{a};
  EXPECT_TRUE(run(drop_table("users"), approvals, session("whoever", "anydb")).allowed);
}

struct GapCase {
  const char* name;
  Approval approval;
  parser::Statement statement;
  const char* reason;  // expected exactly after "statement class ...; "
};

Approval with(Approval a, void (*edit)(Approval&)) {
  edit(a);
  return a;
}

void PrintTo(const GapCase& c, std::ostream* os) {
  *os << c.name;
}

class ApprovalGapTest : public ::testing::TestWithParam<GapCase> {};

TEST_P(ApprovalGapTest, RefusedWithReason) {
  const GapCase& c = GetParam();
  std::vector<Approval> approvals{c.approval};
  Decision d = run(c.statement, approvals);
  ASSERT_FALSE(d.allowed) << c.name;
  EXPECT_TRUE(d.statements[0].approval_id.empty());
  auto pos = d.detail.find("; ");
  ASSERT_NE(pos, std::string::npos) << d.detail;
  EXPECT_EQ(d.detail.substr(pos + 2), c.reason) << c.name;
}

parser::Statement truncate_users() {
  return stmt()
      .cls({SC::truncate})
      .table("public.users", Access::write)
      .command("TRUNCATE")
      .target("public.users");
}

INSTANTIATE_TEST_SUITE_P(
    Reasons, ApprovalGapTest,
    ::testing::Values(
        GapCase{"expired", with(grant(), [](Approval& a) { a.expires_at = kNow; }),
                drop_table("users"), "approval t1 expired at 2023-11-14 22:13:20 UTC"},
        GapCase{"no uses left", with(grant(), [](Approval& a) { a.uses_left = 0; }),
                drop_table("users"), "approval t1 has no uses left"},
        GapCase{"database", with(grant(), [](Approval& a) { a.databases = {"staging"}; }),
                drop_table("users"),
                "approval t1 is not valid for database \"prod\" (only staging)"},
        GapCase{"user",
                with(grant(),
                     [](Approval& a) {
                       a.users = {"deploy", "ops"};
                     }),
                drop_table("users"),
                "approval t1 is not valid for user \"app\" (only deploy, ops)"},
        GapCase{"application_name",
                with(grant(), [](Approval& a) { a.application_name = "migrate*"; }),
                drop_table("users"),
                "approval t1 is not valid for application_name \"psql\" (only migrate*)"},
        GapCase{"client address",
                with(grant(), [](Approval& a) { a.client_cidr = "192.168.0.0/16"; }),
                drop_table("users"),
                "approval t1 is not valid for client address 10.1.2.3 (only 192.168.0.0/16)"},
        GapCase{"class", grant(), truncate_users(), "approval t1 does not cover class `truncate`"},
        GapCase{"every class needing approval",
                with(grant(), [](Approval& a) { a.classes = classes({SC::delete_without_where}); }),
                stmt()
                    .cls({SC::delete_, SC::delete_without_where})
                    .table("orders")
                    .command("DELETE")
                    .target("orders"),
                "approval t1 does not cover class `delete`"},
        GapCase{"table",
                with(grant(),
                     [](Approval& a) {
                       a.tables = {"orders", "tmp_*"};
                     }),
                drop_table("users"), "approval t1 does not cover table users"},
        GapCase{"qualified approval table vs unqualified statement table",
                with(grant(), [](Approval& a) { a.tables = {"public.users"}; }),
                drop_table("users"), "approval t1 does not cover table users"},
        GapCase{"table-limited approval vs DROP SCHEMA",
                with(grant(), [](Approval& a) { a.tables = {"users"}; }),
                stmt().cls({SC::drop}).object("schema").command("DROP SCHEMA").target("public"),
                "approval t1 covers only tables users, but DROP SCHEMA may affect any table"}),
    CaseName());

TEST(Approval, ApprovalTablesCoverQualifiedAndGlobs) {
  Approval a = grant();
  a.tables = {"users", "public.orders", "tmp_*"};
  std::vector<Approval> approvals{a};
  EXPECT_TRUE(run(drop_table("public.users"), approvals).allowed);
  EXPECT_TRUE(run(drop_table("public.orders"), approvals).allowed);
  EXPECT_TRUE(run(drop_table("tmp_1"), approvals).allowed);
  EXPECT_FALSE(run(drop_table("billing.orders"), approvals).allowed);
}

TEST(Approval, UnixSocketClientOutsideCidr) {
  Approval a = grant();
  a.client_cidr = "10.0.0.0/8";
  std::vector<Approval> approvals{a};
  SessionContext ctx = session();
  ctx.client_addr = "";
  Decision d = run(drop_table("users"), approvals, ctx);
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.detail.find("not valid for client address local socket"), std::string::npos)
      << d.detail;
}

TEST(Approval, EveryApprovalsReasonIsListed) {
  Approval expired = grant("t1");
  expired.expires_at = kNow - 1;
  Approval wrong_db = grant("t2");
  wrong_db.databases = {"staging"};
  std::vector<Approval> approvals{expired, wrong_db};
  Decision d = run(drop_table("users"), approvals);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.detail,
            "statement class drop (table) on users; approval t1 expired at 2023-11-14 22:13:19 "
            "UTC; approval t2 is not valid for database \"prod\" (only staging)");
}

TEST(Approval, UsedApprovalsListedOnce) {
  std::vector<Approval> approvals{grant()};
  SessionContext ctx = session();
  ctx.now = kNow;
  ctx.approvals = &approvals;
  Decision d =
      evaluate(many({drop_table("a"), select_from("b"), drop_table("c")}), ctx, approval_policy());
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.approvals_used, std::vector<std::string>{"t1"});
  EXPECT_EQ(d.approval_uses, std::vector<std::int64_t>{2});
  EXPECT_EQ(d.statements[2].approval_id, "t1");
  EXPECT_TRUE(d.statements[1].approval_id.empty());
}

TEST(Approval, UsesCountPerStatementWithinAQuery) {
  Approval a = grant();
  a.uses_left = 2;
  std::vector<Approval> approvals{a};
  SessionContext ctx = session();
  ctx.now = kNow;
  ctx.approvals = &approvals;
  Decision two = evaluate(many({drop_table("a"), drop_table("b")}), ctx, approval_policy());
  EXPECT_TRUE(two.allowed);
  EXPECT_EQ(two.approval_uses, std::vector<std::int64_t>{2});
  Decision three =
      evaluate(many({drop_table("a"), drop_table("b"), drop_table("c")}), ctx, approval_policy());
  EXPECT_FALSE(three.allowed);
  ASSERT_TRUE(three.first_refused.has_value());
  EXPECT_EQ(*three.first_refused, 2u);
  EXPECT_EQ(three.detail,
            "statement class drop (table) on c; approval t1 has no uses left (2 used by earlier "
            "statements of this query)");
}

TEST(UtcText, Formats) {
  EXPECT_EQ(detail::utc_text(0), "1970-01-01 00:00:00 UTC");
  EXPECT_EQ(detail::utc_text(951782400), "2000-02-29 00:00:00 UTC");
  EXPECT_EQ(detail::utc_text(kNow), "2023-11-14 22:13:20 UTC");
  EXPECT_EQ(detail::utc_text(-1), "1969-12-31 23:59:59 UTC");
}

}  // namespace
}  // namespace pgmoat::policy::test
