#include "common/toml_reader.h"

#include <charconv>

namespace pgmoat::cfg {

std::string position(const std::string& file, const toml::source_region& region) {
  return file + ":" + std::to_string(region.begin.line) + ":" + std::to_string(region.begin.column);
}

toml::table parse_file(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& src = e.source();
    if (src.begin.line == 0) {
      throw ConfigError(path + ":1:1: " + std::string(e.description()));
    }
    throw ConfigError(position(path, src) + ": " + std::string(e.description()));
  }
}

Table::Table(const toml::table& table, std::string file, std::string path)
    : table_(&table), file_(std::move(file)), path_(std::move(path)) {}

std::string Table::qualified(std::string_view key) const {
  if (path_.empty()) return std::string(key);
  return path_ + "." + std::string(key);
}

std::string Table::where(std::string_view key) const {
  if (!key.empty()) {
    if (const toml::node* n = table_->get(key)) return position(file_, n->source());
  }
  const auto& src = table_->source();
  if (src.begin.line == 0) return file_ + ":1:1";
  return position(file_, src);
}

void Table::fail(std::string_view key, const std::string& message) const {
  throw ConfigError(where(key) + ": " + message);
}

bool Table::has(std::string_view key) const {
  return table_->contains(key);
}

const toml::node* Table::node(std::string_view key) {
  const toml::node* n = table_->get(key);
  if (n != nullptr) consumed_.emplace(key);
  return n;
}

std::optional<std::string> Table::get_string(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_string()) fail(key, "'" + qualified(key) + "' must be a string");
  return std::string(*n->value<std::string_view>());
}

std::string Table::get_string(std::string_view key, std::string_view fallback) {
  auto v = get_string(key);
  return v ? *v : std::string(fallback);
}

std::optional<std::int64_t> Table::get_int(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_integer()) fail(key, "'" + qualified(key) + "' must be an integer");
  return *n->value<std::int64_t>();
}

std::int64_t Table::get_int(std::string_view key, std::int64_t fallback, std::int64_t min,
                            std::int64_t max) {
  auto v = get_int(key);
  if (!v) return fallback;
  if (*v < min || *v > max) {
    fail(key, "'" + qualified(key) + "' must be between " + std::to_string(min) + " and " +
                  std::to_string(max) + ", got " + std::to_string(*v));
  }
  return *v;
}

std::optional<bool> Table::get_bool(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_boolean()) fail(key, "'" + qualified(key) + "' must be true or false");
  return *n->value<bool>();
}

bool Table::get_bool(std::string_view key, bool fallback) {
  auto v = get_bool(key);
  return v ? *v : fallback;
}

std::optional<std::vector<std::string>> Table::get_string_list(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  std::vector<std::string> out;
  if (n->is_string()) {
    out.emplace_back(*n->value<std::string_view>());
    return out;
  }
  const toml::array* arr = n->as_array();
  if (arr == nullptr) fail(key, "'" + qualified(key) + "' must be a string or a list of strings");
  for (const toml::node& el : *arr) {
    if (!el.is_string()) {
      throw ConfigError(position(file_, el.source()) + ": every entry of '" + qualified(key) +
                        "' must be a string");
    }
    out.emplace_back(*el.value<std::string_view>());
  }
  return out;
}

std::optional<std::int64_t> parse_duration_ms(std::string_view text) {
  std::int64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr == begin || value < 0) return std::nullopt;
  std::string_view unit(ptr, static_cast<std::size_t>(end - ptr));
  std::int64_t factor = 0;
  if (unit == "ms")
    factor = 1;
  else if (unit == "s" || unit.empty())
    factor = 1000;
  else if (unit == "m")
    factor = 60'000;
  else if (unit == "h")
    factor = 3'600'000;
  else if (unit == "d")
    factor = 86'400'000;
  else
    return std::nullopt;
  if (value > INT64_MAX / factor) return std::nullopt;
  return value * factor;
}

std::optional<std::int64_t> Table::get_duration_ms(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (n->is_integer()) {
    std::int64_t secs = *n->value<std::int64_t>();
    if (secs < 0) fail(key, "'" + qualified(key) + "' must not be negative");
    return secs * 1000;
  }
  if (n->is_string()) {
    auto ms = parse_duration_ms(*n->value<std::string_view>());
    if (!ms) {
      fail(key, "'" + qualified(key) +
                    "' must be a duration such as \"500ms\", \"30s\", \"15m\" or \"2h\"");
    }
    return ms;
  }
  fail(key, "'" + qualified(key) + "' must be a duration string such as \"30s\"");
}

std::optional<Table> Table::get_table(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  const toml::table* t = n->as_table();
  if (t == nullptr) fail(key, "'" + qualified(key) + "' must be a table");
  return Table(*t, file_, qualified(key));
}

std::vector<Table> Table::get_table_array(std::string_view key) {
  std::vector<Table> out;
  const toml::node* n = node(key);
  if (n == nullptr) return out;
  const toml::array* arr = n->as_array();
  if (arr == nullptr)
    fail(key, "'" + qualified(key) + "' must be an array of tables ([[" + qualified(key) + "]])");
  std::size_t i = 0;
  for (const toml::node& el : *arr) {
    const toml::table* t = el.as_table();
    if (t == nullptr) {
      throw ConfigError(position(file_, el.source()) + ": every entry of '" + qualified(key) +
                        "' must be a table");
    }
    out.emplace_back(*t, file_, qualified(key) + "[" + std::to_string(i++) + "]");
  }
  return out;
}

void Table::finish() const {
  for (const auto& [k, v] : *table_) {
    if (consumed_.find(k.str()) == consumed_.end()) {
      throw ConfigError(position(file_, v.source()) + ": unknown key '" + qualified(k.str()) + "'");
    }
  }
}

}  // namespace pgmoat::cfg
