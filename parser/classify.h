// Turning SQL text into a Classification. The only public entry points of parser/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "parser/classification.h"

namespace pgmoat::parser {

// How the server reads a backslash in a '...' string: its standard_conforming_strings, on
// (`standard`, the default since PostgreSQL 9.1) or off (`backslash_escapes`: 'it\'s' is one
// string). The same text can be different statements under the two.
enum class Strings : std::uint8_t { standard, backslash_escapes };

// Parses with libpg_query and classifies every statement, nested ones included.
// Never throws on bad SQL: returns ok=false with libpg_query's message.
// Function and procedure bodies with a backslash are read both ways whatever `strings` is
// (the server parses a stored body again when it runs a SQL function, or compiles a PL/pgSQL
// one in a session, under the setting of that moment): a body that reads differently is
// opaque and carries what both readings found.
Classification classify(std::string_view sql, Strings strings = Strings::standard);

// libpg_query's fingerprint of the statement(s), hex; empty when unparseable.
std::string fingerprint(std::string_view sql);
// The same for one classified statement, from a cache keyed by its shape (Statement::shape):
// statements that differ only in their constants are fingerprinted once.
std::string fingerprint(const Statement& st);
// The statement with literals replaced by $n (pg_query_normalize); the input when unparseable.
std::string normalize(std::string_view sql);

// Bounded, thread-safe cache keyed by the exact statement text (never a normalized key:
// `WHERE 1=1` and `WHERE 1=2` must not share an entry). A text is kept from the second time
// it is seen: statements with literals written inline (pgbench -M simple, ORMs that do not
// bind parameters) are each seen once, and keeping them would only evict useful entries.
// The one exception: a single SELECT, INSERT, UPDATE, DELETE or MERGE (no function call)
// whose text differs from an earlier one only in numbers shares that one's parse (and is not
// kept under its own text), unless a number could change what it is (`WHERE 1=1`); cache.cpp
// says why that is safe.
//
// What find() returns for a text: its classification, and when that is a template's, shared
// by every text of the template (Classification::shared_template, its statement text the
// template's), the text's own statement: trimmed, without its final ';', a view into the text.
struct Cached {
  std::shared_ptr<const Classification> classification;
  std::string_view own_statement;
};
// The classification with the looked-up text's own statement text: a copy when it is a
// template's shared one, else the same object. Whoever records or shows a statement's text
// calls this first. Deciding needs no text, so an allowed read never pays for the copy.
std::shared_ptr<const Classification> with_own_text(const Cached& found);

class ClassificationCache {
 public:
  explicit ClassificationCache(std::size_t max_bytes = 64u << 20);
  ~ClassificationCache();
  ClassificationCache(const ClassificationCache&) = delete;
  ClassificationCache& operator=(const ClassificationCache&) = delete;

  // The classification of `sql`, its statement text its own (with_own_text(find(sql))).
  std::shared_ptr<const Classification> get(std::string_view sql);
  // The same without the copy a template's classification needs to carry the text's own
  // statement: the hot path's lookup.
  Cached find(std::string_view sql);
  std::uint64_t hits() const;
  std::uint64_t misses() const;
  std::size_t entries() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgmoat::parser
