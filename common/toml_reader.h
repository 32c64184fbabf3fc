// A strict reader over a toml++ table: every key must be consumed, every error names
// `file:line:column`. Each section's owner (proxy settings, policy, audit, approvers) reads its
// own part of the one config file through this, so unknown keys anywhere are caught.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

// toml++ checks its own parser state with assert() in builds without NDEBUG, and one of
// those checks fires on input it then rejects with a proper error (e.g. a line "[[[").
// A config file must never crash pgmoat, debug and sanitizer builds included.
#ifndef TOML_ASSERT
#define TOML_ASSERT(expr) static_assert(true)
#endif
#include <toml++/toml.h>

namespace pgmoat::cfg {

// Thrown for any configuration problem; what() is "file:line:column: what is wrong".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses a TOML file; syntax errors become ConfigError with position.
toml::table parse_file(const std::string& path);

class Table {
 public:
  Table(const toml::table& table, std::string file, std::string path);

  // Getters mark the key as consumed; a wrong type is a ConfigError naming the key.
  std::optional<std::string> get_string(std::string_view key);
  std::string get_string(std::string_view key, std::string_view fallback);
  std::optional<std::int64_t> get_int(std::string_view key);
  std::int64_t get_int(std::string_view key, std::int64_t fallback, std::int64_t min,
                       std::int64_t max);
  std::optional<bool> get_bool(std::string_view key);
  bool get_bool(std::string_view key, bool fallback);
  // A string or an array of strings (a lone string becomes a one-element list).
  std::optional<std::vector<std::string>> get_string_list(std::string_view key);
  // Durations are strings like "30s", "15m", "2h", "500ms", or an integer of seconds.
  std::optional<std::int64_t> get_duration_ms(std::string_view key);
  std::optional<Table> get_table(std::string_view key);
  std::vector<Table> get_table_array(std::string_view key);
  bool has(std::string_view key) const;

  // Throws a ConfigError for the first key nobody consumed.
  void finish() const;

  // A ConfigError positioned at `key` (or at the table itself when key is empty).
  [[noreturn]] void fail(std::string_view key, const std::string& message) const;
  std::string where(std::string_view key) const;
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }

 private:
  const toml::node* node(std::string_view key);
  std::string qualified(std::string_view key) const;

  const toml::table* table_;
  std::string file_;
  std::string path_;
  std::set<std::string, std::less<>> consumed_;
};

// "file:line:column" for a node.
std::string position(const std::string& file, const toml::source_region& region);

// Parses "30s", "15m", "2h", "1d", "500ms"; nullopt when malformed.
std::optional<std::int64_t> parse_duration_ms(std::string_view text);

}  // namespace pgmoat::cfg
