// `pgmoat audit verify`: walks the hash chain over files given oldest first.
//
// What is reported and how it counts:
// - error (chain not whole, exit 1): a record whose hash does not match the next record's prev
//   (named as modified), a gap in seq (records deleted: named by the first missing seq and
//   where it should be), a seq out of order (reordered), a line that is not a record, a first
//   record that is neither the genesis record nor names the file it continues (the start
//   was deleted), an unreadable file.
// - warning (chain whole, exit 0): a torn last line (no '\n'), which is what a crash
//   mid-write leaves; pgmoat itself never continues after it in the same file. The chain must
//   still continue from the last complete record. A chain that starts with "rotated_from" a
//   file that was not given: only the given part is verified (require_genesis makes it an
//   error).
// Limitation: a hash chain cannot show that records were cut from the end of the newest
// file; compare the reported head (seq and hash) with a copy kept elsewhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgmoat::audit {

struct VerifyIssue {
  std::string file;
  std::uint64_t line = 0;  // 1-based
  std::uint64_t seq = 0;   // 0 when not known
  std::string message;
};

struct VerifyReport {
  bool ok = true;
  std::uint64_t records = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  std::string head_hash;             // SHA-256 of the last complete record
  std::optional<VerifyIssue> error;  // the first problem that breaks the chain
  std::vector<VerifyIssue> warnings;
};

VerifyReport verify_files(const std::vector<std::string>& files, bool require_genesis = false);

// "file:line: seq N: message"
std::string to_string(const VerifyIssue& issue);

}  // namespace pgmoat::audit
