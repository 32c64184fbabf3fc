// ClientMatch: each attribute alone, combinations, lists, missing address / certificate.
#include <gtest/gtest.h>

#include "tests/unit/policy/test_support.h"

namespace pgmoat::policy::test {
namespace {

Cidr net(const char* text) {
  auto c = parse_cidr(text);
  EXPECT_TRUE(c.has_value()) << text;
  return c.value_or(Cidr{});
}

SessionContext ctx_with(std::string user, std::string db, std::string app, std::string addr,
                        std::string tls) {
  SessionContext ctx;
  ctx.user = std::move(user);
  ctx.database = std::move(db);
  ctx.application_name = std::move(app);
  ctx.client_addr = std::move(addr);
  ctx.tls_subject = std::move(tls);
  return ctx;
}

struct MatchCase {
  const char* name;
  ClientMatch match;
  bool expected;
};

// The session every case is matched against.
const SessionContext kCtx =
    ctx_with("deploy", "shop", "seed-products", "10.20.30.40", "CN=deploy-bot,O=Acme");

void PrintTo(const MatchCase& c, std::ostream* os) {
  *os << c.name;
}

class ClientMatchTest : public ::testing::TestWithParam<MatchCase> {};

TEST_P(ClientMatchTest, Matches) {
  EXPECT_EQ(GetParam().match.matches(kCtx), GetParam().expected) << GetParam().name;
}

ClientMatch users(std::vector<std::string> v) {
  ClientMatch m;
  m.users = std::move(v);
  return m;
}
ClientMatch dbs(std::vector<std::string> v) {
  ClientMatch m;
  m.databases = std::move(v);
  return m;
}
ClientMatch apps(std::vector<std::string> v) {
  ClientMatch m;
  m.application_names = std::move(v);
  return m;
}
ClientMatch addrs(std::vector<const char*> v) {
  ClientMatch m;
  for (const char* s : v) m.client_addrs.push_back(net(s));
  return m;
}
ClientMatch subjects(std::vector<std::string> v) {
  ClientMatch m;
  m.tls_subjects = std::move(v);
  return m;
}
ClientMatch combo(std::vector<std::string> u, std::vector<std::string> d,
                  std::vector<const char*> a) {
  ClientMatch m = addrs(std::move(a));
  m.users = std::move(u);
  m.databases = std::move(d);
  return m;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ClientMatchTest,
    ::testing::Values(MatchCase{"empty matches all", ClientMatch{}, true},
                      MatchCase{"user exact", users({"deploy"}), true},
                      MatchCase{"user other", users({"alice"}), false},
                      MatchCase{"user glob", users({"dep*"}), true},
                      MatchCase{"user list, second matches", users({"alice", "deploy"}), true},
                      MatchCase{"user case-sensitive", users({"Deploy"}), false},
                      MatchCase{"database exact", dbs({"shop"}), true},
                      MatchCase{"database other", dbs({"shop_test"}), false},
                      MatchCase{"database glob", dbs({"sh*"}), true},
                      MatchCase{"app glob", apps({"seed*"}), true},
                      MatchCase{"app other", apps({"psql"}), false},
                      MatchCase{"addr v4 net", addrs({"10.0.0.0/8"}), true},
                      MatchCase{"addr v4 host", addrs({"10.20.30.40"}), true},
                      MatchCase{"addr v4 other", addrs({"192.168.0.0/16"}), false},
                      MatchCase{"addr list", addrs({"192.168.0.0/16", "10.20.0.0/16"}), true},
                      MatchCase{"addr v6 net vs v4 client", addrs({"2001:db8::/32"}), false},
                      MatchCase{"tls glob", subjects({"CN=deploy-*"}), true},
                      MatchCase{"tls other", subjects({"CN=alice,O=Acme"}), false},
                      MatchCase{"all attributes match", combo({"deploy"}, {"shop"}, {"10.0.0.0/8"}),
                                true},
                      MatchCase{"one attribute fails (database)",
                                combo({"deploy"}, {"other"}, {"10.0.0.0/8"}), false},
                      MatchCase{"one attribute fails (address)",
                                combo({"deploy"}, {"shop"}, {"11.0.0.0/8"}), false}),
    CaseName());

TEST(ClientMatch, Ipv6Client) {
  SessionContext ctx = ctx_with("u", "d", "", "2001:db8:5::1", "");
  EXPECT_TRUE(addrs({"2001:db8::/32"}).matches(ctx));
  EXPECT_FALSE(addrs({"2001:db9::/32"}).matches(ctx));
  EXPECT_FALSE(addrs({"10.0.0.0/8"}).matches(ctx));
  EXPECT_TRUE(addrs({"::/0"}).matches(ctx));
}

TEST(ClientMatch, MappedIpv4ClientMatchesV4Network) {
  SessionContext ctx = ctx_with("u", "d", "", "::ffff:192.168.1.9", "");
  EXPECT_TRUE(addrs({"192.168.1.0/24"}).matches(ctx));
}

TEST(ClientMatch, UnixSocketClientNeverMatchesAddressList) {
  SessionContext ctx = ctx_with("u", "d", "", "", "");
  EXPECT_FALSE(addrs({"0.0.0.0/0"}).matches(ctx));
  EXPECT_FALSE(addrs({"::/0"}).matches(ctx));
  EXPECT_TRUE(ClientMatch{}.matches(ctx));
}

TEST(ClientMatch, NoCertificateNeverMatchesSubjectList) {
  SessionContext ctx = ctx_with("u", "d", "", "10.0.0.1", "");
  EXPECT_FALSE(subjects({"*"}).matches(ctx));
}

TEST(ClientMatch, EmptyApplicationNameMatchesStarOnly) {
  SessionContext ctx = ctx_with("u", "d", "", "10.0.0.1", "");
  EXPECT_TRUE(apps({"*"}).matches(ctx));
  EXPECT_FALSE(apps({"seed*"}).matches(ctx));
}

}  // namespace
}  // namespace pgmoat::policy::test
