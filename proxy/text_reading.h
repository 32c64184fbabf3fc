// How the server will read a client's SQL text. Two settings decide what a backslash does,
// and the server reports both (ParameterStatus):
//   standard_conforming_strings off: 'a\', ' is one string, and a text can hide a statement
//     that libpg_query, reading with it on, takes for part of a string;
//   client_encoding SJIS, SHIFT_JIS_2004, BIG5, GBK, UHC, GB18030 or JOHAB: a backslash byte
//     can be the second half of a character. The server reads the text converted to its own
//     encoding, pgmoat reads the client's bytes: it splits them into characters as that
//     encoding does and refuses a text that then reads as different statements.
// Not covered: a setting changed for the whole server (ALTER SYSTEM or postgresql.conf, then
// a reload) takes effect in a session just before its next statement runs, and is reported
// only after it: that one statement is read with the old setting.
// pgmoat's cache and classifier read texts as the defaults do. For the rare text in which a
// backslash could be read otherwise, TextReading says how the server reads it, or that pgmoat
// cannot tell (a statement not answered yet may change the settings) and must refuse it.
// Sans-io: unit-tested with texts (tests/unit/proxy/text_reading_test.cpp).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "parser/classify.h"
#include "proxy/refusal.h"

namespace pgmoat::proxy {

class TextReading {
 public:
  struct Reading {
    // As the server reads the text (not cached: the cache holds the default reading).
    std::shared_ptr<const parser::Classification> classification;
    std::optional<Refusal> refusal;  // pgmoat cannot tell how the server reads it
  };

  // A ParameterStatus from the server: at login, and before the ReadyForQuery of a query
  // that changed the setting.
  void on_parameter_status(std::string_view name, std::string_view value);
  // nullopt: the default reading (the cache's) is the server's. `settled`: the server has
  // answered everything the client sent before `sql`, so the settings it reported stand.
  std::optional<Reading> read(std::string_view sql, bool settled) const {
    if (settled && strings_ == parser::Strings::standard && !unsafe_encoding_) return std::nullopt;
    return read_otherwise(sql, settled);
  }

  parser::Strings strings() const { return strings_; }

 private:
  std::optional<Reading> read_otherwise(std::string_view sql, bool settled) const;

  parser::Strings strings_ = parser::Strings::standard;
  std::string encoding_ = "UTF8";
  bool unsafe_encoding_ = false;
};

}  // namespace pgmoat::proxy
