// How the server reads a client's backslashes: standard_conforming_strings and client_encoding
// as the server reports them, and what pgmoat does when it cannot tell.
#include "proxy/text_reading.h"

#include <gtest/gtest.h>

#include <string>

namespace pgmoat::proxy {
namespace {

using parser::StatementClass;

// A SELECT and a DROP with standard_conforming_strings off; one SELECT with it on.
constexpr const char* kHiddenDrop = "SELECT 'a\\', ' ; DROP TABLE t; --'";
// In SJIS, 0x95 0x5C is one character: E'<it>' ends before the DROP.
const std::string kSjisHiddenDrop = "SELECT E'\x95\x5c'; DROP TABLE t; --'";

bool drops(const TextReading::Reading& r) {
  for (const auto& st : r.classification->statements) {
    if (parser::has(st.classes, StatementClass::drop)) return true;
  }
  return false;
}

TEST(TextReading, TheDefaultsNeedNoReadingOfTheirOwn) {
  TextReading t;
  EXPECT_FALSE(t.read(kHiddenDrop, true).has_value());
  t.on_parameter_status("standard_conforming_strings", "on");
  t.on_parameter_status("client_encoding", "UTF8");
  EXPECT_FALSE(t.read(kHiddenDrop, true).has_value());
  EXPECT_FALSE(t.read(kSjisHiddenDrop, true).has_value());
}

TEST(TextReading, BackslashEscapesAreReadAsTheServerReadsThem) {
  TextReading t;
  t.on_parameter_status("standard_conforming_strings", "off");
  EXPECT_EQ(t.strings(), parser::Strings::backslash_escapes);
  auto r = t.read(kHiddenDrop, true);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->refusal.has_value());
  ASSERT_EQ(r->classification->statements.size(), 2u);
  EXPECT_TRUE(drops(*r));
  EXPECT_FALSE(t.read("DELETE FROM t WHERE id = 1", true).has_value());  // no backslash
  t.on_parameter_status("standard_conforming_strings", "on");
  EXPECT_FALSE(t.read(kHiddenDrop, true).has_value());
  t.on_parameter_status("standard_conforming_strings", "something new");  // fail closed
  EXPECT_EQ(t.strings(), parser::Strings::backslash_escapes);
}

TEST(TextReading, UnsettledTextsThatReadBothWaysAlikeRun) {
  TextReading t;
  auto r = t.read(kHiddenDrop, false);
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->refusal.has_value());
  EXPECT_EQ(r->refusal->sqlstate, "55000");
  // No backslash before a quote: the same statement either way, read as the cache does.
  EXPECT_FALSE(t.read("SELECT 'x\\y'", false).has_value());
  EXPECT_FALSE(t.read("SELECT 1", false).has_value());
  // A quote after a backslash that does not end the string either way (E'' escapes always).
  EXPECT_FALSE(t.read("SELECT E'it\\'s'", false).has_value());
}

TEST(TextReading, AMultibyteEncodingThatHidesAStatementIsRefused) {
  TextReading t;
  t.on_parameter_status("client_encoding", "SJIS");
  auto r = t.read(kSjisHiddenDrop, true);
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->refusal.has_value());
  EXPECT_EQ(r->refusal->sqlstate, "0A000");
  EXPECT_NE(r->refusal->message.find("SJIS"), std::string::npos);
  // A backslash byte that ends a character and changes only a value.
  EXPECT_FALSE(t.read("SELECT E'\x95\x5cn'", true).has_value());
  // 0xA1 is a one-byte character in SJIS: the backslashes after it are real, the one after
  // 0x95 is not. Reading every such backslash alike (all real, or none) would miss the DROP.
  const std::string mixed = "SELECT E'x\xa1\x5c\x5c', E', \x95\x5c' ; DROP TABLE t ; --'";
  r = t.read(mixed, true);
  ASSERT_TRUE(r.has_value() && r->refusal.has_value());
  EXPECT_EQ(r->refusal->sqlstate, "0A000");
  // Unsettled, the encoding may be changing: the same test applies whatever it was.
  t.on_parameter_status("client_encoding", "UTF8");
  r = t.read(kSjisHiddenDrop, false);
  ASSERT_TRUE(r.has_value() && r->refusal.has_value());
  EXPECT_EQ(r->refusal->sqlstate, "0A000");
  EXPECT_FALSE(t.read(kSjisHiddenDrop, true).has_value());  // settled UTF8: bytes are bytes
  // UTF-8 text: a backslash after a whole character is one in every encoding's reading.
  EXPECT_FALSE(t.read("SELECT E'caf\xc3\xa9\\'s'", false).has_value());
}

}  // namespace
}  // namespace pgmoat::proxy
