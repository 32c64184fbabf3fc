#include "parser/literal_template.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>

namespace pgmoat::parser {
namespace {

// Character classes by table: the scan looks at every byte of every SELECT text that has a
// number in it.
enum : std::uint8_t { kDigit = 1, kSpace = 2, kIdentStart = 4 };
constexpr std::array<std::uint8_t, 256> kClass = [] {
  std::array<std::uint8_t, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = kDigit;
  for (char c : {' ', '\t', '\n', '\r', '\f', '\v'}) t[static_cast<unsigned char>(c)] = kSpace;
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = kIdentStart;
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = kIdentStart;
  t['_'] = kIdentStart;
  for (std::size_t c = 0x80; c < 256; ++c) t[c] = kIdentStart;
  return t;
}();

bool is_digit(char c) {
  return (kClass[static_cast<unsigned char>(c)] & kDigit) != 0;
}
bool is_space(char c) {
  return (kClass[static_cast<unsigned char>(c)] & kSpace) != 0;
}
bool is_ident_char(char c) {
  return (kClass[static_cast<unsigned char>(c)] & (kIdentStart | kDigit)) != 0;
}

// End of the quoted text starting at sql[i] (a ' or "), past its closing quote; a doubled
// quote is part of the text. npos when unterminated.
std::size_t quoted_end(std::string_view sql, std::size_t i) {
  const char q = sql[i];
  for (std::size_t j = i + 1; j < sql.size(); ++j) {
    if (sql[j] != q) continue;
    if (j + 1 < sql.size() && sql[j + 1] == q) {
      ++j;
      continue;
    }
    return j + 1;
  }
  return std::string_view::npos;
}

// End of the (nestable) block comment starting at sql[i]; npos when unterminated.
std::size_t comment_end(std::string_view sql, std::size_t i) {
  int depth = 0;
  for (std::size_t j = i; j + 1 < sql.size(); ++j) {
    if (sql[j] == '/' && sql[j + 1] == '*') {
      ++depth;
      ++j;
    } else if (sql[j] == '*' && sql[j + 1] == '/') {
      ++j;
      if (--depth == 0) return j + 1;
    }
  }
  return std::string_view::npos;
}

// End of the numeric literal starting at sql[i]: digits, a fraction, an exponent.
std::size_t number_end(std::string_view sql, std::size_t i) {
  std::size_t j = i;
  while (j < sql.size() && is_digit(sql[j])) ++j;
  if (j < sql.size() && sql[j] == '.' && !(j + 1 < sql.size() && sql[j + 1] == '.')) {
    ++j;
    while (j < sql.size() && is_digit(sql[j])) ++j;
  }
  if (j < sql.size() && (sql[j] == 'e' || sql[j] == 'E')) {
    std::size_t k = j + 1;
    if (k < sql.size() && (sql[k] == '+' || sql[k] == '-')) ++k;
    if (k < sql.size() && is_digit(sql[k])) {
      j = k;
      while (j < sql.size() && is_digit(sql[j])) ++j;
    }
  }
  return j;
}

// Bytes that make a text unfit for a template wherever they stand, quotes and comments
// included: '$' (dollar quotes, parameters), backslash (escape strings), NUL, and '[' (a
// parameter can be subscripted, a number cannot: "SELECT 1[2]" does not parse, "SELECT
// $1[$2]" does, so a template could accept a text Postgres rejects).
bool has_unfit_byte(std::string_view sql) {
  // memchr is vectorised: four of them beat one loop over a table.
  for (char c : {'$', '\\', '\0', '['}) {
    if (std::memchr(sql.data(), c, sql.size()) != nullptr) return true;
  }
  return false;
}

// A quick no for the many texts with no number at all, eight bytes at a time: after XOR with
// '0' a digit is a byte below 10, and (y - 0x0A..) & ~y & 0x80.. is non-zero exactly when
// some byte of y is below 10 (the borrow trick of "has a zero byte").
bool has_digit(std::string_view sql) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  std::size_t i = 0;
  for (; i + 8 <= sql.size(); i += 8) {
    std::uint64_t x;
    std::memcpy(&x, sql.data() + i, 8);
    const std::uint64_t y = x ^ (kOnes * '0');
    if (((y - kOnes * 10) & ~y & (kOnes * 0x80)) != 0) return true;
  }
  for (; i < sql.size(); ++i) {
    if (is_digit(sql[i])) return true;
  }
  return false;
}

void append_param(std::string& key, int n) {
  key += '$';
  char digits[12];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
  (void)ec;  // 12 digits hold any int
  key.append(digits, end);
}

// The end of a -- comment starting at sql[i]: PostgreSQL ends it at \n or \r.
std::size_t line_comment_end(std::string_view sql, std::size_t i) {
  for (std::size_t j = i + 2; j < sql.size(); ++j) {
    if (sql[j] == '\n' || sql[j] == '\r') return j;
  }
  return sql.size();
}

// The first character at or after sql[i] that is not blank and not in a comment; ' ' at the
// end (or in an unterminated comment, which makes the whole text unfit anyway).
char next_significant(std::string_view sql, std::size_t i) {
  while (i < sql.size()) {
    if (is_space(sql[i])) {
      ++i;
    } else if (sql[i] == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      i = line_comment_end(sql, i);
    } else if (sql[i] == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      i = comment_end(sql, i);
      if (i == std::string_view::npos) return ' ';
    } else {
      return sql[i];
    }
  }
  return ' ';
}

bool iequals(std::string_view a, std::string_view lower_b) {
  if (a.size() != lower_b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k) {
    if ((a[k] | 0x20) != lower_b[k]) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

bool may_have_template(std::string_view sql) {
  std::size_t i = 0;
  while (i < sql.size() && is_space(sql[i])) ++i;
  std::size_t end = i;
  while (end < sql.size() && is_ident_char(sql[end])) ++end;
  if (end >= sql.size()) return false;
  if (!is_space(sql[end]) && sql[end] != '(' && sql[end] != '*') return false;
  const std::string_view word = sql.substr(i, end - i);
  for (std::string_view k : {"select", "insert", "update", "delete", "merge"}) {
    if (iequals(word, k)) return true;
  }
  return false;
}

bool numeric_template(std::string_view sql, LiteralTemplate& out) {
  if (!has_digit(sql) || has_unfit_byte(sql)) return false;
  out.key.clear();
  out.key.reserve(sql.size() + 9);
  out.key += '\0';
  int params = 0;
  std::size_t copied = 0;  // sql[0, copied) is in out.key already
  std::size_t semicolon = std::string_view::npos;
  std::size_t i = 0;
  while (i < sql.size()) {
    const char c = sql[i];
    const std::uint8_t k = kClass[static_cast<unsigned char>(c)];
    if ((k & kSpace) != 0) {
      ++i;
      continue;
    }
    if (semicolon != std::string_view::npos) return false;  // more after the ';'
    std::size_t end = i + 1;
    if ((k & kIdentStart) != 0) {
      while (end < sql.size() && is_ident_char(sql[end])) ++end;
      // OPERATOR(-) 5 keeps its operator, -5 is folded into the constant: their templates
      // look alike (parse_json.h's shape mapping reads "-$1" as a constant).
      if (end - i == 8 && iequals(sql.substr(i, 8), "operator")) return false;
    } else if ((k & kDigit) != 0 || (c == '.' && i + 1 < sql.size() && is_digit(sql[i + 1]))) {
      end = number_end(sql, i);
      // The text on either side as Postgres's lexer sees it (a number never follows a
      // number directly: number_end took every digit, and what follows it is checked here).
      const char before = i == 0 ? ' ' : sql[i - 1];
      const char after = end < sql.size() ? sql[end] : ' ';
      if (is_ident_char(before) || before == '\'' || before == '"' || before == '.' ||
          is_ident_char(after) || after == '\'' || after == '"' || after == '.') {
        return false;
      }
      // A parameter takes a field selection after blanks or comments ("$1 .x"), a number
      // does not: "SELECT 1 .x" does not parse. ('[' never gets this far.)
      if (next_significant(sql, end) == '.') return false;
      out.key.append(sql.substr(copied, i - copied));
      append_param(out.key, ++params);
      copied = end;
    } else if (c == ';') {
      semicolon = i;
    } else if (c == '\'' || c == '"') {
      end = quoted_end(sql, i);
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      end = line_comment_end(sql, i);
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      end = comment_end(sql, i);
    }
    if (end == std::string_view::npos) return false;  // unterminated quote or comment
    i = end;
  }
  if (params == 0) return false;
  out.key.append(sql.substr(copied));
  std::string_view stmt = sql;
  if (semicolon != std::string_view::npos) stmt = sql.substr(0, semicolon);
  out.statement = trim(stmt);
  return true;
}

std::optional<LiteralTemplate> numeric_template(std::string_view sql) {
  LiteralTemplate out;
  if (!numeric_template(sql, out)) return std::nullopt;
  return out;
}

}  // namespace pgmoat::parser
