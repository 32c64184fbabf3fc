#include "audit/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <tuple>

namespace pgmoat::audit {
namespace fs = std::filesystem;
namespace {

struct SortKey {
  std::string base;
  int current = 1;  // rotated files (0) come before the current file (1)
  std::string stamp;
  std::uint64_t n = 0;
  std::string name;
  bool operator<(const SortKey& o) const {
    return std::tie(base, current, stamp, n, name) <
           std::tie(o.base, o.current, o.stamp, o.n, o.name);
  }
};

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Splits "dir/audit.jsonl.20240501T120000.3" into base "dir/audit.jsonl", stamp, n.
SortKey sort_key(const std::string& full) {
  SortKey k;
  k.name = full;
  k.base = full;
  // A rotated file compressed later ("...T120000.3.gz") sorts where it was.
  const std::string file = full.ends_with(".gz") ? full.substr(0, full.size() - 3) : full;
  const std::size_t dot_n = file.rfind('.');
  if (dot_n == std::string::npos || dot_n < 16) return k;
  const std::string_view n = std::string_view(file).substr(dot_n + 1);
  const std::string_view stamp = std::string_view(file).substr(dot_n - 15, 15);
  if (file[dot_n - 16] != '.' || !all_digits(n) || n.size() > 18 || stamp[8] != 'T' ||
      !all_digits(stamp.substr(0, 8)) || !all_digits(stamp.substr(9))) {
    return k;
  }
  k.base = file.substr(0, dot_n - 16);
  k.current = 0;
  k.stamp = std::string(stamp);
  k.n = std::stoull(std::string(n));
  return k;
}

}  // namespace

std::string rotated_name(const std::string& path, std::int64_t ts_us) {
  const auto t = static_cast<std::time_t>(ts_us / 1'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
  for (unsigned n = 1;; ++n) {
    std::string name = path + "." + stamp + "." + std::to_string(n);
    struct stat st {};
    if (::lstat(name.c_str(), &st) != 0 && errno == ENOENT) return name;
  }
}

void sort_audit_files(std::vector<std::string>& files) {
  std::vector<std::pair<SortKey, std::string>> keyed;
  keyed.reserve(files.size());
  for (auto& f : files) keyed.emplace_back(sort_key(f), std::move(f));
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  files.clear();
  for (auto& [k, f] : keyed) files.push_back(std::move(f));
}

std::vector<std::string> list_audit_files(const std::string& path) {
  std::vector<std::string> out;
  fs::path p(path);
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string prefix = p.filename().string() + ".";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || !entry.is_regular_file(ec)) continue;
    std::string full = (p.parent_path() / name).string();
    if (sort_key(full).current == 0) out.push_back(std::move(full));
  }
  if (fs::exists(p, ec)) out.push_back(path);
  sort_audit_files(out);
  return out;
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& operands) {
  std::vector<std::string> out;
  for (const auto& op : operands) {
    std::error_code ec;
    if (fs::is_directory(op, ec)) {
      for (const auto& entry : fs::directory_iterator(op, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name[0] == '.' || !entry.is_regular_file(ec)) continue;
        out.push_back(entry.path().string());
      }
    } else if (fs::exists(op, ec)) {
      out.push_back(op);
    } else {
      throw std::runtime_error(op + ": no such file or directory");
    }
  }
  sort_audit_files(out);
  return out;
}

namespace {
// Rotated files may be compressed by logrotate or an operator: read them through gzip.
std::string read_gzip(const std::string& path) {
  std::string quoted = "'";
  for (char c : path) {
    if (c == '\'')
      quoted += "'\\''";
    else
      quoted += c;
  }
  quoted += "'";
  FILE* pipe = ::popen(("gzip -dc -- " + quoted + " 2>/dev/null").c_str(), "r");
  if (pipe == nullptr)
    throw std::runtime_error(path + ": cannot run gzip: " + std::strerror(errno));
  std::string out;
  char buf[65536];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  if (status != 0) throw std::runtime_error(path + ": not a readable gzip file");
  return out;
}
}  // namespace

std::string read_file(const std::string& path) {
  if (path.ends_with(".gz")) return read_gzip(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error(path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

Tail read_tail(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw std::runtime_error(path + ": " + std::strerror(errno));
  Tail tail;
  tail.size = static_cast<std::uint64_t>(st.st_size);
  if (!S_ISREG(st.st_mode) || tail.size == 0) return tail;

  // Read backwards in chunks, keeping everything read so far in `buf` (which holds the
  // bytes [pos, size)). Stop once we hold the last complete line and the '\n' before it.
  constexpr std::uint64_t kChunk = 64 * 1024;
  std::string buf;
  std::uint64_t pos = tail.size;
  std::optional<std::uint64_t> last_nl;  // offset of the last '\n'
  for (;;) {
    if (last_nl) {
      // Look for the '\n' that ends the line before the last complete one.
      const std::uint64_t end = *last_nl;  // line is [start, end)
      const std::string_view held(buf);
      const std::size_t rel_end = static_cast<std::size_t>(end - pos);
      const std::size_t prev_nl =
          rel_end == 0 ? std::string_view::npos : held.rfind('\n', rel_end - 1);
      if (prev_nl != std::string_view::npos || pos == 0) {
        const std::size_t start = prev_nl == std::string_view::npos ? 0 : prev_nl + 1;
        tail.last_line = std::string(held.substr(start, rel_end - start));
        tail.last_line_end = end + 1;
        tail.torn_bytes = tail.size - (end + 1);
        return tail;
      }
    }
    if (pos == 0) {
      tail.torn_bytes = tail.size;  // no '\n' at all
      return tail;
    }
    const std::uint64_t n = std::min(kChunk, pos);
    pos -= n;
    std::string chunk(static_cast<std::size_t>(n), '\0');
    std::size_t got = 0;
    while (got < chunk.size()) {
      const ssize_t r =
          ::pread(fd, chunk.data() + got, chunk.size() - got, static_cast<off_t>(pos + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw std::runtime_error(path + ": read failed: " + std::strerror(errno));
      got += static_cast<std::size_t>(r);
    }
    buf.insert(0, chunk);
    if (!last_nl) {
      const std::size_t nl = chunk.rfind('\n');
      if (nl != std::string::npos) last_nl = pos + nl;
    }
  }
}

}  // namespace pgmoat::audit
