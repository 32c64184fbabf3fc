// `pgmoat audit search`: filters over audit files, for people (table) and tools (JSON Lines).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace pgmoat::audit {

struct Cidr {
  int family = 0;  // AF_INET or AF_INET6
  std::array<unsigned char, 16> bytes{};
  int bits = 0;
};
// "10.0.0.5", "10.0.0.0/8", "::1", "fd00::/8"; nullopt when malformed.
std::optional<Cidr> parse_cidr(std::string_view text);
bool cidr_contains(const Cidr& cidr, std::string_view address);

// ISO-8601 ("2024-05-01", "2024-05-01T12:00:00Z", "2024-05-01 12:00+02:00") or a duration
// back from now ("24h", "30m", "7d", "90s").
std::optional<std::int64_t> parse_time_arg(std::string_view text, std::int64_t now_us);

// Every set field must match. String fields are globs (fnmatch): "seed*" matches
// "seed-prod". --table matches "schema.name" or just "name", in tables written or read.
struct SearchFilter {
  std::optional<std::int64_t> since_us;
  std::optional<std::int64_t> until_us;
  std::string user;
  std::string database;
  std::string application_name;
  std::optional<Cidr> client;
  std::string table;
  std::string klass;  // statement class
  std::string decision;
  std::string rule;
  std::string token;  // approval token id
  std::string type;   // event type
};

// The columns of the table format.
struct Row {
  std::string time;
  std::string user_db;
  std::string app;
  std::string client;
  std::string type;
  std::string decision;
  std::string classes;
  std::string rows;
  std::string statement;
};

// Calls on_match(line, row) for every record that matches, in file order. Lines that are not
// JSON (a torn tail) are skipped with a note on `warnings`. Returns the number of matches.
// Throws std::runtime_error when a file cannot be read.
std::uint64_t search_files(
    const std::vector<std::string>& files, const SearchFilter& filter,
    const std::function<void(std::string_view line, const Row& row)>& on_match,
    std::ostream& warnings);

// Aligned columns with a header; statements are cut to `statement_width` characters.
void print_table(std::ostream& out, const std::vector<Row>& rows, std::size_t statement_width = 80);

}  // namespace pgmoat::audit
