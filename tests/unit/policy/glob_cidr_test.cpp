// Globs and CIDR networks used by client matches and approvals.
#include <gtest/gtest.h>

#include "policy/policy.h"

namespace pgmoat::policy {
namespace {

struct GlobCase {
  const char* pattern;
  const char* text;
  bool ignore_case;
  bool expected;
};

void PrintTo(const GlobCase& c, std::ostream* os) {
  *os << "'" << c.pattern << "' vs '" << c.text << "'";
}

class GlobTest : public ::testing::TestWithParam<GlobCase> {};

TEST_P(GlobTest, Matches) {
  const auto& c = GetParam();
  EXPECT_EQ(glob_match(c.pattern, c.text, c.ignore_case), c.expected)
      << "pattern '" << c.pattern << "' text '" << c.text << "'";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, GlobTest,
    ::testing::Values(
        GlobCase{"alice", "alice", false, true}, GlobCase{"alice", "alicex", false, false},
        GlobCase{"alice", "alic", false, false}, GlobCase{"*", "", false, true},
        GlobCase{"*", "anything", false, true}, GlobCase{"seed*", "seed-script", false, true},
        GlobCase{"seed*", "reseed", false, false}, GlobCase{"*seed*", "reseeded", false, true},
        GlobCase{"a*b*c", "aXXbYYc", false, true}, GlobCase{"a*b*c", "aXXbYY", false, false},
        GlobCase{"a*c", "abcbc", false, true}, GlobCase{"?", "x", false, true},
        GlobCase{"?", "", false, false}, GlobCase{"us?r", "user", false, true},
        GlobCase{"Alice", "alice", false, false}, GlobCase{"Alice", "alice", true, true},
        GlobCase{"[ab]", "[ab]", false, true},  // no character classes
        GlobCase{"[ab]", "a", false, false}, GlobCase{"", "", false, true},
        GlobCase{"", "x", false, false}, GlobCase{"CN=*,O=Acme", "CN=deploy,O=Acme", false, true}));

struct CidrCase {
  const char* cidr;
  const char* ip;
  bool expected;
};

void PrintTo(const CidrCase& c, std::ostream* os) {
  *os << c.cidr << " vs " << c.ip;
}

class CidrTest : public ::testing::TestWithParam<CidrCase> {};

TEST_P(CidrTest, Contains) {
  const auto& c = GetParam();
  auto net = parse_cidr(c.cidr);
  ASSERT_TRUE(net.has_value()) << c.cidr;
  auto ip = parse_ip(c.ip);
  ASSERT_TRUE(ip.has_value()) << c.ip;
  EXPECT_EQ(net->contains(*ip), c.expected) << c.cidr << " vs " << c.ip;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CidrTest,
    ::testing::Values(
        CidrCase{"10.0.0.0/8", "10.200.3.4", true}, CidrCase{"10.0.0.0/8", "11.0.0.1", false},
        CidrCase{"192.168.1.0/24", "192.168.1.255", true},
        CidrCase{"192.168.1.0/24", "192.168.2.1", false},
        CidrCase{"192.168.1.7", "192.168.1.7", true},  // plain IP = /32
        CidrCase{"192.168.1.7", "192.168.1.8", false}, CidrCase{"0.0.0.0/0", "203.0.113.9", true},
        CidrCase{"172.16.0.0/12", "172.31.255.255", true},
        CidrCase{"172.16.0.0/12", "172.32.0.0", false},
        // IPv4 clients on a dual-stack socket appear IPv4-mapped.
        CidrCase{"10.0.0.0/8", "::ffff:10.1.2.3", true},
        CidrCase{"2001:db8::/32", "2001:db8:1::5", true},
        CidrCase{"2001:db8::/32", "2001:db9::5", false},
        CidrCase{"::1", "::1", true},  // plain IPv6 = /128
        CidrCase{"::1", "::2", false}, CidrCase{"fe80::/10", "febf::1", true},
        CidrCase{"fe80::/10", "fec0::1", false}, CidrCase{"2001:db8::/32", "10.0.0.1", false},
        CidrCase{"10.0.0.0/8", "2001:db8::1", false}));

TEST(CidrParse, RejectsMalformed) {
  for (const char* bad :
       {"", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8x", "10.0.0/8", "300.0.0.1",
        "::1/129", "localhost", "10.0.0.1/8", "2001:db8::1/32", "/8", "10.0.0.0/8/8"}) {
    EXPECT_FALSE(parse_cidr(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(CidrParse, KeepsText) {
  auto c = parse_cidr("10.0.0.0/8");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->text, "10.0.0.0/8");
}

TEST(IpParse, RejectsNonAddresses) {
  EXPECT_FALSE(parse_ip("").has_value());
  EXPECT_FALSE(parse_ip("10.0.0.0/8").has_value());
  EXPECT_FALSE(parse_ip("db.internal").has_value());
}

}  // namespace
}  // namespace pgmoat::policy
