// numeric_template(): which numbers it replaces, and every kind of text it refuses to touch.
#include "parser/literal_template.h"

#include <gtest/gtest.h>

namespace pgmoat::parser {
namespace {

std::string tmpl(std::string_view sql) {
  auto t = numeric_template(sql);
  return t ? std::string(t->text()) : "<none>";
}

TEST(LiteralTemplate, ReplacesNumbersOutsideQuotesCommentsAndIdentifiers) {
  EXPECT_EQ(tmpl("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"),
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
  EXPECT_EQ(tmpl("SELECT a FROM t1 WHERE b IN (1, 2.5, .5, 1e10, 3E-2) LIMIT 10"),
            "SELECT a FROM t1 WHERE b IN ($1, $2, $3, $4, $5) LIMIT $6");
  EXPECT_EQ(tmpl("SELECT 'a 1' || \"col 2\" FROM t WHERE x = -7"),
            "SELECT 'a 1' || \"col 2\" FROM t WHERE x = -$1");
  EXPECT_EQ(tmpl("SELECT 'it''s 5', 6"), "SELECT 'it''s 5', $1");
  EXPECT_EQ(tmpl("/* 1 /* 2 */ 3 */ SELECT 4 -- 5\n, 6"), "/* 1 /* 2 */ 3 */ SELECT $1 -- 5\n, $2");
  EXPECT_EQ(tmpl("SELECT x::int4 + 1"), "SELECT x::int4 + $1");
  // A -- comment ends at \r too: the quote after it is a real one, its digits stay.
  EXPECT_EQ(tmpl("SELECT a --\r AS \"c\n\" FROM \"report-2024\" WHERE b = 1 --\"\n"),
            "SELECT a --\r AS \"c\n\" FROM \"report-2024\" WHERE b = $1 --\"\n");
}

TEST(LiteralTemplate, TheStatementTextIsTrimmedWithoutItsSemicolon) {
  auto t = numeric_template("  \n SELECT 1 ;  \n");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->statement, "SELECT 1");
  t = numeric_template("/* c */ SELECT 1 -- d");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->statement, "/* c */ SELECT 1 -- d");
}

TEST(LiteralTemplate, RefusesWhatItCannotFollow) {
  for (const char* sql : {
           "SELECT a FROM t",           // no number
           "SELECT 'x'",                // only strings
           "SELECT $1 + 1",             // a parameter
           "SELECT $$5$$, 1",           // a dollar quote
           "SELECT E'\\'' || 1",        // an escape string
           "SELECT 1; DELETE FROM t",   // two statements
           "SELECT 1 OPERATOR(-) 2",    // an operator the grammar does not fold into a number
           "SELECT 1; -- comment",      // something after the ';'
           "SELECT 1 /* unterminated",  // comments and quotes must end
           "SELECT 'unterminated, 1",   //
           "SELECT \"unterminated, 1",  //
           "SELECT 123abc",             // a number run into an identifier
           "SELECT 1.2.3",              // or a dot
           "SELECT t.1",                //
           "SELECT 'a'1",               // or a quote
           "SELECT 1e",                 // 'e' without digits: junk after a number
           "SELECT 0x1F",               // hex is PostgreSQL 16
           "SELECT a[1] FROM t",        // a subscript: "$1[2]" parses, "1[2]" does not
           "SELECT 1 .x",               // a field selection after a blank: "$1 .x" parses
           "SELECT 1 /* c */ .x",       // or after a comment
           "SELECT 1 --\n.x",           //
       }) {
    EXPECT_EQ(tmpl(sql), "<none>") << sql;
  }
  EXPECT_EQ(tmpl(std::string_view("SELECT 1\0 2", 11)), "<none>");
}

TEST(LiteralTemplate, FindsANumberWhereverItStands) {
  // The digit check reads eight bytes at a time: a number at every offset of both words and
  // of the tail, as '0' and as '9' (the ends of the range), after bytes just outside it.
  for (char digit : {'0', '9'}) {
    for (std::size_t pad = 0; pad < 24; ++pad) {
      const std::string sql = "SELECT '/:\xc2\xb9' " + std::string(pad, ' ') + digit;
      auto t = numeric_template(sql);
      ASSERT_TRUE(t) << "pad " << pad << " digit " << digit;
      EXPECT_EQ(t->text(), "SELECT '/:\xc2\xb9' " + std::string(pad, ' ') + "$1");
    }
  }
}

}  // namespace
}  // namespace pgmoat::parser
