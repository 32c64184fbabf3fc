// The rest of parser/'s contract: names, statement texts, SET details, errors, robustness
// against hostile input, fingerprint/normalize and the cache.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
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

TEST(Statements, PreparedStatementNamesAreFoldedLikePostgres) {
  // The gate refuses the row guard's reserved names by what Postgres will call them.
  auto c = classify(
      "PREPARE Pgmoat_Guard_1 AS SELECT 1; EXECUTE pgmoat_guard_1; DEALLOCATE PGMOAT_GUARD_1; "
      "DEALLOCATE PREPARE \"Pgmoat_guard_2\"; DEALLOCATE ALL");
  ASSERT_TRUE(c.ok);
  ASSERT_EQ(c.statements.size(), 5u);
  EXPECT_EQ(c.statements[0].prepared_name, "pgmoat_guard_1");
  EXPECT_EQ(c.statements[1].prepared_name, "pgmoat_guard_1");
  EXPECT_EQ(c.statements[2].prepared_name, "pgmoat_guard_1");
  EXPECT_EQ(c.statements[3].prepared_name, "Pgmoat_guard_2");
  EXPECT_EQ(c.statements[4].prepared_name, "");
  EXPECT_EQ(c.statements[2].command, "DEALLOCATE");
}

// The gate forgets prepared statement names with the server: DEALLOCATE and DISCARD ALL drop
// them; the other DISCARDs do not. Statements that run a prepared statement carry its name.
TEST(Statements, WhatDropsOrRunsAPreparedStatement) {
  auto c = classify(
      "DISCARD ALL; discard plans; DISCARD SEQUENCES; DISCARD TEMP; EXPLAIN ANALYZE EXECUTE "
      "Wipe(1); CREATE TABLE t2 AS EXECUTE wipe; EXPLAIN EXECUTE wipe");
  ASSERT_TRUE(c.ok);
  ASSERT_EQ(c.statements.size(), 7u);
  EXPECT_TRUE(c.statements[0].discard_all);
  for (std::size_t i = 1; i < 4; ++i) EXPECT_FALSE(c.statements[i].discard_all) << i;
  EXPECT_EQ(c.statements[4].prepared_name, "wipe");
  EXPECT_EQ(c.statements[5].prepared_name, "wipe");
  EXPECT_EQ(c.statements[6].prepared_name, "");  // plain EXPLAIN runs nothing
  // A function body that runs a prepared statement cannot be judged: it runs whatever the
  // name stands for when the function is called.
  for (const char* sql :
       {"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'EXECUTE wipe'",
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'EXECUTE wipe'; "
        "END $$"}) {
    auto f = classify(sql);
    ASSERT_TRUE(f.ok && f.statements.size() == 1) << sql;
    EXPECT_TRUE(f.statements[0].opaque) << sql;
    EXPECT_NE(f.statements[0].opaque_reason.find("prepared statement \"wipe\""), std::string::npos)
        << f.statements[0].opaque_reason;
  }
  // Nor one that prepares or drops names: what they run changes unseen when it is called.
  for (const char* sql :
       {"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DEALLOCATE wipe'; "
        "END $$",
        "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'PREPARE wipe AS SELECT 1'",
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DEALLOCATE ALL'; "
        "END $$",
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DISCARD ALL'; END "
        "$$"}) {
    auto f = classify(sql);
    ASSERT_TRUE(f.ok && f.statements.size() == 1) << sql;
    EXPECT_TRUE(f.statements[0].opaque) << sql;
  }
  EXPECT_FALSE(classify("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE "
                        "'DISCARD PLANS'; END $$")
                   .statements.at(0)
                   .opaque);
  // The gate looks at names only when a statement has one (or drops them all).
  EXPECT_TRUE(c.names_prepared);
  for (const char* sql :
       {"DEALLOCATE ALL", "discard all", "PREPARE p AS SELECT 1", "EXECUTE p", "DEALLOCATE p"}) {
    EXPECT_TRUE(classify(sql).names_prepared) << sql;
  }
  for (const char* sql : {"SELECT 1", "DISCARD PLANS", "EXPLAIN EXECUTE p", "UPDATE t SET a = 1"}) {
    EXPECT_FALSE(classify(sql).names_prepared) << sql;
  }
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
  // And the template of "WHERE 1=2", kept to say that its numbers decide: never used.
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_NE(a.get(), b.get());
  EXPECT_EQ(b.get(), d.get());
  EXPECT_TRUE(has(a->all_classes(), StatementClass::delete_without_where));
  EXPECT_TRUE(has(d->all_classes(), StatementClass::delete_without_where));
  EXPECT_FALSE(has(c->all_classes(), StatementClass::delete_without_where));
}

// Texts with string literals: never shared through a template.
std::string by_name(int i) {
  return "SELECT abalance FROM accounts WHERE name = 'n" + std::to_string(i) + "'";
}

TEST(Cache, OneOffTextsAreNotKept) {
  ClassificationCache cache;
  for (int i = 0; i < 2000; ++i) {
    auto c = cache.get(by_name(i));
    ASSERT_TRUE(c->ok);
  }
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.misses(), 2000u);
  // A text seen again is kept even after many others went by (unless its slot was reused).
  (void)cache.get(by_name(1999));
  EXPECT_EQ(cache.entries(), 1u);
}

TEST(Cache, PlainSelectsThatDifferInNumbersShareOneParse) {
  ClassificationCache cache;
  for (int i = 0; i < 2000; ++i) {
    const std::string sql =
        "SELECT abalance FROM pgbench_accounts WHERE aid = " + std::to_string(i) + ";";
    auto c = cache.get(sql);
    ASSERT_TRUE(c->ok);
    ASSERT_EQ(c->statements.size(), 1u);
    // The statement's own text, not the template's.
    ASSERT_EQ(c->statements[0].text, sql.substr(0, sql.size() - 1));
    ASSERT_EQ(c->statements[0].target, "pgbench_accounts");
  }
  EXPECT_EQ(cache.entries(), 1u);  // the template
  EXPECT_EQ(cache.hits(), 2000u);
  EXPECT_EQ(cache.misses(), 0u);
}

TEST(Cache, FindSharesTheTemplatesClassificationAndPointsAtTheTextsOwnStatement) {
  ClassificationCache cache;
  const std::string a = "  SELECT abalance FROM pgbench_accounts WHERE aid = 17 ;\n";
  const std::string b = "  SELECT abalance FROM pgbench_accounts WHERE aid = 4242 ;\n";
  Cached fa = cache.find(a);
  Cached fb = cache.find(b);
  ASSERT_TRUE(fa.classification->shared_template);
  EXPECT_EQ(fa.classification.get(), fb.classification.get());  // one object, no copy
  EXPECT_EQ(fa.own_statement, "SELECT abalance FROM pgbench_accounts WHERE aid = 17");
  EXPECT_EQ(fb.own_statement, "SELECT abalance FROM pgbench_accounts WHERE aid = 4242");
  // The shared statement's text is the template's; with_own_text() gives each text its own.
  EXPECT_EQ(fa.classification->statements.at(0).text,
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1");
  auto own = with_own_text(fa);
  EXPECT_NE(own.get(), fa.classification.get());
  EXPECT_FALSE(own->shared_template);
  EXPECT_EQ(own->statements.at(0).text, "SELECT abalance FROM pgbench_accounts WHERE aid = 17");
  EXPECT_EQ(own->statements.at(0).target, "pgbench_accounts");
  EXPECT_EQ(fa.classification->statements.at(0).text,
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1");  // the shared one unchanged
  // A text classified from itself is not copied.
  Cached plain = cache.find("SELECT abalance FROM pgbench_accounts");
  EXPECT_FALSE(plain.classification->shared_template);
  EXPECT_EQ(with_own_text(plain).get(), plain.classification.get());
}

TEST(Cache, ARepeatedTextOfATemplateKeepsPointingAtItsOwnStatement) {
  ClassificationCache cache;
  const std::string sql = "SELECT abalance FROM pgbench_accounts WHERE aid = 7;  ";
  const Classification* shared = nullptr;
  // Seen again and again (a health check): from the third time this thread's own copy.
  for (int i = 0; i < 6; ++i) {
    Cached f = cache.find(sql);
    ASSERT_TRUE(f.classification->shared_template) << i;
    EXPECT_EQ(f.own_statement, "SELECT abalance FROM pgbench_accounts WHERE aid = 7") << i;
    EXPECT_EQ(f.own_statement.data(), sql.data()) << i;  // a view into the text looked up
    EXPECT_EQ(with_own_text(f)->statements.at(0).text,
              "SELECT abalance FROM pgbench_accounts WHERE aid = 7")
        << i;
    if (i == 0) shared = f.classification.get();
    if (i == 1) {
      EXPECT_EQ(f.classification.get(), shared);  // the template's one object, not a copy
    }
  }
  EXPECT_EQ(cache.entries(), 1u);  // the template: the text is never kept in a shard
  EXPECT_EQ(cache.hits(), 6u);
  EXPECT_EQ(cache.misses(), 0u);
}

TEST(Cache, AThreadsCopiesNeverAnswerForAnotherCache) {
  ClassificationCache first;
  for (int i = 0; i < 5; ++i) (void)first.find("SELECT a FROM t");
  ASSERT_EQ(first.misses(), 2u);  // kept from its second sighting
  ASSERT_EQ(first.hits(), 3u);
  ClassificationCache second;  // same thread, same text: still its own first sighting
  auto c = second.get("SELECT a FROM t");
  EXPECT_EQ(second.misses(), 1u);
  EXPECT_EQ(second.hits(), 0u);
  EXPECT_EQ(c->statements.at(0).target, "t");
}

TEST(Cache, WritesThatDifferInNumbersShareOneParse) {
  ClassificationCache cache;
  for (int i = 0; i < 2000; ++i) {
    const std::string sql = "UPDATE pgbench_accounts SET abalance = abalance + " +
                            std::to_string(i % 7) + " WHERE aid = " + std::to_string(i) + ";";
    auto c = cache.get(sql);
    ASSERT_TRUE(c->ok);
    ASSERT_EQ(c->statements.size(), 1u);
    ASSERT_EQ(c->statements[0].text, sql.substr(0, sql.size() - 1));
    ASSERT_EQ(c->statements[0].classes, bit(StatementClass::update));
    if (i % 500 == 0) {
      ASSERT_EQ(c->statements[0].shape, classify(sql).statements.at(0).shape) << sql;
    }
  }
  EXPECT_EQ(cache.entries(), 1u);  // the template
  EXPECT_EQ(cache.hits(), 2000u);
  EXPECT_EQ(cache.misses(), 0u);
  // Numbers that make the WHERE clause constant-true are never read through a template.
  EXPECT_TRUE(has(
      cache.get("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE 1 = 1")->all_classes(),
      StatementClass::update_without_where));
  EXPECT_FALSE(has(
      cache.get("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE 1 = 2")->all_classes(),
      StatementClass::update_without_where));
}

TEST(Cache, NumbersNeverDecideWhatAStatementIs) {
  ClassificationCache cache;
  for (int round = 0; round < 2; ++round) {  // the second round finds every template cached
    EXPECT_TRUE(has(cache.get("DELETE FROM t WHERE 1=1")->all_classes(),
                    StatementClass::delete_without_where));
    EXPECT_FALSE(has(cache.get("DELETE FROM t WHERE 1=2")->all_classes(),
                     StatementClass::delete_without_where));
    EXPECT_EQ(cache.get("SELECT pg_sleep(1)")->statements.at(0).functions,
              std::vector<std::string>{"pg_sleep"});
    EXPECT_TRUE(
        has(cache.get("WITH d AS (DELETE FROM t WHERE id = 4 RETURNING 1) SELECT 1")->all_classes(),
            StatementClass::delete_));
    EXPECT_TRUE(has(cache.get("SELECT 1 INTO t2")->all_classes(), StatementClass::ddl));
  }
}

// Every statement read through a warm template equals classify() of its own text.
TEST(Cache, ATemplatesClassificationEqualsTheStatementsOwn) {
  const std::vector<std::pair<std::string, std::string>> corpus = {
      {"SELECT abalance FROM pgbench_accounts WHERE aid = 1",
       "SELECT abalance FROM pgbench_accounts WHERE aid = 2"},
      {"  select * from t where a = 1.5 and b > .5 limit 10 ;  ",
       "  select * from t where a = 2.5 and b > .7 limit 20 ;  "},
      {"SELECT x FROM s.t1 t WHERE t.id IN (1, 2, 3) ORDER BY 1 OFFSET 5",
       "SELECT x FROM s.t1 t WHERE t.id IN (4, 5, 6) ORDER BY 1 OFFSET 9"},
      {"/* app:web */ SELECT \"col1\" FROM \"T2\" WHERE v = 1e3 -- trailing",
       "/* app:web */ SELECT \"col1\" FROM \"T2\" WHERE v = 2e3 -- trailing"},
      {"SELECT a FROM t WHERE name = 'it''s 5' AND id = 7 FOR UPDATE",
       "SELECT a FROM t WHERE name = 'it''s 5' AND id = 8 FOR UPDATE"},
      {"SELECT count(*) FROM t WHERE id > 10", "SELECT count(*) FROM t WHERE id > 11"},
      {"DELETE FROM t WHERE id = 5", "DELETE FROM t WHERE id = 6"},
      {"UPDATE t SET v = v + 1 WHERE id = 5", "UPDATE t SET v = v + 2 WHERE id = 6"},
      {"DELETE FROM t WHERE 1 = 1", "DELETE FROM t WHERE 1 = 2"},
      {"SELECT set_config('a', 'b', false), 1", "SELECT set_config('a', 'b', false), 2"},
      {"SELECT * FROM generate_series(1, 5)", "SELECT * FROM generate_series(1, 6)"},
      {"SELECT 1 INTO TEMP x", "SELECT 2 INTO TEMP x"},
      {"EXPLAIN ANALYZE DELETE FROM t WHERE id = 1", "EXPLAIN ANALYZE DELETE FROM t WHERE id = 2"},
      {"COPY (SELECT 1) TO STDOUT", "COPY (SELECT 2) TO STDOUT"},
      {"SELECT 1::numeric(10, 2)", "SELECT 2::numeric(10, 2)"},
      {"VALUES (1), (2)", "VALUES (3), (4)"},
      {"TABLE t LIMIT 3", "TABLE t LIMIT 4"},
      {"SET statement_timeout = 0", "SET statement_timeout = 5"},
      // A number cannot be subscripted, a parameter can: these texts do not parse.
      {"SELECT 3[4]", "SELECT 1[2]"},
      {"SELECT 3 /* x */ [4] FROM t", "SELECT 1 /* x */ [2] FROM t"},
      {"SELECT 3 .x", "SELECT 1 .x"},
      {"SELECT 3 /* x */ .x", "SELECT 1 /* x */ .x"},
      // Writes: pgbench's, then WHERE clauses numbers could make constant-true, then shapes
      // where the grammar folds a minus into the constant.
      {"UPDATE pgbench_accounts SET abalance = abalance + -3012 WHERE aid = 12345;",
       "UPDATE pgbench_accounts SET abalance = abalance + -7 WHERE aid = 1;"},
      {"UPDATE pgbench_tellers SET tbalance = tbalance + 4000 WHERE tid = 3",
       "UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid = 9"},
      {"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 12345, -3012, "
       "CURRENT_TIMESTAMP)",
       "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (8, 2, 5, -1, "
       "CURRENT_TIMESTAMP)"},
      {"DELETE FROM t WHERE 1 = 2", "DELETE FROM t WHERE 2 = 2"},
      {"DELETE FROM t WHERE id = 1 OR 1 = 2", "DELETE FROM t WHERE id = 1 OR 2 = 2"},
      {"DELETE FROM t WHERE id = 1 AND 1 = 2", "DELETE FROM t WHERE id = 1 AND 2 = 2"},
      {"DELETE FROM t WHERE NOT 1 = 1", "DELETE FROM t WHERE NOT 1 = 2"},
      {"DELETE FROM t WHERE -1 > 0", "DELETE FROM t WHERE -1 < 0"},
      {"DELETE FROM t WHERE - -1 > 0", "DELETE FROM t WHERE - -1 < 9"},
      {"DELETE FROM t WHERE 3 IN (1, 2)", "DELETE FROM t WHERE 1 IN (1, 2)"},
      {"DELETE FROM t WHERE id IN (1, 2)", "DELETE FROM t WHERE id IN (3, 4, 5)"},
      {"DELETE FROM t WHERE (1 = 2) IS TRUE", "DELETE FROM t WHERE (2 = 2) IS TRUE"},
      {"DELETE FROM t WHERE 0::bool", "DELETE FROM t WHERE 1::bool"},
      {"DELETE FROM t WHERE 5 IS NULL", "DELETE FROM t WHERE 6 IS NOT NULL"},
      {"DELETE FROM t WHERE 1 = 2 OR 3 = 4", "DELETE FROM t WHERE 1 = 2 OR 4 = 4"},
      {"DELETE FROM t WHERE 1 = 1 AND 3 = 4", "DELETE FROM t WHERE 1 = 1 AND 4 = 4"},
      {"DELETE FROM t WHERE CASE WHEN 1 = 1 THEN true END",
       "DELETE FROM t WHERE CASE WHEN 1 = 2 THEN true END"},
      {"DELETE FROM t USING s WHERE s.id = t.id AND 1 = 2",
       "DELETE FROM t USING s WHERE s.id = t.id AND 2 = 2"},
      {"DELETE FROM t WHERE " + std::string(70 * 4, ' ') + "1 = 2", "DELETE FROM t WHERE " +
                                                                        [] {
                                                                          std::string n;
                                                                          for (int i = 0; i < 70;
                                                                               ++i)
                                                                            n += "NOT ";
                                                                          return n;
                                                                        }() +
                                                                        "1 = 1"},
      {"DELETE FROM t WHERE id = 1 RETURNING id, 5", "DELETE FROM t WHERE id = 2 RETURNING id, 6"},
      {"UPDATE t SET v = 1", "UPDATE t SET v = 2"},
      {"UPDATE t SET v = - -5 WHERE id = -(3)", "UPDATE t SET v = - -6 WHERE id = -(4)"},
      {"UPDATE t SET v = -5::int WHERE id = 1", "UPDATE t SET v = -6::int WHERE id = 2"},
      {"UPDATE t SET v = +5 WHERE id = 1", "UPDATE t SET v = +6 WHERE id = 2"},
      {"UPDATE t SET v = OPERATOR(-) 5 WHERE id = 1",
       "UPDATE t SET v = OPERATOR(-) 6 WHERE id = 2"},
      {"UPDATE t SET v = -5 WHERE id = 1", "UPDATE t SET v = OPERATOR(-) 6 WHERE id = 2"},
      {"UPDATE t SET v = 1.5e3 WHERE id = 2", "UPDATE t SET v = 2.5e3 WHERE id = 3"},
      {"UPDATE t SET v = 2 WHERE id = 3 AND 4 = 4", "UPDATE t SET v = 3 WHERE id = 4 AND 5 = 5"},
      {"UPDATE t SET v = 2 WHERE id = 3 OR 4 = 5", "UPDATE t SET v = 3 WHERE id = 4 OR 5 = 5"},
      {"UPDATE t SET a = x::numeric(10, 2) WHERE id = 1",
       "UPDATE t SET a = x::numeric(12, 3) WHERE id = 2"},
      {"UPDATE t SET a = 'x'::varchar(5) WHERE id = 1",
       "UPDATE t SET a = 'x'::varchar(6) WHERE id = 2"},
      {"UPDATE t SET v = 1 FROM s WHERE s.id = t.id AND s.k = 5",
       "UPDATE t SET v = 2 FROM s WHERE s.id = t.id AND s.k = 6"},
      {"UPDATE t SET v = now() + interval '1 day' WHERE id = 1",
       "UPDATE t SET v = now() + interval '1 day' WHERE id = 2"},
      {"INSERT INTO t VALUES (1, 'a'), (2, 'b')", "INSERT INTO t VALUES (3, 'a'), (4, 'b')"},
      {"INSERT INTO t SELECT * FROM s WHERE id > 5", "INSERT INTO t SELECT * FROM s WHERE id > 6"},
      {"INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET v = t.v + 1",
       "INSERT INTO t (id) VALUES (2) ON CONFLICT (id) DO UPDATE SET v = t.v + 2"},
      {"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.v > 5 THEN UPDATE SET v = 1 "
       "WHEN NOT MATCHED THEN INSERT VALUES (s.id, 2)",
       "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.v > 6 THEN UPDATE SET v = 3 "
       "WHEN NOT MATCHED THEN INSERT VALUES (s.id, 4)"},
      {"WITH d AS (DELETE FROM t WHERE 1 = 2 RETURNING 1) SELECT 1",
       "WITH d AS (DELETE FROM t WHERE 2 = 2 RETURNING 1) SELECT 1"},
  };
  ClassificationCache cache;
  for (const auto& [warm, sql] : corpus) {
    (void)cache.get(warm);
    (void)cache.get(warm);
    auto got = cache.get(sql);
    const Classification want = classify(sql);
    ASSERT_EQ(got->ok, want.ok) << sql;
    ASSERT_EQ(got->statements.size(), want.statements.size()) << sql;
    for (std::size_t i = 0; i < want.statements.size(); ++i) {
      const Statement& g = got->statements[i];
      const Statement& w = want.statements[i];
      EXPECT_EQ(g.classes, w.classes) << sql;
      EXPECT_EQ(g.tables, w.tables) << sql;
      EXPECT_EQ(g.functions, w.functions) << sql;
      EXPECT_EQ(g.object_type, w.object_type) << sql;
      EXPECT_EQ(g.target, w.target) << sql;
      EXPECT_EQ(g.command, w.command) << sql;
      EXPECT_EQ(g.text, w.text) << sql;
      EXPECT_EQ(g.shape, w.shape) << sql;
      EXPECT_EQ(g.set_name, w.set_name) << sql;
      EXPECT_EQ(g.set_value, w.set_value) << sql;
      EXPECT_EQ(g.opaque, w.opaque) << sql;
    }
  }
}

// Random WHERE clauses built from numbers, columns, comparisons, AND / OR / NOT, IS tests,
// IN lists, casts and minus signs: read through a template warmed by other numbers, each
// must classify exactly as its own text does.
class ExprGen {
 public:
  explicit ExprGen(std::uint32_t seed) : rng_(seed) {}
  std::string boolean(int depth) {
    switch (pick(depth > 3 ? 3 : 11)) {
      case 0:
        return value(depth + 1) + " " + cmp() + " " + value(depth + 1);
      case 8:
        return pick(2) ? "true" : "'t'";
      case 9:
        return pick(2) ? "id = id" : "NULL";
      case 10:
        return "CASE WHEN " + boolean(depth + 1) + " THEN true END";
      case 1:
        return value(depth + 1) + " IN (" + value(depth + 1) + ", " + value(depth + 1) + ")";
      case 2:
        return value(depth + 1) + (pick(2) ? " IS NULL" : " IS NOT NULL");
      case 3:
        return "(" + boolean(depth + 1) + ") AND (" + boolean(depth + 1) + ")";
      case 4:
        return "(" + boolean(depth + 1) + ") OR (" + boolean(depth + 1) + ")";
      case 5:
        return "NOT (" + boolean(depth + 1) + ")";
      case 6:
        return "(" + boolean(depth + 1) + ") IS " + (pick(2) ? "TRUE" : "NOT FALSE");
      default:
        return number() + "::bool";
    }
  }
  std::string value(int depth) {
    switch (pick(depth > 3 ? 3 : 9)) {
      case 0:
        return number();
      case 1:
        return pick(2) ? "id" : "t.v";
      case 2:
        return "-" + number();
      case 3:
        return "(" + value(depth + 1) + " " + (pick(2) ? "+" : "-") + " " + value(depth + 1) + ")";
      case 4:
        return "- -" + number();
      case 5:
        return "-(" + value(depth + 1) + ")";
      case 6:
        return pick(2) ? "'1'" : "'x'";
      case 7:
        return number() + "::text";
      default:
        return number() + "::int";
    }
  }
  std::string number() {
    switch (pick(4)) {
      case 0:
        return "0";
      case 1:
        return "1";
      case 2:
        return std::to_string(pick(1000));
      default:
        return std::to_string(pick(9)) + "." + std::to_string(pick(9));
    }
  }

 private:
  std::string cmp() {
    static const char* ops[] = {"=", "<>", "<", ">", "<=", ">="};
    return ops[pick(6)];
  }
  unsigned pick(unsigned n) { return std::uniform_int_distribution<unsigned>(0, n - 1)(rng_); }
  std::mt19937 rng_;
};

// The same text with every number replaced by another (so it shares the template).
std::string other_numbers(const std::string& sql, std::mt19937& rng) {
  std::string out;
  for (std::size_t i = 0; i < sql.size();) {
    if (sql[i] >= '0' && sql[i] <= '9') {
      while (i < sql.size() && ((sql[i] >= '0' && sql[i] <= '9') || sql[i] == '.')) ++i;
      out += std::to_string(std::uniform_int_distribution<int>(0, 3)(rng));
      if (rng() % 2) out += ".5";
    } else {
      out += sql[i++];
    }
  }
  return out;
}

TEST(Cache, RandomWhereClausesReadThroughTemplatesClassifyAsTheirOwnText) {
  // PGMOAT_TEMPLATE_FUZZ=<n>[:<seed>]: n statements instead of 3,000 (a longer search).
  const char* env = std::getenv("PGMOAT_TEMPLATE_FUZZ");
  const int n = env != nullptr ? std::atoi(env) : 3000;
  const char* seed = env != nullptr ? std::strchr(env, ':') : nullptr;
  ExprGen gen(seed != nullptr ? static_cast<std::uint32_t>(std::atol(seed + 1)) : 20261203u);
  std::mt19937 rng(7);
  ClassificationCache cache;
  int constant_true = 0;
  int shared = 0;
  for (int i = 0; i < n; ++i) {
    const std::string where = gen.boolean(0);
    const std::string sql = i % 2 ? "DELETE FROM t WHERE " + where
                                  : "UPDATE t SET v = " + gen.value(2) + " WHERE " + where;
    const std::string warm = other_numbers(sql, rng);
    (void)cache.get(warm);
    const std::uint64_t hits = cache.hits();
    auto got = cache.get(sql);
    shared += cache.hits() > hits ? 1 : 0;
    const Classification want = classify(sql);
    ASSERT_EQ(got->ok, want.ok) << sql;
    if (!want.ok) continue;
    ASSERT_EQ(got->statements.size(), 1u) << sql;
    EXPECT_EQ(got->statements[0].classes, want.statements[0].classes) << sql << "\nwarm: " << warm;
    EXPECT_EQ(got->statements[0].shape, want.statements[0].shape) << sql;
    constant_true += has(want.all_classes(), StatementClass::delete_without_where) ||
                     has(want.all_classes(), StatementClass::update_without_where);
  }
  // The generator reaches both answers, and templates are used for a good share.
  EXPECT_GT(constant_true, 100);
  EXPECT_GT(shared, 500);
}

// With standard_conforming_strings off, Postgres reads \' inside '...' as a quote that does
// not end the string: this text is one SELECT of two strings with it on, and a SELECT then a
// DROP with it off.
constexpr const char* kHiddenDrop = "SELECT 'a\\', ' ; DROP TABLE t; --'";

TEST(Strings, BackslashEscapesReadAsTheServerDoes) {
  const Classification on = classify(kHiddenDrop);
  ASSERT_TRUE(on.ok) << on.error;
  ASSERT_EQ(on.statements.size(), 1u);
  EXPECT_EQ(on.statements[0].classes, bit(StatementClass::select));
  const Classification off = classify(kHiddenDrop, Strings::backslash_escapes);
  ASSERT_TRUE(off.ok) << off.error;
  ASSERT_EQ(off.statements.size(), 2u);
  EXPECT_TRUE(has(off.statements[1].classes, StatementClass::drop));
  EXPECT_FALSE(same_judgement(on, off));
  // The setting lasts for one classification only.
  EXPECT_TRUE(same_judgement(classify(kHiddenDrop), on));
}

TEST(Strings, TextsWithoutSuchBackslashesJudgeAlike) {
  for (const char* sql : {"SELECT 1", "DELETE FROM t WHERE note = E'it\\'s'",
                          "SELECT regexp_replace(x, '\\s+', ' ') FROM t",
                          "UPDATE t SET p = 'C:\\dir' WHERE id = 1"}) {
    EXPECT_TRUE(same_judgement(classify(sql), classify(sql, Strings::backslash_escapes))) << sql;
  }
  // Unterminated with escapes on: an error one way, a statement the other.
  EXPECT_FALSE(same_judgement(classify("SELECT 'C:\\'"),
                              classify("SELECT 'C:\\'", Strings::backslash_escapes)));
}

TEST(Strings, AFunctionBodyThatReadsDifferentlyIsOpaque) {
  // The body runs under whatever the setting is when the function is called.
  for (const char* sql :
       {"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$SELECT 'a\\', ' ; DROP TABLE t; --'$$",
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN PERFORM 'a\\', ' ; "
        "DROP TABLE t; --'; END$$"}) {
    for (Strings s : {Strings::standard, Strings::backslash_escapes}) {
      const Classification c = classify(sql, s);
      ASSERT_TRUE(c.ok) << c.error;
      ASSERT_EQ(c.statements.size(), 1u) << sql;
      EXPECT_TRUE(c.statements[0].opaque) << sql;
      EXPECT_NE(c.statements[0].opaque_reason.find("standard_conforming_strings"),
                std::string::npos)
          << c.statements[0].opaque_reason;
    }
  }
  // A regular expression's backslashes change a string's value, not the statement.
  const Classification re = classify(
      "CREATE FUNCTION g(x text) RETURNS text LANGUAGE sql AS $$SELECT regexp_replace(x, '\\s+', "
      "' ')$$");
  ASSERT_TRUE(re.ok) << re.error;
  EXPECT_FALSE(re.statements[0].opaque) << re.statements[0].opaque_reason;
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
    const std::string sql = by_name(i);
    (void)cache.get(sql);
    (void)cache.get(sql);  // seen twice: kept
  }
  // ~64 KiB cannot hold 5000 entries of several hundred bytes each.
  EXPECT_LT(cache.entries(), 500u);
  EXPECT_GT(cache.entries(), 10u);
  // Recently used entries survive: the last one is a hit.
  const auto hits = cache.hits();
  (void)cache.get(by_name(4999));
  EXPECT_EQ(cache.hits(), hits + 1);
}

TEST(Cache, ValuesOutliveEviction) {
  ClassificationCache cache(32 * 1024);  // 2 KiB per shard: a few entries each
  (void)cache.get("TRUNCATE keep_me");
  auto first = cache.get("TRUNCATE keep_me");  // the cached value
  ASSERT_EQ(cache.entries(), 1u);
  for (int i = 0; i < 200; ++i) {
    for (int twice = 0; twice < 2; ++twice) (void)cache.get(by_name(i));
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
