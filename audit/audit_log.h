// The audit file writer: write-ahead, hash-chained, group-committed, fail-closed.
//
// Write-ahead use from a session:
//   log.append(encode(identity, intent), [session](bool durable) {
//     // runs on the writer thread: post back to the session's executor, then
//     // forward the statement only if `durable`, otherwise refuse it (fail closed).
//   });
// All records that are pending when the writer wakes up go out in one write() and one
// fdatasync(), so concurrent sessions share the cost of a sync.
//
// Records nobody waits for (outcomes, connection events, DML inside a transaction block)
// go through append_deferred(): they are written in order with the next batch but cost no
// fdatasync of their own. The next durable append or sync() covers them, and the writer
// syncs them by itself within `lazy_sync`. A session that pipelined records waits for them
// once, at COMMIT, with sync(since, through); `synced()` answers without a handoff when
// another session's sync already covered them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "audit/settings.h"

namespace pgmoat::audit {

class AuditError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class AuditLog {
 public:
  struct Options {
    std::string path;
    bool fsync = true;               // false: done(true) after write(), without fdatasync
    std::uint64_t rotate_bytes = 0;  // 0: no size rotation
    std::chrono::milliseconds retry_interval{1000};
    // Deferred records written but not yet synced are synced after at most this long.
    std::chrono::milliseconds lazy_sync{200};
  };
  using Done = std::function<void(bool durable)>;

  struct Stats {
    std::uint64_t records = 0;  // records made durable (or written, without fsync)
    std::uint64_t failed = 0;   // records answered with done(false)
    std::uint64_t batches = 0;  // write() rounds
    std::uint64_t syncs = 0;    // fdatasync() calls
    std::uint64_t rotations = 0;
  };

  // Opens `path` (creating it), locks it against a second writer and continues the chain
  // from its last complete record, or from the newest rotated sibling when it is empty. A torn
  // last line (crash mid-write) is never cut away: that file is renamed aside and the new
  // file starts with a chain_resume record. Throws AuditError when the file cannot be opened
  // or does not end with an audit record.
  explicit AuditLog(Options options);
  static Options options_from(const Settings& settings);
  // Drains pending records (done() is called for each), then stops the writer.
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // `record` is one JSON object from encode(). `done` runs exactly once, on the writer thread
  // (or on the caller's thread when the log is stopping): true once the record is on disk.
  void append(std::string record, Done done);
  // Blocks until the record is durable (true) or refused (false).
  bool append_sync(std::string record);

  // A record nobody waits for: written in order with the next batch, made durable by the
  // next sync. Returns its ticket (tickets increase in append order). A record refused at
  // once (not a JSON object, log stopping) still gets a ticket, counted as failed.
  std::uint64_t append_deferred(std::string record);
  // done(true), on the writer thread, once every record up to ticket `through` is on disk;
  // done(false) when any record with a ticket >= `since` could not be written. That may be
  // another session's record: when the disk fails mid-transaction, fail closed.
  void sync(std::uint64_t since, std::uint64_t through, Done done);
  // What sync(since, through) would answer at once, or nullopt when it would have to wait.
  std::optional<bool> synced(std::uint64_t since, std::uint64_t through) const;

  // Renames the current file to path.YYYYMMDDTHHMMSS.N and starts a new one whose first
  // record links back to it (call on SIGHUP). Asynchronous; `done(ok)` when finished.
  void rotate(std::function<void(bool ok)> done = {});
  bool rotate_sync();

  // False from a failed write until the writer has recovered (it retries every
  // retry_interval, reopening the file, and logs once when it fails and once when it recovers).
  bool healthy() const { return healthy_.load(std::memory_order_acquire); }
  Stats stats() const;
  const std::string& path() const { return options_.path; }

 private:
  struct Pending {
    std::string record;
    Done done;                 // empty for deferred records
    std::uint64_t ticket = 0;  // 0 for the writer's own records
  };
  struct SyncWaiter {
    std::uint64_t since = 0;
    std::uint64_t through = 0;
    Done done;
  };

  void run();
  // Returns (holding `lk`) when there is work: a record or sync somebody waits for, a
  // rotation, stopping, many deferred records, or deferred ones whose lazy_sync is due.
  void wait_for_work(std::unique_lock<std::mutex>& lk);
  void write_batch(std::vector<Pending>& batch, bool sync);
  // Writes chained lines for batch[first, last) in one write, then fdatasync() when `sync`.
  // Returns false on failure (state is left at the last good record).
  bool commit(std::vector<Pending>& batch, std::size_t first, std::size_t last, bool sync);
  // fdatasync() of records written without one; false (and unhealthy) on failure.
  bool sync_written();
  // Every ticket up to `ticket` failed (or may have): sync() waiters covering it get false.
  void mark_failed_through(std::uint64_t ticket);
  // After a writer round: which tickets are now on disk or failed; answers `waiters`.
  void publish(std::uint64_t issued, std::vector<SyncWaiter>& waiters);
  bool write_all(const std::string& bytes, std::string& error);
  void fail(std::vector<Pending>& batch, std::size_t first, std::size_t last);
  void try_recover();
  bool do_rotate(const char* why);
  bool write_system_record(const char* type, const std::string& detail);
  // Opens (creating) and locks `path` into fd_; returns its size. Throws AuditError.
  std::uint64_t open_current();
  void chain_from_newest_sibling();
  void mark_unhealthy(const std::string& error);
  void resume_chain_at_startup();
  void sync_dir();

  Options options_;
  // Writer-thread state.
  int fd_ = -1;
  std::uint64_t file_size_ = 0;  // offset after the last good record
  std::uint64_t dev_ = 0;
  std::uint64_t ino_ = 0;
  bool truncate_failed_ = false;  // partial bytes past file_size_ could not be cut away
  std::uint64_t next_seq_ = 1;
  std::string last_hash_;
  std::string rotated_from_;  // carried by the next record when it starts a new file
  std::string first_error_;
  std::uint64_t refused_while_unhealthy_ = 0;
  std::chrono::steady_clock::time_point last_retry_{};
  // Records written without an fdatasync since: `dirty_since_` is when the first was.
  bool dirty_ = false;
  std::chrono::steady_clock::time_point dirty_since_{};

  std::atomic<bool> healthy_{true};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> queue_;
  std::vector<std::function<void(bool)>> rotate_requests_;
  std::vector<SyncWaiter> sync_waiters_;
  static constexpr std::size_t kDeferredWake = 512;  // queued deferred records that wake the writer
  std::size_t waited_in_queue_ = 0;  // queued records with a done() (somebody waits)
  std::chrono::steady_clock::time_point queued_since_{};  // when queue_ became non-empty
  std::uint64_t next_ticket_ = 1;
  bool stopping_ = false;
  // Every record with a ticket <= resolved_ is on disk or failed; failed_ is the highest
  // ticket that failed (or may have: records written but not synced when a sync failed).
  std::atomic<std::uint64_t> resolved_{0};
  std::atomic<std::uint64_t> failed_{0};
  Stats stats_;
  std::thread writer_;
};

}  // namespace pgmoat::audit
