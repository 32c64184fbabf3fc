#include "proxy/text_reading.h"

#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <optional>

namespace pgmoat::proxy {
namespace {

using parser::Strings;

// How the client-only encodings whose later bytes may be 0x5C split bytes into characters
// (PostgreSQL's pg_sjis_mblen, pg_big5_mblen, pg_gbk_mblen, pg_uhc_mblen, pg_gb18030_mblen,
// pg_johab_mblen).
enum class Multibyte : std::uint8_t { sjis, two_byte, gb18030, euc };
constexpr std::array<Multibyte, 4> kEveryMultibyte = {Multibyte::sjis, Multibyte::two_byte,
                                                      Multibyte::gb18030, Multibyte::euc};

std::optional<Multibyte> multibyte(std::string_view encoding) {
  if (encoding == "SJIS" || encoding == "SHIFT_JIS_2004") return Multibyte::sjis;
  if (encoding == "BIG5" || encoding == "GBK" || encoding == "UHC") return Multibyte::two_byte;
  if (encoding == "GB18030") return Multibyte::gb18030;
  if (encoding == "JOHAB") return Multibyte::euc;
  return std::nullopt;
}

std::size_t char_length(Multibyte m, std::string_view s, std::size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return 1;
  switch (m) {
    case Multibyte::sjis:
      return b >= 0xa1 && b <= 0xdf ? 1 : 2;  // half-width katakana: one byte
    case Multibyte::two_byte:
      return 2;
    case Multibyte::gb18030: {
      const auto next = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
      return next >= 0x30 && next <= 0x39 ? 4 : 2;
    }
    case Multibyte::euc:
      return b == 0x8f ? 3 : 2;
  }
  return 1;
}

bool backslash_after_high_byte(std::string_view sql) {
  for (std::size_t i = sql.find('\\'); i != std::string_view::npos; i = sql.find('\\', i + 1)) {
    if (i > 0 && static_cast<unsigned char>(sql[i - 1]) >= 0x80) return true;
  }
  return false;
}

// The text as the server sees its characters: a backslash byte inside a character is no
// escape, so it becomes 'A', an ordinary character wherever it stands.
std::string as_characters(std::string_view sql, Multibyte m) {
  std::string out(sql);
  for (std::size_t i = 0; i < out.size();) {
    const std::size_t n = char_length(m, out, i);
    for (std::size_t k = 1; k < n && i + k < out.size(); ++k) {
      if (out[i + k] == '\\') out[i + k] = 'A';
    }
    i += n;
  }
  return out;
}

// The same statements, kinds, tables and trees (shapes leave constants out): statement
// texts differ only in the replaced bytes.
bool same_shape(const parser::Classification& a, const parser::Classification& b) {
  if (a.ok != b.ok || a.statements.size() != b.statements.size()) return false;
  for (std::size_t i = 0; i < a.statements.size(); ++i) {
    const auto& x = a.statements[i];
    const auto& y = b.statements[i];
    if (x.classes != y.classes || x.tables != y.tables || x.functions != y.functions ||
        x.opaque != y.opaque || x.prepared_name != y.prepared_name || x.set_name != y.set_name ||
        x.text.size() != y.text.size() || x.shape != y.shape) {
      return false;
    }
  }
  return true;
}

Strings flip(Strings s) {
  return s == Strings::standard ? Strings::backslash_escapes : Strings::standard;
}

}  // namespace

void TextReading::on_parameter_status(std::string_view name, std::string_view value) {
  if (name == "standard_conforming_strings") {
    // Anything but "on" reads backslashes as escapes: the reading that hides more.
    strings_ = value == "on" ? Strings::standard : Strings::backslash_escapes;
  } else if (name == "client_encoding") {
    encoding_ = std::string(value);
    unsafe_encoding_ = multibyte(value).has_value();
  }
}

std::optional<TextReading::Reading> TextReading::read_otherwise(std::string_view sql,
                                                                bool settled) const {
  if (sql.find('\\') == std::string_view::npos) return std::nullopt;
  Reading r;
  std::optional<parser::Classification> read_mine;  // as the reported setting reads it
  auto mine = [&]() -> const parser::Classification& {
    if (!read_mine) read_mine = parser::classify(sql, strings_);
    return *read_mine;
  };
  // Only a backslash right before a quote can end (or not end) a string: other escapes
  // change a string's value, never where a statement ends.
  if (!settled && sql.find("\\'") != std::string_view::npos &&
      !parser::same_judgement(mine(), parser::classify(sql, flip(strings_)))) {
    r.refusal = Refusal{
        "55000",
        "pgmoat: this statement reads differently with standard_conforming_strings off, and "
        "that setting may change before it runs",
        "A statement sent before it has not been answered yet, and may change "
        "standard_conforming_strings. With it off, Postgres reads \\' inside '...' as a quote "
        "that does not end the string.",
        "Send it after the answers to the statements before it, or write a quote in a string "
        "as ''."};
  }
  if (!r.refusal && (unsafe_encoding_ || !settled) && backslash_after_high_byte(sql)) {
    // Settled, as the reported encoding splits it; unsettled, any of them may be in force.
    const std::optional<Multibyte> now = multibyte(encoding_);
    bool differs = false;
    for (const Multibyte m : kEveryMultibyte) {
      if (differs || (settled && m != now)) continue;
      const std::string chars = as_characters(sql, m);
      if (chars == sql) continue;
      differs = !same_shape(mine(), parser::classify(chars, strings_));
      if (!settled && !differs) {
        const Strings other = flip(strings_);
        differs = !same_shape(parser::classify(sql, other), parser::classify(chars, other));
      }
    }
    if (differs) {
      r.refusal = Refusal{
          "0A000",
          unsafe_encoding_
              ? fmt::format("pgmoat: in client_encoding {} a backslash byte in this statement "
                            "is part of a character, and pgmoat cannot read the statement as "
                            "the server does",
                            encoding_)
              : std::string("pgmoat: a backslash byte in this statement follows a non-ASCII "
                            "byte, and client_encoding may change before it runs"),
          "In client_encoding SJIS, SHIFT_JIS_2004, BIG5, GBK, UHC, GB18030 or JOHAB, a "
          "backslash byte after a non-ASCII byte can be the second half of a character. "
          "Postgres reads the text converted to the server's encoding; pgmoat reads the bytes "
          "the client sent, and here the two readings are different statements.",
          "Use client_encoding UTF8, or send the values as parameters."};
    }
  }
  if (!r.refusal && strings_ == Strings::standard) return std::nullopt;  // the cache's reading
  r.classification = std::make_shared<const parser::Classification>(mine());
  return r;
}

}  // namespace pgmoat::proxy
