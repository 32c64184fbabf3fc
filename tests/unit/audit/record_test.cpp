#include "audit/record.h"

#include <gtest/gtest.h>

#include <rapidjson/document.h>

namespace pgmoat::audit {
namespace {

rapidjson::Document parse(const std::string& s) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(s.data(), s.size());
  EXPECT_FALSE(d.HasParseError()) << s;
  return d;
}

std::string round_trip(const std::string& text) {
  Event ev;
  ev.statement = text;
  auto d = parse(encode(Identity{}, ev));
  if (!d.IsObject() || !d.HasMember("statement")) return "<missing>";
  return std::string(d["statement"].GetString(), d["statement"].GetStringLength());
}

TEST(Encode, EscapesQuotesBackslashesAndControlCharacters) {
  const std::string text =
      "DELETE FROM \"t\" WHERE a = 'x\\y'\n\t\r\b\f" + std::string(1, '\0') + "\x01\x1f end";
  std::string out;
  append_json_string(out, text);
  EXPECT_EQ(out,
            "\"DELETE FROM \\\"t\\\" WHERE a = 'x\\\\y'\\n\\t\\r\\b\\f\\u0000\\u0001\\u001f end\"");
  EXPECT_EQ(round_trip(text), text);
}

TEST(Encode, ValidUtf8PassesThroughUnchanged) {
  const std::string text = "SELECT 'h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x90\x98 \xE4\xB8\xAD'";
  std::string out;
  append_json_string(out, text);
  EXPECT_EQ(out, "\"" + text + "\"");
  EXPECT_EQ(round_trip(text), text);
}

TEST(Encode, InvalidUtf8BecomesReplacementCharacter) {
  // Lone continuation byte, truncated sequence, overlong '/', UTF-16 surrogate, > U+10FFFF.
  const std::string text =
      "a\x80"
      "b\xC3"
      "c\xC0\xAF"
      "d\xED\xA0\x80"
      "e\xF4\x90\x80\x80"
      "f";
  const std::string got = round_trip(text);
  EXPECT_EQ(got.find('\x80'), std::string::npos);
  EXPECT_EQ(got.substr(0, 4), "a\xEF\xBF\xBD");
  EXPECT_EQ(got.back(), 'f');
}

TEST(Encode, AllFieldsRoundTrip) {
  Identity id;
  id.session_id = "s-42";
  id.client_addr = "10.1.2.3";
  id.client_port = 51234;
  id.listen_addr = "0.0.0.0:6432";
  id.tls_version = "TLSv1.3";
  id.client_cert_subject = "CN=deploy";
  id.client_cert_fingerprint = "sha256:ab";
  id.user = "app";
  id.database = "prod";
  id.application_name = "seed \"script\"";
  id.startup_parameters = {{"DateStyle", "ISO"}, {"password", "hunter2"}, {"PASSWORD", "x"}};
  id.auth_method = "scram-sha-256";
  id.backend_pid = 4242;
  Event ev;
  ev.type = EventType::kOutcome;
  ev.ts_us = 1714566896123456;
  ev.statement_id = 7;
  ev.statement = "DELETE FROM products WHERE code NOT IN ('a')";
  ev.fingerprint = "fp1";
  ev.classes = {"delete"};
  ev.tables_written = {"public.products"};
  ev.tables_read = {"public.codes"};
  ev.decision = "approved";
  ev.rule = "mass-delete";
  ev.token_id = "tok-1";
  ev.approver = "alice";
  ev.reason = "cleanup";
  ev.outcome = Outcome{"DELETE 42", 42, "", ""};
  ev.duration_us = 1500;
  ev.would_have_affected_rows = 42;
  ev.parameters = {std::string("1"), std::nullopt};
  ev.detail = "d";
  const std::string line = encode(id, ev);
  EXPECT_EQ(line.find("hunter2"), std::string::npos);
  EXPECT_EQ(line.find("PASSWORD"), std::string::npos);
  auto d = parse(line);
  EXPECT_STREQ(d["type"].GetString(), "outcome");
  EXPECT_STREQ(d["ts"].GetString(), "2024-05-01T12:34:56.123456Z");
  EXPECT_STREQ(d["session"].GetString(), "s-42");
  EXPECT_STREQ(d["client_addr"].GetString(), "10.1.2.3");
  EXPECT_EQ(d["client_port"].GetInt(), 51234);
  EXPECT_STREQ(d["tls"]["subject"].GetString(), "CN=deploy");
  EXPECT_STREQ(d["application_name"].GetString(), "seed \"script\"");
  EXPECT_STREQ(d["startup"]["DateStyle"].GetString(), "ISO");
  EXPECT_EQ(d["startup"].MemberCount(), 1u);
  EXPECT_STREQ(d["auth"].GetString(), "scram-sha-256");
  EXPECT_EQ(d["backend_pid"].GetInt(), 4242);
  EXPECT_EQ(d["statement_id"].GetInt(), 7);
  EXPECT_STREQ(d["tables_written"][0].GetString(), "public.products");
  EXPECT_STREQ(d["approval"]["approver"].GetString(), "alice");
  EXPECT_STREQ(d["outcome"]["tag"].GetString(), "DELETE 42");
  EXPECT_EQ(d["outcome"]["rows"].GetInt(), 42);
  EXPECT_EQ(d["duration_us"].GetInt(), 1500);
  EXPECT_EQ(d["would_have_affected_rows"].GetInt(), 42);
  EXPECT_TRUE(d["parameters"][1].IsNull());
  EXPECT_STREQ(d["detail"].GetString(), "d");
}

TEST(Encode, ErrorOutcomeAndEmptyOptionalFieldsLeftOut) {
  Event ev;
  ev.type = EventType::kRefusal;
  ev.outcome = Outcome{"", std::nullopt, "42501", "pgmoat: refused"};
  auto d = parse(encode(Identity{}, ev));
  EXPECT_STREQ(d["outcome"]["sqlstate"].GetString(), "42501");
  EXPECT_FALSE(d["outcome"].HasMember("tag"));
  EXPECT_FALSE(d.HasMember("tls"));
  EXPECT_FALSE(d.HasMember("statement"));
  EXPECT_FALSE(d.HasMember("approval"));
  EXPECT_TRUE(d.HasMember("user"));  // identity keys are always there
}

TEST(EventType, NamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(EventType::kRotate); ++i) {
    auto t = static_cast<EventType>(i);
    EXPECT_EQ(event_type_from_string(to_string(t)), t);
  }
  EXPECT_FALSE(event_type_from_string("nope"));
}

TEST(Timestamp, FormatAndParse) {
  EXPECT_EQ(format_timestamp(0), "1970-01-01T00:00:00.000000Z");
  // Expected values from `date -u -d <time> +%s`.
  EXPECT_EQ(format_timestamp(1709251199'000001), "2024-02-29T23:59:59.000001Z");
  EXPECT_EQ(format_timestamp(951868800'000000), "2000-03-01T00:00:00.000000Z");
  EXPECT_EQ(format_timestamp(1796006873'123456), "2026-11-30T02:47:53.123456Z");
  EXPECT_EQ(format_timestamp(-1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_timestamp(-1'000000), "1969-12-31T23:59:59.000000Z");
  EXPECT_EQ(parse_timestamp("2024-05-01T12:34:56.123456Z"), 1714566896123456);
  EXPECT_EQ(parse_timestamp("2024-05-01"), 1714521600000000);
  EXPECT_EQ(parse_timestamp("2024-05-01 12:34"), 1714566840000000);
  EXPECT_EQ(parse_timestamp("2024-05-01T14:34:56+02:00"), 1714566896000000);
  EXPECT_FALSE(parse_timestamp("yesterday"));
  EXPECT_FALSE(parse_timestamp("2024-13-01"));
  EXPECT_FALSE(parse_timestamp("2024-05-01T12:34:56Zjunk"));
  const std::int64_t now = now_us();
  EXPECT_EQ(parse_timestamp(format_timestamp(now)), now);
}

}  // namespace
}  // namespace pgmoat::audit
