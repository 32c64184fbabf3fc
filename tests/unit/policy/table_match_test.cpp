// Table globs: qualified and unqualified names, restrictive vs permissive matching, and which
// tables count for which classes.
#include <gtest/gtest.h>

#include "policy/engine_detail.h"
#include "tests/unit/policy/test_support.h"

namespace pgmoat::policy::test {
namespace {
using detail::Bias;

struct TableCase {
  const char* glob;
  const char* table;
  bool restrictive;  // expected with Bias::restrictive
  bool permissive;   // expected with Bias::permissive
};

void PrintTo(const TableCase& c, std::ostream* os) {
  *os << c.glob << " vs " << c.table;
}

class TableGlobTest : public ::testing::TestWithParam<TableCase> {};

TEST_P(TableGlobTest, Matches) {
  const auto& c = GetParam();
  EXPECT_EQ(detail::table_glob_matches(c.glob, c.table, Bias::restrictive), c.restrictive)
      << c.glob << " vs " << c.table << " (restrictive)";
  EXPECT_EQ(detail::table_glob_matches(c.glob, c.table, Bias::permissive), c.permissive)
      << c.glob << " vs " << c.table << " (permissive)";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TableGlobTest,
    ::testing::Values(
        // A glob without a schema matches the name in any schema.
        TableCase{"users", "users", true, true}, TableCase{"users", "public.users", true, true},
        TableCase{"users", "audit.users", true, true},
        TableCase{"users", "users_old", false, false},
        TableCase{"user*", "public.users_old", true, true},
        // A schema-qualified glob needs that schema ...
        TableCase{"public.users", "public.users", true, true},
        TableCase{"public.users", "audit.users", false, false},
        TableCase{"public.*", "public.orders", true, true},
        TableCase{"public.*", "billing.orders", false, false},
        // ... and an unqualified table could be in any schema: only restrictive rules assume so.
        TableCase{"public.users", "users", true, false},
        TableCase{"billing.*", "invoices", true, false}, TableCase{"*.users", "users", true, true},
        // Case-insensitive (unquoted identifiers fold to lower case in Postgres).
        TableCase{"Users", "public.users", true, true},
        TableCase{"PUBLIC.USERS", "public.users", true, true},
        // db.schema.table: the schema and table decide.
        TableCase{"public.users", "shop.public.users", true, true}));

TEST(RelevantTables, WriteClassesCountOnlyWrittenTables) {
  parser::Statement st =
      stmt().cls({SC::delete_}).table("orders", Access::write).table("customers", Access::read);
  auto t = detail::relevant_tables(st, classes({SC::delete_}));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0]->name, "orders");
}

TEST(RelevantTables, ReadClassesCountEveryTable) {
  parser::Statement st = stmt()
                             .cls({SC::select, SC::delete_})
                             .table("orders", Access::write)
                             .table("customers", Access::read);
  EXPECT_EQ(detail::relevant_tables(st, classes({SC::select})).size(), 2u);
  EXPECT_EQ(detail::relevant_tables(st, classes({SC::select, SC::delete_})).size(), 2u);
  EXPECT_EQ(detail::relevant_tables(st, classes({SC::dangerous_function})).size(), 2u);
}

TEST(RuleTables, EmptyGlobListMatchesEverything) {
  parser::Statement st = stmt().cls({SC::drop}).object("schema").target("app");
  EXPECT_TRUE(detail::rule_tables_match({}, st, classes({SC::drop}), Bias::permissive));
}

TEST(RuleTables, ReadTableDoesNotMatchWriteClass) {
  // DELETE FROM orders USING customers: a rule about customers does not see this delete.
  parser::Statement st =
      stmt().cls({SC::delete_}).table("orders", Access::write).table("customers", Access::read);
  EXPECT_FALSE(
      detail::rule_tables_match({"customers"}, st, classes({SC::delete_}), Bias::restrictive));
  EXPECT_TRUE(detail::rule_tables_match({"orders"}, st, classes({SC::delete_}), Bias::restrictive));
}

TEST(RuleTables, UnknownTablesMatchRestrictiveOnly) {
  parser::Statement drop_schema = stmt().cls({SC::drop}).object("schema").target("public");
  parser::Statement do_block = stmt().cls({SC::do_block}).opaque();
  parser::Statement drop_owned = stmt().cls({SC::drop}).object("owned objects").target("bob");
  parser::Statement drop_type = stmt().cls({SC::drop}).object("type").target("mood");
  for (const auto* st : {&drop_schema, &do_block, &drop_owned, &drop_type}) {
    EXPECT_TRUE(detail::rule_tables_match({"users"}, *st, st->classes, Bias::restrictive));
    EXPECT_FALSE(detail::rule_tables_match({"users"}, *st, st->classes, Bias::permissive));
  }
  // DROP FUNCTION has no tables and cannot drop any: it does not match a table rule.
  parser::Statement drop_fn = stmt().cls({SC::drop}).object("function").target("f");
  EXPECT_FALSE(detail::rule_tables_match({"users"}, drop_fn, drop_fn.classes, Bias::restrictive));
}

}  // namespace
}  // namespace pgmoat::policy::test
