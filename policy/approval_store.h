// State around approval tokens that lives outside the token itself: how often each token was
// used (must survive a restart and be shared by every pgmoat process on the machine) and which
// tokens a person revoked before they expired.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>

namespace pgmoat::cfg {
class Table;
}

namespace pgmoat::policy {

// The `[approvals]` config table. Paths are resolved against the config file's directory.
//
//     [approvals]
//     state_dir = "/var/lib/pgmoat/approvals"   # use counts; required for tokens with max_uses
//     revocation_list = "/etc/pgmoat/revoked"     # one token id per line, '#' comments
struct ApprovalSettings {
  std::optional<std::string> state_dir;
  std::optional<std::string> revocation_list;
};

// A missing `[approvals]` table gives empty settings. Calls finish() on `[approvals]`.
ApprovalSettings load_approval_settings(cfg::Table& root);

// Revoked token ids, read from a file: one id per line, leading/trailing blanks ignored, text
// after '#' ignored. Thread-safe; reload() is meant for SIGHUP.
class RevocationList {
 public:
  RevocationList() = default;
  // Reads the file now; throws std::runtime_error naming the path when it cannot be read.
  explicit RevocationList(std::string path);

  // Re-reads the file. On failure keeps the previous list (nothing gets un-revoked by a file
  // that went missing) and returns the error; returns "" on success.
  std::string reload();
  bool is_revoked(std::string_view token_id) const;
  std::size_t size() const;
  const std::string& path() const { return path_; }

  // For tests and for callers that build the list in memory.
  void add(std::string token_id);

 private:
  std::string path_;
  mutable std::shared_mutex mutex_;
  std::set<std::string, std::less<>> ids_;
};

// Durable per-token use counts in a directory: one file per token, `<token_id>.uses`, one line
// per use ("<unix seconds> <pid>\n"), appended under flock(LOCK_EX) and fsync'ed before the use
// is granted. Safe with many sessions in one process (a mutex) and several processes sharing
// the directory (flock). A torn last line after a crash counts as a use (fail closed).
class ApprovalStore {
 public:
  // Creates the directory (mode 0700) when missing; throws std::runtime_error on failure.
  explicit ApprovalStore(std::string dir);

  // Records one use when fewer than `max_uses` were recorded (no limit when nullopt) and returns
  // true; returns false when used up or when the use could not be recorded durably (then
  // `error`, if given, says why). Token ids must be 16 lower-case hex chars.
  bool try_consume(std::string_view token_id, std::optional<std::int64_t> max_uses,
                   std::string* error = nullptr);
  // Uses recorded so far (0 for an unknown token). Throws std::runtime_error on I/O errors.
  std::int64_t uses(std::string_view token_id) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string file_for(std::string_view token_id) const;

  std::string dir_;
  std::mutex mutex_;
};

// True for 16 lower-case hex chars, the shape of a token id.
bool valid_token_id(std::string_view id);

}  // namespace pgmoat::policy
