#include "audit/audit_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>

#include <spdlog/spdlog.h>

#include "audit/chain.h"
#include "audit/files.h"
#include "audit/record.h"

namespace pgmoat::audit {
namespace {

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

std::string basename_of(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

void call(const AuditLog::Done& done, bool ok) {
  if (!done) return;
  try {
    done(ok);
  } catch (const std::exception& e) {
    spdlog::error("audit: a done() callback threw: {}", e.what());
  } catch (...) {
    spdlog::error("audit: a done() callback threw");
  }
}

}  // namespace

AuditLog::Options AuditLog::options_from(const Settings& settings) {
  Options o;
  o.path = settings.path;
  o.fsync = settings.durability == Settings::Durability::kFsync;
  o.rotate_bytes = settings.rotate_bytes;
  return o;
}

AuditLog::AuditLog(Options options) : options_(std::move(options)) {
  if (options_.path.empty()) throw AuditError("audit: no audit file path configured");
  try {
    resume_chain_at_startup();
  } catch (const AuditError&) {
    if (fd_ >= 0) ::close(fd_);
    throw;
  } catch (const std::exception& e) {
    if (fd_ >= 0) ::close(fd_);
    throw AuditError(std::string("audit: ") + e.what());
  }
  writer_ = std::thread([this] { run(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (fd_ >= 0) ::close(fd_);
}

std::uint64_t AuditLog::open_current() {
  const int fd = ::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) throw AuditError("audit: cannot open " + options_.path + ": " + std::strerror(errno));
  // One writer per file: a second pgmoat on the same path would fork the chain.
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      throw AuditError("audit: " + options_.path + " is in use by another pgmoat process");
    }
    throw AuditError("audit: cannot lock " + options_.path + ": " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw AuditError("audit: cannot stat " + options_.path + ": " + std::strerror(err));
  }
  fd_ = fd;
  dev_ = static_cast<std::uint64_t>(st.st_dev);
  ino_ = static_cast<std::uint64_t>(st.st_ino);
  return S_ISREG(st.st_mode) ? static_cast<std::uint64_t>(st.st_size) : 0;
}

void AuditLog::chain_from_newest_sibling() {
  std::vector<std::string> files = list_audit_files(options_.path);
  std::erase(files, options_.path);
  last_hash_ = std::string(kGenesisPrev);
  next_seq_ = 1;
  rotated_from_.clear();
  // Newest first; a file that is only a torn line has no record to link to.
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    Tail tail = read_tail(*it);
    if (!tail.last_line) continue;
    auto fields = parse_chain_fields(*tail.last_line);
    if (!fields) {
      throw AuditError("audit: " + *it +
                       " does not end with an audit record; cannot continue its chain");
    }
    next_seq_ = fields->seq + 1;
    last_hash_ = sha256_hex(*tail.last_line);
    rotated_from_ = basename_of(*it);
    return;
  }
}

void AuditLog::resume_chain_at_startup() {
  struct stat st {};
  const bool regular = ::stat(options_.path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  Tail tail;
  if (regular) tail = read_tail(options_.path);
  if (tail.size == 0) {
    chain_from_newest_sibling();
    file_size_ = open_current();
    return;
  }
  if (tail.last_line) {
    auto fields = parse_chain_fields(*tail.last_line);
    if (!fields) {
      throw AuditError("audit: " + options_.path +
                       " does not end with an audit record (is audit.path the right file?)");
    }
    next_seq_ = fields->seq + 1;
    last_hash_ = sha256_hex(*tail.last_line);
  } else {
    chain_from_newest_sibling();
  }
  if (tail.torn_bytes == 0) {
    file_size_ = open_current();
    if (file_size_ != tail.size)
      throw AuditError("audit: " + options_.path + " changed while opening");
    return;
  }
  // A torn last line: a crash mid-write, or someone cut the file. Never destroy it: move the
  // whole file aside, start a new file and say so in its first record.
  const std::string aside = rotated_name(options_.path, now_us());
  if (::rename(options_.path.c_str(), aside.c_str()) != 0) {
    throw AuditError("audit: cannot move torn " + options_.path +
                     " aside: " + std::strerror(errno));
  }
  spdlog::warn(
      "audit: {} ended with a torn record ({} bytes); moved it to {} and continuing the "
      "chain from seq {}",
      options_.path, tail.torn_bytes, aside, next_seq_ - 1);
  rotated_from_ = basename_of(aside);
  file_size_ = open_current();
  sync_dir();
  const std::string detail =
      "torn last record found at startup: " + std::to_string(tail.torn_bytes) +
      " bytes after the last complete " + "record (seq " + std::to_string(next_seq_ - 1) + ") in " +
      basename_of(aside) + "; chain resumed from that record";
  if (!write_system_record("chain_resume", detail)) {
    throw AuditError("audit: cannot write to " + options_.path + ": " + first_error_);
  }
}

void AuditLog::append(std::string record, Done done) {
  if (record.size() < 2 || record.front() != '{' || record.back() != '}') {
    spdlog::error("audit: refusing a record that is not a JSON object");
    call(done, false);
    return;
  }
  {
    std::unique_lock lk(mu_);
    if (stopping_) {
      lk.unlock();
      call(done, false);
      return;
    }
    queue_.push_back(Pending{std::move(record), std::move(done), next_ticket_++});
    ++waited_in_queue_;
  }
  cv_.notify_one();
}

std::uint64_t AuditLog::append_deferred(std::string record) {
  const bool valid = record.size() >= 2 && record.front() == '{' && record.back() == '}';
  if (!valid) spdlog::error("audit: refusing a record that is not a JSON object");
  std::uint64_t ticket = 0;
  bool wake = false;
  {
    std::unique_lock lk(mu_);
    ticket = next_ticket_++;
    if (!valid || stopping_) {
      // Never written: counted as failed, so a sync() covering it answers false.
      mark_failed_through(ticket);
      ++stats_.failed;
      return ticket;
    }
    // The writer is not woken for a deferred record (it looks at least every half lazy_sync
    // and then waits until the first one is due), only when enough have piled up: a
    // transaction's records cost no handoff until its COMMIT asks for them.
    if (queue_.empty()) queued_since_ = std::chrono::steady_clock::now();
    wake = queue_.size() + 1 >= kDeferredWake || options_.lazy_sync.count() <= 0;
    queue_.push_back(Pending{std::move(record), {}, ticket});
  }
  if (wake) cv_.notify_one();
  return ticket;
}

void AuditLog::sync(std::uint64_t since, std::uint64_t through, Done done) {
  {
    std::unique_lock lk(mu_);
    if (!stopping_) {
      sync_waiters_.push_back(SyncWaiter{since, through, std::move(done)});
      lk.unlock();
      cv_.notify_one();
      return;
    }
  }
  // Stopping: the writer's last round has synced everything it will.
  call(done, synced(since, through).value_or(false));
}

std::optional<bool> AuditLog::synced(std::uint64_t since, std::uint64_t through) const {
  since = std::max<std::uint64_t>(since, 1);
  if (failed_.load(std::memory_order_acquire) >= since) return false;
  if (resolved_.load(std::memory_order_acquire) < through) return std::nullopt;
  return failed_.load(std::memory_order_acquire) < since;
}

bool AuditLog::append_sync(std::string record) {
  std::promise<bool> p;
  auto f = p.get_future();
  append(std::move(record), [&p](bool ok) { p.set_value(ok); });
  return f.get();
}

void AuditLog::rotate(std::function<void(bool ok)> done) {
  {
    std::unique_lock lk(mu_);
    if (stopping_) {
      lk.unlock();
      if (done) done(false);
      return;
    }
    rotate_requests_.push_back(done ? std::move(done) : [](bool) {});
  }
  cv_.notify_one();
}

bool AuditLog::rotate_sync() {
  std::promise<bool> p;
  auto f = p.get_future();
  rotate([&p](bool ok) { p.set_value(ok); });
  return f.get();
}

AuditLog::Stats AuditLog::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

void AuditLog::run() {
  using Clock = std::chrono::steady_clock;
  for (;;) {
    std::vector<Pending> batch;
    std::vector<std::function<void(bool)>> rotations;
    std::vector<SyncWaiter> waiters;
    bool stop = false;
    std::uint64_t issued = 0;
    Clock::time_point batch_since;
    {
      std::unique_lock lk(mu_);
      wait_for_work(lk);
      batch_since = queued_since_;
      batch.swap(queue_);
      rotations.swap(rotate_requests_);
      waiters.swap(sync_waiters_);
      stop = stopping_;
      issued = next_ticket_ - 1;
      waited_in_queue_ = 0;
    }
    if (!healthy() && Clock::now() - last_retry_ >= options_.retry_interval) {
      try_recover();
    }
    for (auto& done : rotations) {
      const bool ok = healthy() && do_rotate("rotate requested");
      done(ok);
    }
    // Sync when somebody waits, and for deferred records once they have waited long enough:
    // written ones (dirty_since_) or queued ones (batch_since), so that a deferred record is
    // on disk a lazy_sync after it was queued, not a lazy_sync after it was written.
    const auto now = Clock::now();
    bool sync = stop || !waiters.empty() || (dirty_ && now >= dirty_since_ + options_.lazy_sync) ||
                (!batch.empty() && now >= batch_since + options_.lazy_sync);
    for (const auto& p : batch) sync = sync || static_cast<bool>(p.done);
    if (!batch.empty()) {
      if (healthy()) {
        write_batch(batch, sync);
      } else {
        fail(batch, 0, batch.size());
      }
    } else if (sync && dirty_ && healthy()) {
      sync_written();
    }
    publish(issued, waiters);
    if (stop) {
      std::lock_guard lk(mu_);
      if (queue_.empty() && rotate_requests_.empty() && sync_waiters_.empty()) break;
    }
  }
}

void AuditLog::wait_for_work(std::unique_lock<std::mutex>& lk) {
  auto urgent = [this] {
    return stopping_ || waited_in_queue_ > 0 || !rotate_requests_.empty() ||
           !sync_waiters_.empty() || queue_.size() >= kDeferredWake;
  };
  if (!healthy()) {
    cv_.wait_for(lk, options_.retry_interval, [&] { return urgent() || !queue_.empty(); });
    return;
  }
  while (!urgent()) {
    // Deferred records, queued or written without a sync, are due a lazy_sync after the first.
    std::optional<std::chrono::steady_clock::time_point> due;
    if (dirty_) due = dirty_since_ + options_.lazy_sync;
    if (!queue_.empty()) {
      const auto q = queued_since_ + options_.lazy_sync;
      due = due ? std::min(*due, q) : q;
    }
    if (!due) {
      // Deferred records do not wake the writer: look again well before one could be due.
      cv_.wait_for(lk, std::max(options_.lazy_sync / 2, std::chrono::milliseconds(1)));
    } else if (std::chrono::steady_clock::now() >= *due ||
               cv_.wait_until(lk, *due) == std::cv_status::timeout) {
      return;
    }
  }
}

void AuditLog::publish(std::uint64_t issued, std::vector<SyncWaiter>& waiters) {
  // Written but not synced records are not resolved yet; everything else up to `issued` was
  // written and synced, or failed.
  if (!dirty_) resolved_.store(issued, std::memory_order_release);
  std::vector<SyncWaiter> later;
  for (auto& w : waiters) {
    if (auto ok = synced(w.since, w.through)) {
      call(w.done, *ok);
    } else {
      later.push_back(std::move(w));
    }
  }
  if (later.empty()) return;
  std::lock_guard lk(mu_);
  for (auto& w : later) sync_waiters_.push_back(std::move(w));
}

void AuditLog::mark_failed_through(std::uint64_t ticket) {
  std::uint64_t f = failed_.load(std::memory_order_relaxed);
  while (f < ticket && !failed_.compare_exchange_weak(f, ticket, std::memory_order_acq_rel)) {
  }
}

bool AuditLog::sync_written() {
  if (!dirty_) return true;
  if (::fdatasync(fd_) != 0) {
    mark_unhealthy(errno_text("fdatasync"));
    return false;
  }
  dirty_ = false;
  std::lock_guard lk(mu_);
  stats_.syncs += 1;
  return true;
}

void AuditLog::write_batch(std::vector<Pending>& batch, bool sync) {
  std::size_t first = 0;
  std::uint64_t pending = 0;  // estimated bytes of batch[first, i)
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const std::uint64_t estimate = batch[i].record.size() + 100 + rotated_from_.size();
    if (options_.rotate_bytes != 0 && file_size_ + pending > 0 &&
        file_size_ + pending + estimate > options_.rotate_bytes) {
      if (i > first && !commit(batch, first, i, true)) {
        fail(batch, i, batch.size());
        return;
      }
      first = i;
      pending = 0;
      do_rotate("size limit reached");  // on failure keep writing to the current file
      if (!healthy()) {
        fail(batch, i, batch.size());
        return;
      }
    }
    pending += estimate;
  }
  if (!commit(batch, first, batch.size(), sync)) return;
}

bool AuditLog::commit(std::vector<Pending>& batch, std::size_t first, std::size_t last, bool sync) {
  std::string buf;
  std::size_t total = 0;
  for (std::size_t k = first; k < last; ++k) total += batch[k].record.size() + 100;
  buf.reserve(total + rotated_from_.size());
  std::uint64_t seq = next_seq_;
  std::string hash = last_hash_;
  std::string_view rotated_from = rotated_from_;
  for (std::size_t k = first; k < last; ++k) {
    const std::size_t start = buf.size();
    append_chained_line(buf, seq, hash, rotated_from, batch[k].record);
    hash = sha256_hex(std::string_view(buf).substr(start));
    buf += '\n';
    ++seq;
    rotated_from = {};
  }
  std::string error;
  if (fd_ < 0) {
    error = "audit file is not open";
  } else if (!write_all(buf, error)) {
    // error set by write_all
  } else if (options_.fsync && sync && ::fdatasync(fd_) != 0) {
    error = errno_text("fdatasync");
  } else {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      error = errno_text("fstat");
    } else if (st.st_nlink == 0) {
      // Someone removed the file: these records went to an inode nobody can read.
      error = "the audit file was removed while pgmoat had it open";
    }
  }
  if (!error.empty()) {
    mark_unhealthy(error);
    fail(batch, first, last);
    return false;
  }
  if (options_.fsync) {
    if (sync) {
      dirty_ = false;
    } else if (!dirty_) {
      dirty_ = true;
      dirty_since_ = std::chrono::steady_clock::now();
    }
  }
  file_size_ += buf.size();
  next_seq_ = seq;
  last_hash_ = std::move(hash);
  rotated_from_.clear();
  {
    std::lock_guard lk(mu_);
    stats_.records += last - first;
    stats_.batches += 1;
    if (options_.fsync && sync) stats_.syncs += 1;
  }
  if (!dirty_) {
    // Everything up to this batch's last ticket is on disk (earlier tickets were written by
    // earlier batches, covered by this sync, or failed). Publish that before any done() runs,
    // so a caller woken by its durable record sees the deferred records it covered as synced.
    std::uint64_t top = 0;
    for (std::size_t k = first; k < last; ++k) top = std::max(top, batch[k].ticket);
    if (top > resolved_.load(std::memory_order_relaxed)) {
      resolved_.store(top, std::memory_order_release);
    }
  }
  for (std::size_t k = first; k < last; ++k) call(batch[k].done, true);
  return true;
}

bool AuditLog::write_all(const std::string& bytes, std::string& error) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno_text("write");
      return false;
    }
    if (n == 0) {
      error = "write: wrote nothing";
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

void AuditLog::fail(std::vector<Pending>& batch, std::size_t first, std::size_t last) {
  std::uint64_t callers = 0;  // the writer's own records (ticket 0) are not counted
  for (std::size_t k = first; k < last; ++k) {
    if (batch[k].ticket != 0) ++callers;
    mark_failed_through(batch[k].ticket);
  }
  {
    std::lock_guard lk(mu_);
    stats_.failed += callers;
  }
  refused_while_unhealthy_ += callers;
  for (std::size_t k = first; k < last; ++k) call(batch[k].done, false);
}

void AuditLog::mark_unhealthy(const std::string& error) {
  // A record that failed is not on disk: cut any partial bytes so the file still ends at the
  // last good record and the chain continues from it.
  if (fd_ >= 0) {
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink > 0 &&
        static_cast<std::uint64_t>(st.st_size) != file_size_) {
      truncate_failed_ = ::ftruncate(fd_, static_cast<off_t>(file_size_)) != 0;
    }
  }
  if (healthy()) {
    spdlog::error(
        "audit: cannot write {}: {}. Audited statements are refused until it is writable again "
        "(retrying every {} ms)",
        options_.path, error, options_.retry_interval.count());
    first_error_ = error;
    refused_while_unhealthy_ = 0;
  }
  if (dirty_) {
    // Records written without a sync may not be on disk: every sync() covering them fails.
    std::uint64_t issued = 0;
    {
      std::lock_guard lk(mu_);
      issued = next_ticket_ - 1;
    }
    mark_failed_through(issued);
    dirty_ = false;
  }
  healthy_.store(false, std::memory_order_release);
  last_retry_ = std::chrono::steady_clock::now();
}

void AuditLog::try_recover() {
  last_retry_ = std::chrono::steady_clock::now();
  const std::uint64_t old_dev = dev_;
  const std::uint64_t old_ino = ino_;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  std::uint64_t size = 0;
  try {
    size = open_current();
  } catch (const AuditError& e) {
    spdlog::debug("{}", e.what());
    return;
  }
  std::string note;
  if (dev_ != old_dev || ino_ != old_ino) {
    note = "; the audit file was removed or replaced, continuing the chain in a new file";
    file_size_ = size;
  } else if (size > file_size_) {
    if (truncate_failed_ || ::ftruncate(fd_, static_cast<off_t>(file_size_)) != 0) {
      // The tail holds bytes of records that were refused and cannot be cut: keep them as
      // evidence in a file of their own and continue in a fresh one.
      if (!do_rotate("partial write could not be truncated")) return;
      note = "; a partial write could not be truncated, file rotated aside";
    }
    truncate_failed_ = false;
  } else if (size < file_size_) {
    note = "; the audit file shrank from " + std::to_string(file_size_) + " to " +
           std::to_string(size) + " bytes outside pgmoat";
    file_size_ = size;
  }
  const std::string detail = "recovered after audit write failure (" + first_error_ + "); " +
                             std::to_string(refused_while_unhealthy_) +
                             " records were refused meanwhile" + note;
  if (write_system_record("chain_resume", detail)) {
    healthy_.store(true, std::memory_order_release);
    spdlog::warn("audit: {} is writable again; {}", options_.path, detail);
    first_error_.clear();
  }
}

bool AuditLog::do_rotate(const char* why) {
  if (fd_ >= 0 && file_size_ == 0) return true;  // nothing to rotate
  if (!sync_written()) return false;  // the old file is complete on disk before it is renamed
  const std::string aside = rotated_name(options_.path, now_us());
  if (::rename(options_.path.c_str(), aside.c_str()) != 0) {
    spdlog::error("audit: cannot rotate {} to {}: {}", options_.path, aside, std::strerror(errno));
    return false;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  rotated_from_ = basename_of(aside);
  file_size_ = 0;
  {
    std::lock_guard lk(mu_);
    stats_.rotations += 1;
  }
  try {
    file_size_ = open_current();
  } catch (const AuditError& e) {
    mark_unhealthy(e.what());
    return false;
  }
  sync_dir();
  // The first record of the new file names the old one and links to its last record.
  return write_system_record("rotate", std::string(why) + "; previous file " + basename_of(aside));
}

bool AuditLog::write_system_record(const char* type, const std::string& detail) {
  Event ev;
  ev.type = *event_type_from_string(type);
  ev.detail = detail;
  std::vector<Pending> one;
  one.push_back(Pending{encode(Identity{}, ev), {}, 0});
  return commit(one, 0, 1, true);
}

void AuditLog::sync_dir() {
  if (!options_.fsync) return;
  std::filesystem::path dir = std::filesystem::path(options_.path).parent_path();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace pgmoat::audit
