#include "proxy/text_reading.h"

#include <fmt/format.h>

#include <array>

namespace pgmoat::proxy {
namespace {

using parser::Strings;

// Client-only encodings whose second byte may be 0x5C (PostgreSQL's PG_ENCODING_IS_CLIENT_ONLY).
constexpr std::array<std::string_view, 7> kUnsafeEncodings = {
    "SJIS", "SHIFT_JIS_2004", "BIG5", "GBK", "UHC", "GB18030", "JOHAB"};

bool backslash_after_high_byte(std::string_view sql) {
  for (std::size_t i = sql.find('\\'); i != std::string_view::npos; i = sql.find('\\', i + 1)) {
    if (i > 0 && static_cast<unsigned char>(sql[i - 1]) >= 0x80) return true;
  }
  return false;
}

// The text as an encoding in which each backslash after a non-ASCII byte ends a character
// reads it: that byte is no escape. 'A' is an ordinary character wherever it stands.
std::string as_multibyte(std::string_view sql) {
  std::string out(sql);
  for (std::size_t i = 1; i < out.size(); ++i) {
    if (out[i] == '\\' && static_cast<unsigned char>(out[i - 1]) >= 0x80) out[i] = 'A';
  }
  return out;
}

// The same statements, kinds and tables: statement texts differ by the replaced bytes.
bool same_shape(const parser::Classification& a, const parser::Classification& b) {
  if (a.ok != b.ok || a.statements.size() != b.statements.size()) return false;
  for (std::size_t i = 0; i < a.statements.size(); ++i) {
    const auto& x = a.statements[i];
    const auto& y = b.statements[i];
    if (x.classes != y.classes || x.tables != y.tables || x.functions != y.functions ||
        x.opaque != y.opaque || x.prepared_name != y.prepared_name || x.set_name != y.set_name) {
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
    unsafe_encoding_ = false;
    for (auto e : kUnsafeEncodings) unsafe_encoding_ = unsafe_encoding_ || value == e;
  }
}

std::optional<TextReading::Reading> TextReading::read(std::string_view sql, bool settled) const {
  if (settled && strings_ == Strings::standard && !unsafe_encoding_) return std::nullopt;
  if (sql.find('\\') == std::string_view::npos) return std::nullopt;
  Reading r;
  parser::Classification mine = parser::classify(sql, strings_);
  if (!settled && !parser::same_judgement(mine, parser::classify(sql, flip(strings_)))) {
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
    const std::string multibyte = as_multibyte(sql);
    bool differs = !same_shape(mine, parser::classify(multibyte, strings_));
    if (!settled && !differs) {
      const Strings other = flip(strings_);
      differs = !same_shape(parser::classify(sql, other), parser::classify(multibyte, other));
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
  if (!r.refusal && settled && strings_ == Strings::standard) return std::nullopt;
  r.classification = std::make_shared<const parser::Classification>(std::move(mine));
  return r;
}

}  // namespace pgmoat::proxy
