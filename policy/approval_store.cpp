#include "policy/approval_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "common/toml_reader.h"
#include "policy/token.h"

namespace pgmoat::policy {
namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

// Closes the descriptor (and so drops its flock) on every path out.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports whether close succeeded (it can report a delayed write error).
  bool close() {
    int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

bool lock(int fd, int how) {
  while (::flock(fd, how) != 0) {
    if (errno != EINTR) return false;
  }
  return true;
}

// One use per line; a torn last line (crash mid-write) counts too, so a crash can only ever
// lose a use, never grant an extra one. Returns -1 on a read error.
std::int64_t count_uses(int fd) {
  std::array<char, 4096> buf{};
  std::int64_t lines = 0;
  char last = '\n';
  off_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    auto len = static_cast<std::size_t>(n);
    for (std::size_t i = 0; i < len; ++i) {
      if (buf[i] == '\n') ++lines;
    }
    last = buf[len - 1];
    offset += n;
  }
  return last == '\n' ? lines : lines + 1;
}

std::string resolve(const cfg::Table& t, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_relative()) p = std::filesystem::path(t.file()).parent_path() / p;
  return p.string();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

bool valid_token_id(std::string_view id) {
  if (id.size() != 16) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

ApprovalSettings load_approval_settings(cfg::Table& root) {
  ApprovalSettings s;
  auto t = root.get_table("approvals");
  if (!t) return s;
  if (auto dir = t->get_string("state_dir")) {
    if (dir->empty()) t->fail("state_dir", "'approvals.state_dir' must not be empty");
    s.state_dir = resolve(*t, *dir);
  }
  if (auto list = t->get_string("revocation_list")) {
    if (list->empty()) t->fail("revocation_list", "'approvals.revocation_list' must not be empty");
    s.revocation_list = resolve(*t, *list);
  }
  t->finish();
  return s;
}

// ---- RevocationList -------------------------------------------------------------------------

RevocationList::RevocationList(std::string path) : path_(std::move(path)) {
  if (std::string err = reload(); !err.empty()) throw std::runtime_error(err);
}

std::string RevocationList::reload() {
  std::ifstream in(path_);
  if (!in) return "cannot read revocation list '" + path_ + "': " + errno_text(errno);
  std::set<std::string, std::less<>> ids;
  std::string line;
  while (std::getline(in, line)) {
    std::string_view s(line);
    if (auto hash = s.find('#'); hash != std::string_view::npos) s = s.substr(0, hash);
    s = trim(s);
    if (s.empty()) continue;
    // A pasted whole token revokes that token's id.
    if (looks_like_token(s)) {
      auto decoded = decode_unverified(s);
      if (decoded.claims) ids.insert(decoded.claims->id);
    }
    ids.emplace(s);
  }
  if (in.bad()) return "cannot read revocation list '" + path_ + "': " + errno_text(errno);
  std::unique_lock lock(mutex_);
  ids_ = std::move(ids);
  return {};
}

bool RevocationList::is_revoked(std::string_view token_id) const {
  std::shared_lock lock(mutex_);
  return ids_.find(token_id) != ids_.end();
}

std::size_t RevocationList::size() const {
  std::shared_lock lock(mutex_);
  return ids_.size();
}

void RevocationList::add(std::string token_id) {
  std::unique_lock lock(mutex_);
  ids_.insert(std::move(token_id));
}

// ---- ApprovalStore --------------------------------------------------------------------------

ApprovalStore::ApprovalStore(std::string dir) : dir_(std::move(dir)) {
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    throw std::runtime_error("cannot create approval state directory '" + dir_ +
                             "': " + errno_text(errno));
  }
  struct stat st {};
  if (::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw std::runtime_error("approval state directory '" + dir_ + "' is not a directory");
  }
}

std::string ApprovalStore::file_for(std::string_view token_id) const {
  return dir_ + "/" + std::string(token_id) + ".uses";
}

bool ApprovalStore::try_consume(std::string_view token_id, std::optional<std::int64_t> max_uses,
                                std::string* error) {
  auto fail = [&](std::string message) {
    if (error != nullptr) *error = std::move(message);
    return false;
  };
  if (error != nullptr) error->clear();
  if (!valid_token_id(token_id)) return fail("invalid token id '" + std::string(token_id) + "'");
  if (max_uses && *max_uses <= 0) return false;

  // The mutex orders sessions of this process; flock orders processes sharing the directory.
  std::lock_guard guard(mutex_);
  std::string path = file_for(token_id);
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (fd.get() < 0) return fail("cannot open '" + path + "': " + errno_text(errno));
  if (!lock(fd.get(), LOCK_EX)) return fail("cannot lock '" + path + "': " + errno_text(errno));
  std::int64_t used = count_uses(fd.get());
  if (used < 0) return fail("cannot read '" + path + "': " + errno_text(errno));
  if (max_uses && used >= *max_uses) return false;

  std::string line = std::to_string(std::time(nullptr)) + " " + std::to_string(::getpid()) + "\n";
  std::size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd.get(), line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("cannot record use in '" + path + "': " + errno_text(errno));
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd.get()) != 0) return fail("cannot sync '" + path + "': " + errno_text(errno));
  if (used == 0) {
    // First use: the file is new, so make its directory entry durable too.
    Fd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0 || ::fsync(dir.get()) != 0) {
      return fail("cannot sync directory '" + dir_ + "': " + errno_text(errno));
    }
  }
  if (!fd.close()) return fail("cannot close '" + path + "': " + errno_text(errno));
  return true;
}

std::int64_t ApprovalStore::uses(std::string_view token_id) const {
  if (!valid_token_id(token_id)) {
    throw std::invalid_argument("invalid token id '" + std::string(token_id) + "'");
  }
  std::string path = file_for(token_id);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return 0;
    throw std::runtime_error("cannot open '" + path + "': " + errno_text(errno));
  }
  if (!lock(fd.get(), LOCK_SH)) {
    throw std::runtime_error("cannot lock '" + path + "': " + errno_text(errno));
  }
  std::int64_t n = count_uses(fd.get());
  if (n < 0) throw std::runtime_error("cannot read '" + path + "': " + errno_text(errno));
  return n;
}

}  // namespace pgmoat::policy
