#include "parser/literal_template.h"

namespace pgmoat::parser {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_ident_start(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_' || u >= 0x80;
}
bool is_ident_char(char c) {
  return is_ident_start(c) || is_digit(c);
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

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<LiteralTemplate> numeric_template(std::string_view sql) {
  // '[': a parameter can be subscripted and a number cannot ("SELECT 1[2]" does not parse,
  // "SELECT $1[$2]" does), so a template could accept a text Postgres rejects.
  if (sql.find_first_of(std::string_view("$\\\0[", 4)) != std::string_view::npos) {
    return std::nullopt;
  }
  LiteralTemplate out;
  out.text.reserve(sql.size() + 8);
  int params = 0;
  std::size_t semicolon = std::string_view::npos;
  std::size_t i = 0;
  while (i < sql.size()) {
    const char c = sql[i];
    if (semicolon != std::string_view::npos && !is_space(c)) return std::nullopt;
    std::size_t end = i + 1;
    if (c == ';') {
      semicolon = i;
    } else if (c == '\'' || c == '"') {
      end = quoted_end(sql, i);
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      end = sql.find_first_of("\r\n", i);  // PostgreSQL ends a -- comment at either
      if (end == std::string_view::npos) end = sql.size();
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      end = comment_end(sql, i);
    } else if (is_ident_start(c)) {
      while (end < sql.size() && is_ident_char(sql[end])) ++end;
    } else if (is_digit(c) || (c == '.' && i + 1 < sql.size() && is_digit(sql[i + 1]))) {
      end = number_end(sql, i);
      const char before = out.text.empty() ? ' ' : out.text.back();
      const char after = end < sql.size() ? sql[end] : ' ';
      if (is_ident_char(before) || before == '\'' || before == '"' || before == '.' ||
          is_ident_char(after) || after == '\'' || after == '"' || after == '.') {
        return std::nullopt;
      }
      out.text += '$';
      out.text += std::to_string(++params);
      i = end;
      continue;
    }
    if (end == std::string_view::npos) return std::nullopt;  // unterminated quote or comment
    out.text.append(sql.substr(i, end - i));
    i = end;
  }
  if (params == 0) return std::nullopt;
  std::string_view stmt = sql;
  if (semicolon != std::string_view::npos) stmt = sql.substr(0, semicolon);
  out.statement = trim(stmt);
  return out;
}

}  // namespace pgmoat::parser
