#include "proxy/wire/messages.h"

#include <gtest/gtest.h>

#include "proxy/wire/protocol.h"

namespace pgmoat::wire {
namespace {

Bytes view(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

TEST(Startup, RoundTripsParameters) {
  StartupPacket p;
  p.code = kProtocolV3;
  p.params = {{"user", "alice"}, {"database", "shop"}, {"options", "-c a=b"}};
  std::string bytes = build_startup(p);
  EXPECT_EQ(read_u32(view(bytes).data()), bytes.size());
  std::string err;
  auto back = parse_startup(view(bytes), &err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(back->code, kProtocolV3);
  EXPECT_EQ(back->params, p.params);
  ASSERT_NE(back->get("database"), nullptr);
  EXPECT_EQ(*back->get("database"), "shop");
  EXPECT_EQ(back->get("nope"), nullptr);
}

TEST(Startup, RejectsMissingTerminator) {
  std::string bytes;
  put_u32(bytes, 0);
  put_u32(bytes, kProtocolV3);
  bytes += std::string("user\0alice", 10);  // no final NULs
  std::string len;
  put_u32(len, static_cast<std::uint32_t>(bytes.size()));
  bytes.replace(0, 4, len);
  std::string err;
  EXPECT_FALSE(parse_startup(view(bytes), &err));
  EXPECT_FALSE(err.empty());
}

TEST(Startup, ParsesCancelRequest) {
  std::string bytes = build_cancel_request(1234, 0xdeadbeef);
  auto p = parse_startup(view(bytes), nullptr);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->code, kCancelRequestCode);
  EXPECT_EQ(p->cancel_pid, 1234u);
  EXPECT_EQ(p->cancel_key, 0xdeadbeefu);
}

TEST(Startup, LengthMismatchIsRejected) {
  std::string bytes = build_cancel_request(1, 2);
  bytes.push_back('x');
  EXPECT_FALSE(parse_startup(view(bytes), nullptr));
}

TEST(ErrorResponse, BuildsAndParsesFields) {
  std::string e = error_response("ERROR", "42501", "pgmoat: no", "the detail", "the hint");
  auto f = parse_error(view(e));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->sqlstate(), "42501");
  EXPECT_EQ(f->message(), "pgmoat: no");
  ASSERT_NE(f->get('D'), nullptr);
  EXPECT_EQ(*f->get('D'), "the detail");
  ASSERT_NE(f->get('H'), nullptr);
  EXPECT_EQ(*f->get('H'), "the hint");
  EXPECT_EQ(build_error(*f), e);
}

TEST(ErrorResponse, TruncatedIsRejected) {
  std::string e = error_response("ERROR", "42501", "pgmoat: no");
  std::string cut = e.substr(0, e.size() - 3);
  std::string len;
  put_u32(len, static_cast<std::uint32_t>(cut.size() - 1));
  cut.replace(1, 4, len);
  EXPECT_FALSE(parse_error(view(cut)));
}

TEST(Query, RoundTrip) {
  std::string q = build_query("SELECT 1; DROP TABLE t");
  auto sql = parse_query(view(q));
  ASSERT_TRUE(sql);
  EXPECT_EQ(*sql, "SELECT 1; DROP TABLE t");
}

TEST(Query, MissingNulIsRejected) {
  std::string q = build_query("SELECT 1");
  q.back() = 'x';
  EXPECT_FALSE(parse_query(view(q)));
}

TEST(Parse, RoundTripKeepsParameterTypes) {
  std::string types;
  put_u16(types, 2);
  put_u32(types, 23);
  put_u32(types, 25);
  std::string m = build_parse("stmt1", "SELECT $1, $2", view(types));
  auto p = parse_parse(view(m));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->name, "stmt1");
  EXPECT_EQ(p->query, "SELECT $1, $2");
  EXPECT_EQ(std::string(p->param_types.begin(), p->param_types.end()), types);
}

TEST(Parse, WrongParameterCountIsRejected) {
  std::string types;
  put_u16(types, 3);  // claims 3, carries 1
  put_u32(types, 23);
  std::string m = build_parse("", "SELECT $1", view(types));
  EXPECT_FALSE(parse_parse(view(m)));
}

TEST(Bind, ValuesAsTextWithNullAndBinary) {
  std::string m;
  auto at = begin_message(m, 'B');
  put_cstr(m, "portal1");
  put_cstr(m, "stmt1");
  put_u16(m, 3);  // formats: text, binary, text
  put_u16(m, 0);
  put_u16(m, 1);
  put_u16(m, 0);
  put_u16(m, 3);  // values
  put_u32(m, 5);
  m += "hello";
  put_u32(m, 2);
  m += std::string("\x01\xff", 2);
  put_u32(m, 0xffffffffu);  // NULL
  put_u16(m, 0);            // result formats
  finish_message(m, at);
  auto names = parse_bind_names(view(m));
  ASSERT_TRUE(names);
  EXPECT_EQ(names->portal, "portal1");
  EXPECT_EQ(names->statement, "stmt1");
  auto v = parse_bind_values(view(m));
  ASSERT_TRUE(v);
  ASSERT_EQ(v->size(), 3u);
  EXPECT_EQ((*v)[0], "hello");
  EXPECT_EQ((*v)[1], "\\x01ff");
  EXPECT_EQ((*v)[2], std::nullopt);
  // Cut inside the second value: incomplete, not a guess.
  std::string cut = m.substr(0, 30);
  std::string len;
  put_u32(len, static_cast<std::uint32_t>(cut.size() - 1));
  cut.replace(1, 4, len);
  EXPECT_FALSE(parse_bind_values(view(cut)));
}

TEST(CommandComplete, ReadsRowCounts) {
  auto make = [](const std::string& tag) {
    std::string out;
    auto at = begin_message(out, 'C');
    put_cstr(out, tag);
    finish_message(out, at);
    return out;
  };
  struct Case {
    std::string tag;
    std::optional<std::uint64_t> rows;
  } cases[] = {{"DELETE 7", 7},           {"INSERT 0 1", 1},    {"UPDATE 10000", 10000},
               {"SELECT 0", 0},           {"CREATE TABLE", {}}, {"MERGE 3", 3},
               {"COPY 1000000", 1000000}, {"DROP TABLE", {}}};
  for (const auto& c : cases) {
    std::string m = make(c.tag);
    auto cc = parse_command_complete(view(m));
    ASSERT_TRUE(cc) << c.tag;
    EXPECT_EQ(cc->tag, c.tag);
    EXPECT_EQ(cc->rows, c.rows) << c.tag;
  }
}

TEST(Authentication, FiltersNothingButParsesSaslList) {
  std::string m = build_sasl_mechanisms({"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
  auto a = parse_authentication(view(m));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, 10u);
  ASSERT_EQ(a->sasl_mechanisms.size(), 2u);
  EXPECT_EQ(a->sasl_mechanisms[0], "SCRAM-SHA-256-PLUS");
  EXPECT_EQ(a->sasl_mechanisms[1], "SCRAM-SHA-256");
}

TEST(ReadyForQuery, OnlyKnownStatuses) {
  EXPECT_EQ(parse_ready_for_query(view(ready_for_query('T'))), 'T');
  EXPECT_FALSE(parse_ready_for_query(view(ready_for_query('x'))));
}

}  // namespace
}  // namespace pgmoat::wire
