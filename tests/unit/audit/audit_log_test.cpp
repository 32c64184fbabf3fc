#include "audit/audit_log.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <future>
#include <thread>

#include <rapidjson/document.h>

#include "audit/chain.h"
#include "audit/files.h"
#include "audit/record.h"
#include "audit/verify.h"
#include "test_util.h"

namespace pgmoat::audit {
namespace {

using testing::lines_of;
using testing::slurp;
using testing::TempDir;
namespace fs = std::filesystem;

std::string record(const std::string& statement, const std::string& user = "app") {
  Identity id;
  id.user = user;
  id.database = "prod";
  id.client_addr = "10.0.0.1";
  Event ev;
  ev.statement = statement;
  ev.classes = {"delete"};
  return encode(id, ev);
}

AuditLog::Options opts(const std::string& path,
                       std::chrono::milliseconds lazy_sync = std::chrono::milliseconds(200)) {
  AuditLog::Options o;
  o.path = path;
  o.retry_interval = std::chrono::milliseconds(20);
  o.lazy_sync = lazy_sync;
  return o;
}

// Long enough that only sync() or a durable append syncs deferred records in a test.
constexpr std::chrono::milliseconds kNoLazySync = std::chrono::hours(1);

rapidjson::Document parse(const std::string& line) {
  rapidjson::Document d;
  d.Parse(line.data(), line.size());
  return d;
}

TEST(AuditLog, WritesAChainThatVerifies) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  {
    AuditLog log(opts(path));
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(log.append_sync(record("DELETE " + std::to_string(i))));
    EXPECT_TRUE(log.healthy());
  }
  auto lines = lines_of(slurp(path));
  ASSERT_EQ(lines.size(), 5u);
  auto first = parse(lines[0]);
  EXPECT_EQ(first["seq"].GetUint64(), 1u);
  EXPECT_EQ(std::string(first["prev"].GetString()), kGenesisPrev);
  auto second = parse(lines[1]);
  EXPECT_EQ(second["seq"].GetUint64(), 2u);
  EXPECT_EQ(std::string(second["prev"].GetString()), sha256_hex(lines[0]));
  EXPECT_STREQ(second["statement"].GetString(), "DELETE 1");
  VerifyReport rep = verify_files({path});
  EXPECT_TRUE(rep.ok) << (rep.error ? to_string(*rep.error) : "");
  EXPECT_EQ(rep.records, 5u);
  EXPECT_TRUE(rep.warnings.empty());
}

TEST(AuditLog, RestartContinuesTheChain) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  {
    AuditLog log(opts(path));
    ASSERT_TRUE(log.append_sync(record("a")));
  }
  {
    AuditLog log(opts(path));
    ASSERT_TRUE(log.append_sync(record("b")));
  }
  auto lines = lines_of(slurp(path));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(parse(lines[1])["seq"].GetUint64(), 2u);
  EXPECT_TRUE(verify_files({path}).ok);
}

TEST(AuditLog, SecondWriterOnTheSameFileIsRefused) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  AuditLog log(opts(path));
  EXPECT_THROW(AuditLog second(opts(path)), AuditError);
}

TEST(AuditLog, RefusesToContinueAFileThatIsNotAnAuditTrail) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  testing::spit(path, "hello\n");
  EXPECT_THROW(AuditLog log(opts(path)), AuditError);
  EXPECT_EQ(slurp(path), "hello\n");  // untouched
}

TEST(AuditLog, TornTailAtStartupIsMovedAsideAndTheChainResumes) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  {
    AuditLog log(opts(path));
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(log.append_sync(record("x")));
  }
  const std::string before = slurp(path);
  testing::spit(path, before + "{\"seq\":4,\"prev\":\"ab");  // crash mid-write
  {
    AuditLog log(opts(path));
    ASSERT_TRUE(log.append_sync(record("after crash")));
  }
  auto files = list_audit_files(path);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(slurp(files[0]), before + "{\"seq\":4,\"prev\":\"ab");  // evidence kept as it was
  auto lines = lines_of(slurp(path));
  ASSERT_EQ(lines.size(), 2u);
  auto resume = parse(lines[0]);
  EXPECT_STREQ(resume["type"].GetString(), "chain_resume");
  EXPECT_EQ(resume["seq"].GetUint64(), 4u);
  EXPECT_EQ(std::string(resume["rotated_from"].GetString()), fs::path(files[0]).filename());
  EXPECT_NE(std::string(resume["detail"].GetString()).find("torn"), std::string::npos);
  VerifyReport rep = verify_files(files);
  EXPECT_TRUE(rep.ok) << (rep.error ? to_string(*rep.error) : "");
  ASSERT_EQ(rep.warnings.size(), 1u);
  EXPECT_NE(rep.warnings[0].message.find("torn last record (crash?)"), std::string::npos);
}

TEST(AuditLog, RotationKeepsTheChainAcrossFiles) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  {
    AuditLog log(opts(path));
    ASSERT_TRUE(log.append_sync(record("one")));
    ASSERT_TRUE(log.rotate_sync());
    ASSERT_TRUE(log.append_sync(record("two")));
    EXPECT_EQ(log.stats().rotations, 1u);
  }
  auto files = list_audit_files(path);
  ASSERT_EQ(files.size(), 2u);
  auto old_lines = lines_of(slurp(files[0]));
  auto new_lines = lines_of(slurp(files[1]));
  ASSERT_EQ(old_lines.size(), 1u);
  ASSERT_EQ(new_lines.size(), 2u);
  auto head = parse(new_lines[0]);
  EXPECT_STREQ(head["type"].GetString(), "rotate");
  EXPECT_EQ(std::string(head["prev"].GetString()), sha256_hex(old_lines[0]));
  EXPECT_EQ(std::string(head["rotated_from"].GetString()), fs::path(files[0]).filename());

  VerifyReport both = verify_files(files);
  EXPECT_TRUE(both.ok) << (both.error ? to_string(*both.error) : "");
  EXPECT_TRUE(both.warnings.empty());
  // Only the second file: the chain start is outside what was given. Whole, with a warning;
  // an error when the caller insists on the genesis record.
  VerifyReport second = verify_files({files[1]});
  EXPECT_TRUE(second.ok);
  ASSERT_EQ(second.warnings.size(), 1u);
  EXPECT_NE(second.warnings[0].message.find("chain start unknown"), std::string::npos);
  EXPECT_NE(second.warnings[0].message.find(fs::path(files[0]).filename().string()),
            std::string::npos);
  EXPECT_FALSE(verify_files({files[1]}, true).ok);
  // Wrong order is caught.
  EXPECT_FALSE(verify_files({files[1], files[0]}).ok);
}

TEST(AuditLog, RotatesBySizeAndRestartsFromTheNewestFile) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  auto o = opts(path);
  o.rotate_bytes = 4096;
  {
    AuditLog log(o);
    for (int i = 0; i < 60; ++i) ASSERT_TRUE(log.append_sync(record(std::string(150, 'x'))));
  }
  auto files = list_audit_files(path);
  EXPECT_GE(files.size(), 3u);
  for (const auto& f : files) EXPECT_LE(fs::file_size(f), 4096u + 400u) << f;
  VerifyReport rep = verify_files(files);
  EXPECT_TRUE(rep.ok) << (rep.error ? to_string(*rep.error) : "");

  // The current file is removed by an operator's script (empty): a restart links to the
  // newest rotated file.
  fs::rename(path, dir.file("moved.jsonl"));
  {
    AuditLog log(opts(path));
    ASSERT_TRUE(log.append_sync(record("after")));
  }
  auto first = parse(lines_of(slurp(path))[0]);
  EXPECT_EQ(std::string(first["rotated_from"].GetString()),
            fs::path(files[files.size() - 2]).filename().string());
}

TEST(AuditLog, GroupCommitEightThreads) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 1000;
  std::atomic<int> durable{0};
  std::atomic<int> failed{0};
  AuditLog::Stats stats;
  {
    AuditLog log(opts(path));
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          // Half wait for each record (like a session), half pipeline them.
          if (t % 2 == 0) {
            (log.append_sync(record("t" + std::to_string(t))) ? durable : failed)++;
          } else {
            log.append(record("t" + std::to_string(t)),
                       [&](bool ok) { (ok ? durable : failed)++; });
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    while (durable + failed < kThreads * kPerThread) std::this_thread::yield();
    stats = log.stats();
  }
  EXPECT_EQ(durable.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(stats.records, static_cast<std::uint64_t>(kThreads * kPerThread));
  EXPECT_LT(stats.batches, stats.records);  // records shared fsyncs
  VerifyReport rep = verify_files({path});
  EXPECT_TRUE(rep.ok) << (rep.error ? to_string(*rep.error) : "");
  EXPECT_EQ(rep.records, static_cast<std::uint64_t>(kThreads * kPerThread));
}

TEST(AuditLog, DestructorAnswersEveryPendingRecord) {
  TempDir dir;
  std::atomic<int> answered{0};
  {
    AuditLog log(opts(dir.file("audit.jsonl")));
    for (int i = 0; i < 200; ++i) log.append(record("x"), [&](bool) { ++answered; });
  }
  EXPECT_EQ(answered.load(), 200);
}

TEST(AuditLog, NonObjectRecordIsRefused) {
  TempDir dir;
  AuditLog log(opts(dir.file("audit.jsonl")));
  EXPECT_FALSE(log.append_sync("not json"));
  EXPECT_TRUE(log.healthy());
}

// Runs `body` in a forked child (so RLIMIT_FSIZE and SIGXFSZ stay there); the child's exit
// status carries the first failed check's line number.
#define CHILD_CHECK(cond)                   \
  do {                                      \
    if (!(cond)) _exit(__LINE__ % 250 + 1); \
  } while (0)

template <typename Body>
void run_in_child(Body body) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child died, status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "a check failed in the child (line code " << WEXITSTATUS(status) << ")";
}

bool wait_for(const std::function<bool()>& pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(AuditLog, FailsClosedOnAFullDiskAndRecovers) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  run_in_child([&] {
    std::signal(SIGXFSZ, SIG_IGN);
    AuditLog log(opts(path));
    CHILD_CHECK(log.append_sync(record("before")));
    const auto good_size = fs::file_size(path);
    // "Disk full": the file may not grow past a few bytes more than it has.
    rlimit lim{};
    ::getrlimit(RLIMIT_FSIZE, &lim);
    rlimit small = lim;
    small.rlim_cur = good_size + 50;
    CHILD_CHECK(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    CHILD_CHECK(!log.append_sync(record(std::string(500, 'y'))));  // partial write, refused
    CHILD_CHECK(!log.healthy());
    CHILD_CHECK(fs::file_size(path) == good_size);  // partial bytes cut away
    CHILD_CHECK(!log.append_sync(record("while full")));
    CHILD_CHECK(log.stats().failed >= 2);
    // The disk has room again: the writer recovers by itself.
    CHILD_CHECK(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
    CHILD_CHECK(wait_for([&] { return log.healthy(); }));
    CHILD_CHECK(log.append_sync(record("after")));
  });
  auto lines = lines_of(slurp(path));
  ASSERT_EQ(lines.size(), 3u);
  auto resume = parse(lines[1]);
  EXPECT_STREQ(resume["type"].GetString(), "chain_resume");
  EXPECT_NE(std::string(resume["detail"].GetString()).find("File too large"), std::string::npos)
      << resume["detail"].GetString();
  EXPECT_STREQ(parse(lines[2])["statement"].GetString(), "after");
  EXPECT_EQ(slurp(path).find("while full"), std::string::npos);
  VerifyReport rep = verify_files({path});
  EXPECT_TRUE(rep.ok) << (rep.error ? to_string(*rep.error) : "");
}

// Waits for AuditLog::sync() from a test thread.
bool sync_now(AuditLog& log, std::uint64_t since, std::uint64_t through) {
  std::promise<bool> p;
  auto f = p.get_future();
  log.sync(since, through, [&p](bool ok) { p.set_value(ok); });
  return f.get();
}

TEST(AuditLog, DeferredRecordsShareOneSyncAndVerify) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  AuditLog::Stats stats;
  {
    AuditLog log(opts(path, kNoLazySync));
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    for (int i = 0; i < 100; ++i) {
      last = log.append_deferred(record("deferred " + std::to_string(i)));
      if (first == 0) first = last;
    }
    EXPECT_GT(last, first);
    EXPECT_TRUE(sync_now(log, first, last));
    // Now covered: answered without waiting for the writer.
    ASSERT_TRUE(log.synced(first, last).has_value());
    EXPECT_TRUE(*log.synced(first, last));
    stats = log.stats();
  }
  EXPECT_EQ(stats.records, 100u);
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_LE(stats.syncs, 2u) << "100 deferred records should need one sync, not one each";
  auto lines = lines_of(slurp(path));
  ASSERT_EQ(lines.size(), 100u);
  EXPECT_STREQ(parse(lines[99])["statement"].GetString(), "deferred 99");
  VerifyReport rep = verify_files({path});
  EXPECT_TRUE(rep.ok) << (rep.error ? to_string(*rep.error) : "");
}

TEST(AuditLog, DeferredRecordIsWrittenAndSyncedWithinLazySync) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  AuditLog log(opts(path, std::chrono::milliseconds(30)));
  const std::uint64_t t = log.append_deferred(record("nobody waits"));
  // No sync() and no later record: the writer gets it to disk on its own.
  ASSERT_TRUE(wait_for([&] { return log.synced(t, t).has_value(); }));
  EXPECT_TRUE(*log.synced(t, t));
  EXPECT_GE(log.stats().syncs, 1u);
  EXPECT_NE(slurp(path).find("nobody waits"), std::string::npos);
}

TEST(AuditLog, DurableAppendCoversEarlierDeferredRecords) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  AuditLog log(opts(path, kNoLazySync));
  const std::uint64_t t = log.append_deferred(record("in a transaction"));
  ASSERT_TRUE(log.append_sync(record("write-ahead, another session")));
  // The other session's fsync covered it: COMMIT needs no handoff to the writer.
  ASSERT_TRUE(log.synced(t, t).has_value());
  EXPECT_TRUE(*log.synced(t, t));
}

TEST(AuditLog, InvalidDeferredRecordFailsItsSync) {
  TempDir dir;
  AuditLog log(opts(dir.file("audit.jsonl")));
  const std::uint64_t bad = log.append_deferred("not json");
  const std::uint64_t good = log.append_deferred(record("fine"));
  EXPECT_FALSE(sync_now(log, bad, good));
  // A transaction that started after the failure is not held responsible for it.
  EXPECT_TRUE(sync_now(log, good, good));
}

TEST(AuditLog, DeferredRecordsOnAFullDiskFailTheirSyncAndRecover) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  run_in_child([&] {
    std::signal(SIGXFSZ, SIG_IGN);
    AuditLog log(opts(path, kNoLazySync));
    CHILD_CHECK(log.append_sync(record("before")));
    rlimit lim{};
    ::getrlimit(RLIMIT_FSIZE, &lim);
    rlimit small = lim;
    small.rlim_cur = fs::file_size(path) + 50;
    CHILD_CHECK(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    // A transaction's records while the disk fills: COMMIT's sync must say no.
    const std::uint64_t a = log.append_deferred(record(std::string(500, 'a')));
    const std::uint64_t b = log.append_deferred(record("second"));
    CHILD_CHECK(!sync_now(log, a, b));
    CHILD_CHECK(log.synced(a, b).has_value() && !*log.synced(a, b));
    CHILD_CHECK(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
    CHILD_CHECK(wait_for([&] { return log.healthy(); }));
    const std::uint64_t c = log.append_deferred(record("next transaction"));
    CHILD_CHECK(sync_now(log, c, c));
  });
  EXPECT_EQ(slurp(path).find("second"), std::string::npos);
  EXPECT_NE(slurp(path).find("next transaction"), std::string::npos);
  VerifyReport rep = verify_files({path});
  EXPECT_TRUE(rep.ok) << (rep.error ? to_string(*rep.error) : "");
}

TEST(AuditLog, DevFullFailsClosed) {
  AuditLog::Options o = opts("/dev/full");
  AuditLog log(o);
  EXPECT_FALSE(log.append_sync(record("x")));
  EXPECT_FALSE(log.healthy());
  EXPECT_FALSE(log.append_sync(record("y")));
}

TEST(AuditLog, RemovedFileIsNoticedAndRecreated) {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  AuditLog log(opts(path));
  ASSERT_TRUE(log.append_sync(record("one")));
  fs::remove(path);
  // The record went to an unlinked inode: not durable anywhere anyone can read.
  EXPECT_FALSE(log.append_sync(record("lost")));
  EXPECT_FALSE(log.healthy());
  ASSERT_TRUE(wait_for([&] { return log.healthy(); }));
  ASSERT_TRUE(log.append_sync(record("two")));
  auto lines = lines_of(slurp(path));
  ASSERT_EQ(lines.size(), 2u);
  auto resume = parse(lines[0]);
  EXPECT_STREQ(resume["type"].GetString(), "chain_resume");
  EXPECT_NE(std::string(resume["detail"].GetString()).find("removed"), std::string::npos);
  // The deleted record (seq 1) is missing: the chain says so.
  VerifyReport rep = verify_files({path});
  EXPECT_FALSE(rep.ok);
}

TEST(AuditLog, UnwritableDirectoryAtStartupThrows) {
  EXPECT_THROW(AuditLog log(opts("/nonexistent-dir/audit.jsonl")), AuditError);
}

}  // namespace
}  // namespace pgmoat::audit
