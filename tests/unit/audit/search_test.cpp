#include "audit/search.h"

#include <gtest/gtest.h>

#include <sstream>

#include "audit/record.h"
#include "test_util.h"

namespace pgmoat::audit {
namespace {

using testing::TempDir;

class SearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = dir_.file("audit.jsonl");
    std::string data;
    auto add = [&](const std::string& user, const std::string& db, const std::string& app,
                   const std::string& client, EventType type, std::int64_t ts,
                   std::vector<std::string> classes, std::vector<std::string> written,
                   const std::string& decision, const std::string& rule, const std::string& token,
                   const std::string& statement) {
      Identity id;
      id.user = user;
      id.database = db;
      id.application_name = app;
      id.client_addr = client;
      id.client_port = 5000;
      Event ev;
      ev.type = type;
      ev.ts_us = ts;
      ev.classes = std::move(classes);
      ev.tables_written = std::move(written);
      ev.decision = decision;
      ev.rule = rule;
      ev.token_id = token;
      ev.statement = statement;
      data += encode(id, ev) + "\n";
    };
    const std::int64_t day = 86'400'000'000;
    t0_ = *parse_timestamp("2024-05-01T00:00:00Z");
    add("app", "prod", "seed-script", "10.0.0.5", EventType::kStatement, t0_, {"delete"},
        {"public.products"}, "allow", "", "", "DELETE FROM products WHERE code NOT IN ('a')");
    add("deploy", "prod", "migrate", "10.1.0.9", EventType::kRefusal, t0_ + day, {"ddl", "drop"},
        {"public.users"}, "deny", "no-drop", "", "DROP TABLE users");
    add("alice", "staging", "psql", "192.168.1.20", EventType::kApprovalUse, t0_ + 2 * day,
        {"truncate"}, {"public.invoices"}, "approved", "truncate", "tok-77", "TRUNCATE invoices");
    add("app", "prod", "web", "fd00::1", EventType::kWouldRefuse, t0_ + 3 * day, {"update"},
        {"public.accounts"}, "needs_approval", "mass-update", "", "UPDATE accounts SET x = 1");
    testing::spit(file_, data + "{\"seq\":5,\"torn");  // a torn tail is skipped
  }

  std::vector<std::string> find(const SearchFilter& f) {
    std::vector<std::string> users;
    std::ostringstream warnings;
    search_files(
        {file_}, f, [&](std::string_view, const Row& r) { users.push_back(r.user_db); }, warnings);
    EXPECT_NE(warnings.str().find("torn"), std::string::npos);
    return users;
  }

  TempDir dir_;
  std::string file_;
  std::int64_t t0_ = 0;
};

using Users = std::vector<std::string>;

TEST_F(SearchTest, NoFilterMatchesAll) {
  EXPECT_EQ(find({}).size(), 4u);
}

TEST_F(SearchTest, TimeRange) {
  SearchFilter f;
  f.since_us = t0_ + 86'400'000'000;
  f.until_us = t0_ + 2 * 86'400'000'000;
  EXPECT_EQ(find(f), (Users{"deploy@prod", "alice@staging"}));
}

TEST_F(SearchTest, UserDatabaseAndApplicationGlob) {
  SearchFilter f;
  f.user = "app";
  EXPECT_EQ(find(f), (Users{"app@prod", "app@prod"}));
  f = {};
  f.database = "stag*";
  EXPECT_EQ(find(f), (Users{"alice@staging"}));
  f = {};
  f.application_name = "seed*";
  EXPECT_EQ(find(f), (Users{"app@prod"}));
}

TEST_F(SearchTest, ClientIpAndCidr) {
  SearchFilter f;
  f.client = parse_cidr("10.0.0.0/8");
  EXPECT_EQ(find(f), (Users{"app@prod", "deploy@prod"}));
  f.client = parse_cidr("10.1.0.9");
  EXPECT_EQ(find(f), (Users{"deploy@prod"}));
  f.client = parse_cidr("fd00::/16");
  EXPECT_EQ(find(f).size(), 1u);
  f.client = parse_cidr("192.168.1.16/30");
  EXPECT_EQ(find(f), Users{});
  EXPECT_FALSE(parse_cidr("10.0.0.0/33"));
  EXPECT_FALSE(parse_cidr("nope"));
}

TEST_F(SearchTest, TableClassDecisionRuleTokenType) {
  SearchFilter f;
  f.table = "products";
  EXPECT_EQ(find(f), (Users{"app@prod"}));
  f = {};
  f.table = "public.users";
  EXPECT_EQ(find(f), (Users{"deploy@prod"}));
  f = {};
  f.klass = "drop";
  EXPECT_EQ(find(f), (Users{"deploy@prod"}));
  f = {};
  f.decision = "deny";
  EXPECT_EQ(find(f), (Users{"deploy@prod"}));
  f = {};
  f.rule = "mass-*";
  EXPECT_EQ(find(f), (Users{"app@prod"}));
  f = {};
  f.token = "tok-77";
  EXPECT_EQ(find(f), (Users{"alice@staging"}));
  f = {};
  f.type = "would_refuse";
  EXPECT_EQ(find(f), (Users{"app@prod"}));
  f.user = "alice";  // filters combine
  EXPECT_EQ(find(f), Users{});
}

TEST(SearchArgs, RelativeAndAbsoluteTimes) {
  const std::int64_t now = 1'000'000'000'000'000;
  EXPECT_EQ(parse_time_arg("24h", now), now - 24LL * 3600 * 1'000'000);
  EXPECT_EQ(parse_time_arg("7d", now), now - 7LL * 86400 * 1'000'000);
  EXPECT_EQ(parse_time_arg("30m", now), now - 30LL * 60 * 1'000'000);
  EXPECT_EQ(parse_time_arg("2024-05-01", now), 1714521600000000);
  EXPECT_FALSE(parse_time_arg("last tuesday", now));
}

TEST(SearchTable, AlignsColumnsAndCutsStatements) {
  std::vector<Row> rows = {
      {"2024-05-01 00:00:00", "app@prod", "seed", "10.0.0.5:5000", "statement", "allow", "delete",
       "42", std::string(200, 'S')},
      {"2024-05-01 00:00:01", "a@b", "", "", "refusal", "deny", "ddl", "", "DROP TABLE x"}};
  std::ostringstream out;
  print_table(out, rows, 40);
  auto lines = testing::lines_of(out.str());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].find("USER@DB"), lines[1].find("app@prod"));
  EXPECT_EQ(lines[1].find("app@prod"), lines[2].find("a@b"));
  EXPECT_EQ(lines[1].find("statement"), lines[2].find("refusal"));
  EXPECT_NE(lines[1].find("\xE2\x80\xA6"), std::string::npos);  // cut with an ellipsis
  EXPECT_EQ(lines[1].find(std::string(41, 'S')), std::string::npos);
}

}  // namespace
}  // namespace pgmoat::audit
