// The hash chain: every line is `{"seq":N,"prev":"<sha256 hex>",...rest of the record}` where
// prev is the SHA-256 of the previous line's bytes (without its '\n'). The first record ever
// has seq 1 and a prev of 64 zeros. The first record of a file that continues an older file
// also carries "rotated_from":"<basename of that file>" right after prev.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgmoat::audit {

inline constexpr std::string_view kGenesisPrev =
    "0000000000000000000000000000000000000000000000000000000000000000";

std::string sha256_hex(std::string_view bytes);

// Appends one chained line (without '\n') to `out`. `record` must be a JSON object ("{...}").
void append_chained_line(std::string& out, std::uint64_t seq, std::string_view prev,
                         std::string_view rotated_from, std::string_view record);

struct ChainFields {
  std::uint64_t seq = 0;
  std::string prev;
  std::string rotated_from;
  std::string type;
};

// Parses a whole line as JSON and extracts the chain fields; nullopt when the line is not a
// JSON object with an unsigned "seq" and a 64-hex-digit "prev".
std::optional<ChainFields> parse_chain_fields(std::string_view line);

}  // namespace pgmoat::audit
