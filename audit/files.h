// Audit file naming and ordering. The current file is `path`; rotation renames it to
// `path.YYYYMMDDTHHMMSS.N` (UTC time of the rotation, N = 1, 2, ... within that second).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgmoat::audit {

// A free rotated name for `path` at `ts_us` (checks the file system for N).
std::string rotated_name(const std::string& path, std::int64_t ts_us);

// Oldest first: for each base name, rotated files by (timestamp, N), then the current file.
// Names that do not follow the pattern sort by name, as if they were a current file.
void sort_audit_files(std::vector<std::string>& files);

// `path`'s rotated siblings and `path` itself (when they exist), oldest first.
std::vector<std::string> list_audit_files(const std::string& path);

// Command-line operands: files stay, directories become their regular non-hidden files;
// the result is sorted with sort_audit_files. Throws std::runtime_error for a missing operand.
std::vector<std::string> expand_inputs(const std::vector<std::string>& operands);

// The whole file; throws std::runtime_error when it cannot be read.
std::string read_file(const std::string& path);

// The end of a file, read backwards so that a large file costs only its last line.
struct Tail {
  std::uint64_t size = 0;
  std::optional<std::string> last_line;  // last complete line, without '\n'
  std::uint64_t last_line_end = 0;       // offset just after that line's '\n'
  std::uint64_t torn_bytes = 0;          // bytes after the last '\n' (a torn write)
};
// Throws std::runtime_error when the file cannot be read.
Tail read_tail(const std::string& path);

}  // namespace pgmoat::audit
