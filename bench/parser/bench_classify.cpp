// Cold parse+classify per statement shape, and cache hits.
//   build-parser/bench/parser/bench_classify --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "parser/classify.h"
#include "parser/literal_template.h"

namespace {

using pgmoat::parser::ClassificationCache;
using pgmoat::parser::classify;
using pgmoat::parser::fingerprint;

const char* const kShapes[] = {
    // pgbench -S
    "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
    // pgbench TPC-B-like statements
    "UPDATE pgbench_accounts SET abalance = abalance + -4049 WHERE aid = 48213;",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 48213, -4049, "
    "CURRENT_TIMESTAMP);",
    "BEGIN;",
    // an ORM-style 3-table join
    "SELECT u.id, u.email, o.id, o.total, i.sku FROM public.users u JOIN orders o ON o.user_id = "
    "u.id JOIN order_items i ON i.order_id = o.id WHERE u.id = $1 AND o.created_at > $2 ORDER BY "
    "o.created_at DESC LIMIT 50",
    // a data-modifying CTE
    "WITH d AS (DELETE FROM sessions WHERE expires_at < now() RETURNING user_id) SELECT count(*) "
    "FROM d",
    // a PL/pgSQL function
    "CREATE FUNCTION f(a int) RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t WHERE id = "
    "a; UPDATE u SET n = n + 1 WHERE id = a; END $$",
};

void BM_ClassifyCold(benchmark::State& state) {
  const std::string sql = kShapes[state.range(0)];
  for (auto _ : state) {
    auto c = classify(sql);
    benchmark::DoNotOptimize(c);
  }
  state.SetLabel(sql.substr(0, 40));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ClassifyCold)->DenseRange(0, std::size(kShapes) - 1);

void BM_CacheHit(benchmark::State& state) {
  static ClassificationCache cache;
  const std::string sql = kShapes[state.range(0)];
  cache.get(sql);
  cache.get(sql);  // kept from its second sighting
  for (auto _ : state) {
    auto c = cache.get(sql);
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CacheHit)->Arg(0)->Arg(4)->ThreadRange(1, 2);

// The same text again through find(), as the Query path looks texts up: /0 (pgbench's SELECT,
// read through its template) comes from the thread's own copy, without get()'s copy of the
// classification to carry the text.
void BM_FindHit(benchmark::State& state) {
  static ClassificationCache cache;
  const std::string sql = kShapes[state.range(0)];
  for (int i = 0; i < 3; ++i) cache.find(sql);
  for (auto _ : state) {
    auto found = cache.find(sql);
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FindHit)->Arg(0)->Arg(4)->ThreadRange(1, 2);

// Many distinct texts (pgbench -M simple: literal aids), each seen once. /0: pgbench's SELECT,
// which shares its template's parse. /1: pgbench's UPDATE, parsed each time (after a lookup
// of its template, which stands for nothing but itself).
void BM_CacheDistinctLiterals(benchmark::State& state) {
  ClassificationCache cache(1u << 20);
  const std::string head = state.range(0) == 0
                               ? "SELECT abalance FROM pgbench_accounts WHERE aid = "
                               : "UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = ";
  long aid = 0;
  for (auto _ : state) {
    auto c = cache.get(head + std::to_string(++aid));
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CacheDistinctLiterals)->Arg(0)->Arg(1);

// The proxy's lookup of a pgbench -S -M simple SELECT (a fresh aid each time): find() shares
// the template's classification, and the gate copies it only to record or show the text.
void BM_FindDistinctLiterals(benchmark::State& state) {
  static ClassificationCache cache(1u << 20);  // shared by the threads of /threads:2
  const std::string head = "SELECT abalance FROM pgbench_accounts WHERE aid = ";
  long aid = state.thread_index() * 1000000000L;
  for (auto _ : state) {
    auto found = cache.find(head + std::to_string(++aid) + ";");
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FindDistinctLiterals)->ThreadRange(1, 2);

// The literal scan alone (parser/literal_template.h), per statement shape with numbers.
void BM_NumericTemplate(benchmark::State& state) {
  const std::string sql = kShapes[state.range(0)];
  for (auto _ : state) {
    auto t = pgmoat::parser::numeric_template(sql);
    benchmark::DoNotOptimize(t);
  }
  state.SetLabel(sql.substr(0, 40));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NumericTemplate)->Arg(0)->Arg(1)->Arg(2);

// What the proxy pays for an audited statement with fresh literals: classify, then the
// fingerprint for its audit record (from the shape cache after the first one).
void BM_ClassifyAndFingerprint(benchmark::State& state) {
  long aid = 0;
  for (auto _ : state) {
    ++aid;
    auto c = classify("UPDATE pgbench_accounts SET abalance = abalance + " +
                      std::to_string(aid % 9999) + " WHERE aid = " + std::to_string(aid) + ";");
    std::string fp = state.range(0) == 0 ? fingerprint(c.statements.front().text)
                                         : fingerprint(c.statements.front());
    benchmark::DoNotOptimize(fp);
  }
  state.SetLabel(state.range(0) == 0 ? "libpg_query fingerprint (second parse)"
                                     : "fingerprint from the shape cache");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ClassifyAndFingerprint)->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
