// encode() cost, and append throughput when many sessions each wait for their own record to
// be durable (the write-ahead pattern): with group commit they share one fdatasync per batch.
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <filesystem>
#include <memory>

#include "audit/audit_log.h"
#include "audit/record.h"

namespace {

using pgmoat::audit::AuditLog;
using pgmoat::audit::encode;
using pgmoat::audit::Event;
using pgmoat::audit::Identity;

Identity identity() {
  Identity id;
  id.session_id = "0193f5a2-7c1d";
  id.client_addr = "10.20.30.40";
  id.client_port = 51234;
  id.listen_addr = "0.0.0.0:6432";
  id.user = "app";
  id.database = "prod";
  id.application_name = "seed-script";
  id.startup_parameters = {{"client_encoding", "UTF8"}, {"DateStyle", "ISO, MDY"}};
  id.auth_method = "scram-sha-256";
  id.backend_pid = 12345;
  return id;
}

Event event() {
  Event ev;
  ev.statement_id = 17;
  ev.statement =
      "DELETE FROM products WHERE code NOT IN ('A-100', 'A-101', 'B-200') AND \"note\" <> "
      "'tab\there'";
  ev.fingerprint = "3f1c9a2b7d";
  ev.classes = {"delete"};
  ev.tables_written = {"public.products"};
  ev.decision = "allow";
  ev.rule = "seed-delete";
  return ev;
}

void BM_Encode(benchmark::State& state) {
  const Identity id = identity();
  const Event ev = event();
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string s = encode(id, ev);
    bytes += s.size();
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_Encode);

std::unique_ptr<AuditLog> g_log;
std::string g_dir;

void open_log(bool fsync) {
  char tmpl[] = "/tmp/pgmoat-audit-bench-XXXXXX";
  g_dir = ::mkdtemp(tmpl);
  AuditLog::Options o;
  o.path = g_dir + "/audit.jsonl";
  o.fsync = fsync;
  g_log = std::make_unique<AuditLog>(o);
}
void setup_fsync(const benchmark::State&) {
  open_log(true);
}
void setup_write(const benchmark::State&) {
  open_log(false);
}
void teardown(const benchmark::State& state) {
  const auto stats = g_log->stats();
  g_log.reset();
  std::filesystem::remove_all(g_dir);
  (void)state;
  std::fprintf(stderr, "  (%llu records in %llu batches: %.1f records per sync)\n",
               static_cast<unsigned long long>(stats.records),
               static_cast<unsigned long long>(stats.batches),
               stats.batches == 0
                   ? 0.0
                   : static_cast<double>(stats.records) / static_cast<double>(stats.batches));
}

// Each thread is a session that waits until its record is durable before going on.
void BM_AppendSync(benchmark::State& state) {
  const std::string rec = encode(identity(), event());
  for (auto _ : state) {
    if (!g_log->append_sync(rec)) state.SkipWithError("append failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AppendSync)
    ->Setup(setup_fsync)
    ->Teardown(teardown)
    ->ThreadRange(1, 64)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK(BM_AppendSync)
    ->Name("BM_AppendSync_NoFsync")
    ->Setup(setup_write)
    ->Teardown(teardown)
    ->Threads(1)
    ->Threads(8)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
