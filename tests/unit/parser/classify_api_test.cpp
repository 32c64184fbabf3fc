// The rest of parser/'s contract: names, statement texts, SET details, errors, robustness
// against hostile input, fingerprint/normalize and the cache.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "parser/classify.h"

namespace pgmoat::parser {
namespace {

TEST(ClassNames, RoundTripEveryClass) {
  for (int i = 0; i < static_cast<int>(StatementClass::kCount); ++i) {
    const auto c = static_cast<StatementClass>(i);
    auto back = class_from_name(class_name(c));
    ASSERT_TRUE(back.has_value()) << class_name(c);
    EXPECT_EQ(*back, c);
  }
}

TEST(ClassNames, DeleteIsSpelledWithoutUnderscore) {
  EXPECT_EQ(class_name(StatementClass::delete_), "delete");
  EXPECT_EQ(class_from_name("delete"), StatementClass::delete_);
  EXPECT_EQ(class_from_name("nonsense"), std::nullopt);
  EXPECT_EQ(class_from_name(""), std::nullopt);
}

TEST(ClassNames, ListIsInEnumOrder) {
  EXPECT_EQ(class_list(bit(StatementClass::delete_) | bit(StatementClass::delete_without_where)),
            "delete_without_where,delete");
  EXPECT_EQ(class_list(0), "");
  EXPECT_EQ(class_list(bit(StatementClass::drop) | bit(StatementClass::other)), "drop,other");
}

TEST(Statements, EachHasItsOwnTrimmedText) {
  auto c = classify("  SELECT 1 ;\n DELETE FROM users WHERE id = 2;  DROP TABLE t  ");
  ASSERT_TRUE(c.ok);
  ASSERT_EQ(c.statements.size(), 3u);
  EXPECT_EQ(c.statements[0].text, "SELECT 1");
  EXPECT_EQ(c.statements[1].text, "DELETE FROM users WHERE id = 2");
  EXPECT_EQ(c.statements[2].text, "DROP TABLE t");
  EXPECT_EQ(c.statements[0].classes, bit(StatementClass::select));
  EXPECT_EQ(c.statements[1].classes, bit(StatementClass::delete_));
  EXPECT_EQ(c.statements[2].classes, bit(StatementClass::drop));
}

TEST(Statements, TextKeepsCommentsAndStringsWithSemicolons) {
  auto c = classify("SELECT ';' /* ; */; /* lead */ TRUNCATE t");
  ASSERT_TRUE(c.ok);
  ASSERT_EQ(c.statements.size(), 2u);
  EXPECT_EQ(c.statements[0].text, "SELECT ';' /* ; */");
  EXPECT_EQ(c.statements[1].text, "/* lead */ TRUNCATE t");
}

TEST(Statements, EmptyQueryHasNoStatements) {
  for (const char* sql : {"", "   ", ";", "-- only a comment", "/* x */ ;;"}) {
    auto c = classify(sql);
    EXPECT_TRUE(c.ok) << sql;
    EXPECT_TRUE(c.statements.empty()) << sql;
  }
}

TEST(Statements, PerStatementTargetsInOneString) {
  auto c = classify("DELETE FROM a; UPDATE b.c SET x = 1; INSERT INTO d VALUES (1)");
  ASSERT_EQ(c.statements.size(), 3u);
  EXPECT_EQ(c.statements[0].target, "a");
  EXPECT_EQ(c.statements[1].target, "b.c");
  EXPECT_EQ(c.statements[2].target, "d");
  ASSERT_EQ(c.statements[1].tables.size(), 1u);
  EXPECT_EQ(c.statements[1].tables[0], (TableRef{"b.c", Access::write}));
}

TEST(SetStatements, NameValueAndReset) {
  struct Want {
    const char* sql;
    const char* name;
    const char* value;
    bool reset;
  };
  const Want cases[] = {
      {"SET pgmoat.approval = 'tok_abc.123'", "pgmoat.approval", "tok_abc.123", false},
      {"SET PGMOAT.Approval TO 'x'", "pgmoat.approval", "x", false},
      {"set local statement_timeout = 5000", "statement_timeout", "5000", false},
      {"SET statement_timeout = -1", "statement_timeout", "-1", false},
      {"SET search_path TO app, public", "search_path", "app, public", false},
      {"SET work_mem = '64MB'", "work_mem", "64MB", false},
      {"SET session_replication_role = replica", "session_replication_role", "replica", false},
      {"SET x.y TO DEFAULT", "x.y", "", true},
      {"RESET pgmoat.approval", "pgmoat.approval", "", true},
      {"RESET ALL", "all", "", true},
      {"SHOW pgmoat.approval", "pgmoat.approval", "", false},
  };
  for (const auto& w : cases) {
    auto c = classify(w.sql);
    ASSERT_TRUE(c.ok) << w.sql;
    ASSERT_EQ(c.statements.size(), 1u);
    const auto& st = c.statements[0];
    EXPECT_TRUE(has(st.classes, StatementClass::set)) << w.sql;
    EXPECT_EQ(st.set_name, w.name) << w.sql;
    EXPECT_EQ(st.set_value, w.value) << w.sql;
    EXPECT_EQ(st.is_reset, w.reset) << w.sql;
  }
}

TEST(Opaque, DoBlockSaysWhy) {
  auto c = classify("DO $$ BEGIN DELETE FROM t; END $$");
  ASSERT_EQ(c.statements.size(), 1u);
  EXPECT_TRUE(c.statements[0].opaque);
  EXPECT_EQ(c.statements[0].opaque_reason, "DO block");
}

TEST(Opaque, DynamicExecuteSaysWhy) {
  auto c = classify(
      "CREATE FUNCTION f(t text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DELETE FROM "
      "' || quote_ident(t); END $$");
  ASSERT_EQ(c.statements.size(), 1u);
  EXPECT_TRUE(c.statements[0].opaque);
  EXPECT_NE(c.statements[0].opaque_reason.find("dynamic"), std::string::npos);
  // The functions used to build the string are still reported.
  const auto& f = c.statements[0].functions;
  EXPECT_NE(std::find(f.begin(), f.end(), "quote_ident"), f.end());
}

TEST(Errors, SyntaxErrorReportsMessageAndPosition) {
  auto c = classify("SELECT * FORM users");
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.error.find("syntax error"), std::string::npos) << c.error;
  EXPECT_EQ(c.error_position, 10);  // 1-based, at "FORM" (`*` cannot take an alias)
  EXPECT_TRUE(c.statements.empty());
}

TEST(Errors, OneBadStatementFailsTheWholeString) {
  auto c = classify("SELECT 1; DELET FROM users; SELECT 2");
  EXPECT_FALSE(c.ok);
  EXPECT_TRUE(c.statements.empty());
}

TEST(Errors, NulByteIsRefused) {
  const std::string sql("SELECT 1\0; DROP TABLE users", 27);
  auto c = classify(sql);
  EXPECT_FALSE(c.ok);
  EXPECT_FALSE(c.error.empty());
}

TEST(Errors, UnterminatedStringsAndComments) {
  for (const char* sql : {"SELECT 'abc", "SELECT $$abc", "SELECT 1 /* never closed", "SELECT \"abc",
                          "SELECT E'\\", "DELETE FROM"}) {
    auto c = classify(sql);
    EXPECT_FALSE(c.ok) << sql;
    EXPECT_FALSE(c.error.empty()) << sql;
  }
}

TEST(Robustness, RandomBytesNeverCrash) {
  std::mt19937 rng(12345);
  for (int i = 0; i < 3000; ++i) {
    std::string s(rng() % 200, ' ');
    for (auto& ch : s) ch = static_cast<char>(1 + rng() % 255);
    auto c = classify(s);
    if (!c.ok) {
      EXPECT_FALSE(c.error.empty());
    }
  }
}

TEST(Robustness, RandomSqlTokenSoupNeverCrashes) {
  const char* tokens[] = {
      "SELECT",  "DELETE", "FROM",     "WHERE",    "(",       ")",         ";",   "WITH", "AS",
      "t",       "1",      "=",        "'x'",      "$$",      "/*",        "*/",  "--\n", "DROP",
      "TABLE",   "CREATE", "FUNCTION", "LANGUAGE", "plpgsql", "BEGIN",     "END", ",",    "EXPLAIN",
      "ANALYZE", "COPY",   "TO",       "PROGRAM",  "DO",      "RETURNING", "*"};
  std::mt19937 rng(99);
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    const auto n = rng() % 25;
    for (unsigned j = 0; j < n; ++j) {
      s += tokens[rng() % std::size(tokens)];
      s += ' ';
    }
    (void)classify(s);
  }
}

TEST(Robustness, EveryPrefixOfARealScriptIsHandled) {
  const std::string script =
      "BEGIN; WITH d AS (DELETE FROM users WHERE id = 1 RETURNING *) SELECT * FROM d; "
      "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP TABLE x'; "
      "END $$; COPY (SELECT 1) TO STDOUT; COMMIT;";
  for (std::size_t n = 0; n <= script.size(); ++n) {
    auto c = classify(std::string_view(script).substr(0, n));
    if (!c.ok) {
      EXPECT_FALSE(c.error.empty()) << n;
    }
  }
}

TEST(Robustness, OneMegabyteStatement) {
  std::string sql = "INSERT INTO t (a) VALUES ";
  while (sql.size() < (1u << 20)) sql += "(12345678),";
  sql += "(0)";
  auto c = classify(sql);
  ASSERT_TRUE(c.ok) << c.error;
  ASSERT_EQ(c.statements.size(), 1u);
  EXPECT_EQ(c.statements[0].classes, bit(StatementClass::insert));

  std::string big_string = "SELECT '" + std::string(1u << 20, 'x') + "'; DROP TABLE t";
  auto d = classify(big_string);
  ASSERT_TRUE(d.ok);
  ASSERT_EQ(d.statements.size(), 2u);
  EXPECT_TRUE(has(d.all_classes(), StatementClass::drop));
}

TEST(Robustness, DeepNestingFailsClosedOrClassifies) {
  for (int depth : {10, 100, 1000, 10000}) {
    std::string sql = "DELETE FROM t WHERE id IN ";
    for (int i = 0; i < depth; ++i) sql += "(SELECT ";
    sql += "1";
    for (int i = 0; i < depth; ++i) sql += ")";
    auto c = classify(sql);
    if (c.ok) {
      ASSERT_EQ(c.statements.size(), 1u);
      EXPECT_TRUE(has(c.statements[0].classes, StatementClass::delete_)) << depth;
    } else {
      EXPECT_FALSE(c.error.empty()) << depth;
    }
  }
  std::string parens = "SELECT " + std::string(5000, '(') + "1" + std::string(5000, ')');
  (void)classify(parens);
  std::string bools = "DELETE FROM t WHERE ";
  for (int i = 0; i < 3000; ++i) bools += "NOT ";
  bools += "false";
  auto c = classify(bools);
  if (c.ok) {
    EXPECT_TRUE(has(c.all_classes(), StatementClass::delete_));
  }
}

TEST(Robustness, ManyStatementsInOneString) {
  std::string sql;
  for (int i = 0; i < 5000; ++i) sql += "SELECT " + std::to_string(i) + ";";
  sql += "TRUNCATE t;";
  auto c = classify(sql);
  ASSERT_TRUE(c.ok);
  ASSERT_EQ(c.statements.size(), 5001u);
  EXPECT_EQ(c.statements.back().classes, bit(StatementClass::truncate));
}

TEST(Robustness, ThreadsClassifyConcurrently) {
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&wrong] {
      for (int i = 0; i < 500; ++i) {
        auto c = classify("WITH d AS (DELETE FROM users RETURNING 1) SELECT * FROM d");
        if (!c.ok || !has(c.all_classes(), StatementClass::delete_without_where)) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(Fingerprint, SameShapeSameFingerprint) {
  const auto a = fingerprint("SELECT * FROM users WHERE id = 1");
  const auto b = fingerprint("select *  from users where id = 2");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, fingerprint("DELETE FROM users WHERE id = 1"));
  EXPECT_EQ(fingerprint("SELEC oops"), "");
}

// The shape cache must give exactly libpg_query's fingerprint of each statement's own text,
// whichever same-shape statement filled it first.
TEST(Fingerprint, FromTheShapeCacheEqualsLibpgQuerys) {
  const char* const corpus[] = {
      "UPDATE pgbench_accounts SET abalance = abalance + -4049 WHERE aid = 48213",
      "UPDATE pgbench_accounts SET abalance = abalance + 17 WHERE aid = 9",
      "update pgbench_accounts set abalance = abalance + 17 where aid = 9",
      "UPDATE pgbench_accounts SET abalance = abalance - 17 WHERE aid = 9",
      "UPDATE pgbench_tellers SET tbalance = tbalance + 17 WHERE tid = 9",
      "INSERT INTO h (a, b, c) VALUES (1, 'x', NULL), (2, 'y', now())",
      "INSERT INTO h (a, b, c) VALUES (3, 'z', NULL), (4, 'w', now())",
      "INSERT INTO h (a, b) VALUES (3, 'z')",
      "DELETE FROM users WHERE id IN (1, 2, 3)",
      "DELETE FROM users WHERE id IN (4)",
      "DELETE FROM users WHERE id = $1",
      "DELETE FROM users WHERE email = 'a' || 'b'",
      "DELETE FROM users",
      "DROP TABLE users",
      "DROP TABLE orders",
      "CREATE TABLE t (a int DEFAULT 1, b text DEFAULT 'x')",
      "CREATE TABLE t (a int DEFAULT 2, b text DEFAULT 'y')",
      "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
      "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ DELETE FROM t RETURNING 1 $$",
  };
  for (const char* sql : corpus) {
    const auto c = classify(sql);
    ASSERT_TRUE(c.ok) << sql;
    ASSERT_EQ(c.statements.size(), 1u) << sql;
    EXPECT_FALSE(c.statements[0].shape.empty()) << sql;
    EXPECT_EQ(fingerprint(c.statements[0]), fingerprint(std::string_view(sql))) << sql;
  }
  // Statements that differ only in constants share a shape; others do not.
  auto shape = [](const char* sql) { return classify(sql).statements.at(0).shape; };
  EXPECT_EQ(shape(corpus[0]), shape(corpus[1]));
  EXPECT_NE(shape(corpus[1]), shape(corpus[3]));
  EXPECT_NE(shape(corpus[1]), shape(corpus[4]));
  EXPECT_NE(shape(corpus[13]), shape(corpus[14]));
  // A function body is a string constant to the parser, so two bodies share a shape;
  // libpg_query's fingerprint agrees, which the loop above checked.
  EXPECT_TRUE(classify("SELECT abalance FROM pgbench_accounts WHERE aid = 1")
                  .statements.at(0)
                  .shape.empty());
}

TEST(Normalize, LiteralsBecomeParameters) {
  EXPECT_EQ(normalize("SELECT * FROM users WHERE id = 1 AND name = 'x'"),
            "SELECT * FROM users WHERE id = $1 AND name = $2");
  EXPECT_EQ(normalize("SELEC oops"), "SELEC oops");
}

TEST(Cache, KeepsATextFromItsSecondSighting) {
  ClassificationCache cache;
  auto a = cache.get("DELETE FROM users");  // first sighting: classified, not kept
  EXPECT_EQ(cache.entries(), 0u);
  auto b = cache.get("DELETE FROM users");  // second: kept
  EXPECT_EQ(cache.entries(), 1u);
  auto c = cache.get("DELETE FROM users WHERE 1=2");
  auto d = cache.get("DELETE FROM users");  // third: a hit
  EXPECT_EQ(cache.misses(), 3u);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.entries(), 1u);
  EXPECT_NE(a.get(), b.get());
  EXPECT_EQ(b.get(), d.get());
  EXPECT_TRUE(has(a->all_classes(), StatementClass::delete_without_where));
  EXPECT_TRUE(has(d->all_classes(), StatementClass::delete_without_where));
  EXPECT_FALSE(has(c->all_classes(), StatementClass::delete_without_where));
}

TEST(Cache, OneOffTextsAreNotKept) {
  ClassificationCache cache;
  for (int i = 0; i < 2000; ++i) {
    auto c = cache.get("SELECT abalance FROM pgbench_accounts WHERE aid = " + std::to_string(i));
    ASSERT_TRUE(c->ok);
  }
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.misses(), 2000u);
  // A text seen again is kept even after many others went by (unless its slot was reused).
  (void)cache.get("SELECT abalance FROM pgbench_accounts WHERE aid = 1999");
  EXPECT_EQ(cache.entries(), 1u);
}

TEST(Cache, KeyIsExactTextNotNormalized) {
  ClassificationCache cache;
  auto all = cache.get("DELETE FROM t WHERE 1=1");
  auto none = cache.get("DELETE FROM t WHERE 1=2");
  EXPECT_TRUE(has(all->all_classes(), StatementClass::delete_without_where));
  EXPECT_FALSE(has(none->all_classes(), StatementClass::delete_without_where));
  EXPECT_EQ(cache.misses(), 2u);
}

TEST(Cache, CachesErrorsToo) {
  ClassificationCache cache;
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(cache.get("SELEC 1")->ok);
  EXPECT_EQ(cache.hits(), 1u);
}

TEST(Cache, StaysWithinItsByteBudget) {
  ClassificationCache cache(64 * 1024);
  for (int i = 0; i < 5000; ++i) {
    const std::string sql =
        "SELECT abalance FROM pgbench_accounts WHERE aid = " + std::to_string(i);
    (void)cache.get(sql);
    (void)cache.get(sql);  // seen twice: kept
  }
  // ~64 KiB cannot hold 5000 entries of several hundred bytes each.
  EXPECT_LT(cache.entries(), 500u);
  EXPECT_GT(cache.entries(), 10u);
  // Recently used entries survive: the last one is a hit.
  const auto hits = cache.hits();
  (void)cache.get("SELECT abalance FROM pgbench_accounts WHERE aid = 4999");
  EXPECT_EQ(cache.hits(), hits + 1);
}

TEST(Cache, ValuesOutliveEviction) {
  ClassificationCache cache(32 * 1024);  // 2 KiB per shard: a few entries each
  (void)cache.get("TRUNCATE keep_me");
  auto first = cache.get("TRUNCATE keep_me");  // the cached value
  ASSERT_EQ(cache.entries(), 1u);
  for (int i = 0; i < 200; ++i) {
    for (int twice = 0; twice < 2; ++twice) (void)cache.get("SELECT " + std::to_string(i));
  }
  ASSERT_LT(cache.entries(), 100u);  // most were evicted
  auto again = cache.get("TRUNCATE keep_me");
  EXPECT_NE(again.get(), first.get());  // evicted: classified anew
  EXPECT_EQ(first->statements.at(0).target, "keep_me");
}

TEST(Cache, ConcurrentUse) {
  ClassificationCache cache(256 * 1024);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, &wrong, t] {
      for (int i = 0; i < 2000; ++i) {
        const int k = (i * 7 + t) % 300;
        auto c = cache.get("UPDATE t SET a = 1 WHERE id = " + std::to_string(k));
        if (!c->ok || c->statements.size() != 1 ||
            c->statements[0].text != "UPDATE t SET a = 1 WHERE id = " + std::to_string(k)) {
          ++wrong;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(cache.hits() + cache.misses(), 8000u);
}

}  // namespace
}  // namespace pgmoat::parser
