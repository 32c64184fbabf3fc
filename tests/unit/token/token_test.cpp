// Token format and verification (policy/token_codec.cpp, policy/token_verify.cpp).
#include <gtest/gtest.h>

#include <string>

#include "policy/approval_store.h"
#include "policy/policy.h"
#include "policy/token.h"
#include "policy/token_internal.h"

namespace pgmoat::policy {
namespace {

using parser::StatementClass;

constexpr std::int64_t kNow = 1'700'000'000;

class TokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alice_ = generate_ed25519_key();
    keys_.add("alice", alice_);
  }

  TokenClaims claims() const {
    TokenClaims c;
    c.id = "0123456789abcdef";
    c.approver = "alice";
    c.reason = "drop the old audit tables (TICKET-42)";
    c.issued_at = kNow;
    c.expires_at = kNow + 900;
    c.databases = {"app"};
    c.users = {"deploy"};
    c.application_name = "migrate*";
    c.client_cidr = "10.0.0.0/8";
    c.classes = parser::bit(StatementClass::drop) | parser::bit(StatementClass::truncate);
    c.tables = {"audit.*"};
    c.max_uses = 3;
    return c;
  }

  VerifyResult verify(const std::string& token, std::int64_t now = kNow + 10,
                      const RevocationList* revoked = nullptr) const {
    return verify_token(token, keys_, now, revoked);
  }

  KeyPtr alice_;
  TrustedKeys keys_;
};

// Replaces the character at `pos` with a different character of the token alphabet.
std::string flip(std::string token, std::size_t pos) {
  token[pos] = token[pos] == 'A' ? 'B' : 'A';
  return token;
}

TEST_F(TokenTest, RoundTripKeepsEveryClaim) {
  std::string token = sign_token(claims(), *alice_);
  VerifyResult r = verify(token);
  ASSERT_TRUE(r.ok()) << r.message;
  ASSERT_TRUE(r.claims);
  TokenClaims expected = claims();
  expected.key_id = key_id(*alice_);
  EXPECT_EQ(*r.claims, expected);
}

TEST_F(TokenTest, MinimalClaimsRoundTrip) {
  TokenClaims c = claims();
  c.users.clear();
  c.application_name.reset();
  c.client_cidr.reset();
  c.tables.clear();
  c.max_uses.reset();
  VerifyResult r = verify(sign_token(c, *alice_));
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_TRUE(r.claims->users.empty());
  EXPECT_FALSE(r.claims->max_uses);
  EXPECT_FALSE(r.claims->client_cidr);
}

TEST_F(TokenTest, TokenUsesOnlyUrlAndLibpqOptionSafeCharacters) {
  TokenClaims c = claims();
  c.reason = "quotes \" and 'single', backslash \\ spaces, unicode \xc3\xa9, = + / ?";
  std::string token = sign_token(c, *alice_);
  EXPECT_TRUE(token.starts_with("pgmoat1."));
  for (char ch : token) {
    bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.';
    EXPECT_TRUE(ok) << "unexpected character '" << ch << "' in " << token;
  }
  EXPECT_TRUE(looks_like_token(token));
  VerifyResult r = verify(token);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.claims->reason, c.reason);
}

TEST_F(TokenTest, TamperedPayloadCharacterIsBadSignature) {
  std::string token = sign_token(claims(), *alice_);
  std::size_t payload_start = token.find('.') + 1;
  std::size_t payload_end = token.find('.', payload_start);
  // Every position inside the payload (the last char may make base64 non-canonical instead).
  for (std::size_t pos = payload_start; pos + 1 < payload_end; ++pos) {
    VerifyResult r = verify(flip(token, pos));
    ASSERT_FALSE(r.ok()) << "position " << pos;
    EXPECT_TRUE(r.error == TokenError::bad_signature || r.error == TokenError::unknown_signer)
        << "position " << pos << ": " << token_error_name(*r.error) << ": " << r.message;
    EXPECT_FALSE(r.claims) << "position " << pos;
  }
}

TEST_F(TokenTest, WellFormedButChangedPayloadIsBadSignature) {
  // A forger who keeps the JSON valid and widens the scope keeps the old signature.
  std::string token = sign_token(claims(), *alice_);
  TokenClaims wider = claims();
  wider.key_id = key_id(*alice_);
  wider.databases = {"app", "billing"};
  wider.expires_at += 86400;
  std::string forged =
      "pgmoat1." + base64url_encode(encode_payload(wider)) + token.substr(token.rfind('.'));
  VerifyResult r = verify(forged);
  EXPECT_EQ(r.error, TokenError::bad_signature) << r.message;
  EXPECT_FALSE(r.claims);
}

TEST_F(TokenTest, TamperedSignatureIsBadSignature) {
  std::string token = sign_token(claims(), *alice_);
  std::size_t sig_start = token.rfind('.') + 1;
  VerifyResult r = verify(flip(token, sig_start + 10));
  EXPECT_EQ(r.error, TokenError::bad_signature) << r.message;
  EXPECT_FALSE(r.claims);
}

TEST_F(TokenTest, SwappedSignatureFromAnotherTokenIsBadSignature) {
  std::string a = sign_token(claims(), *alice_);
  TokenClaims other = claims();
  other.id = "fedcba9876543210";
  std::string b = sign_token(other, *alice_);
  std::string mixed = a.substr(0, a.rfind('.')) + b.substr(b.rfind('.'));
  EXPECT_EQ(verify(mixed).error, TokenError::bad_signature);
}

TEST_F(TokenTest, UntrustedKeyIsUnknownSigner) {
  KeyPtr mallory = generate_ed25519_key();
  VerifyResult r = verify(sign_token(claims(), *mallory));
  EXPECT_EQ(r.error, TokenError::unknown_signer) << r.message;
  EXPECT_FALSE(r.claims);
  EXPECT_NE(r.message.find(key_id(*mallory)), std::string::npos) << r.message;
}

TEST_F(TokenTest, NoTrustedKeysMeansNoValidToken) {
  TrustedKeys none;
  VerifyResult r = verify_token(sign_token(claims(), *alice_), none, kNow + 10);
  EXPECT_EQ(r.error, TokenError::unknown_signer);
}

TEST_F(TokenTest, TrustedKeyClaimingAnotherApproverIsRefused) {
  keys_.add("bob", generate_ed25519_key());
  TokenClaims c = claims();
  c.approver = "bob";  // alice signs, but the audit trail would say bob
  VerifyResult r = verify(sign_token(c, *alice_));
  EXPECT_EQ(r.error, TokenError::approver_mismatch) << r.message;
}

TEST_F(TokenTest, ExpiredAtExpiryWithUtcTime) {
  std::string token = sign_token(claims(), *alice_);
  EXPECT_TRUE(verify(token, kNow + 899).ok());
  VerifyResult r = verify(token, kNow + 900);
  EXPECT_EQ(r.error, TokenError::expired);
  EXPECT_NE(r.message.find("expired at 2023-11-14 22:28:20 UTC"), std::string::npos) << r.message;
  ASSERT_TRUE(r.claims);  // still says which token it was
  EXPECT_EQ(r.claims->id, "0123456789abcdef");
}

TEST_F(TokenTest, NotYetValidBeyondClockSkew) {
  std::string token = sign_token(claims(), *alice_);
  EXPECT_TRUE(verify(token, kNow - kClockSkewSeconds).ok());
  VerifyResult r = verify(token, kNow - kClockSkewSeconds - 1);
  EXPECT_EQ(r.error, TokenError::not_yet_valid) << r.message;
}

TEST_F(TokenTest, RevokedInMemory) {
  std::string token = sign_token(claims(), *alice_);
  RevocationList list;
  list.add("aaaaaaaaaaaaaaaa");
  EXPECT_TRUE(verify(token, kNow + 10, &list).ok());
  list.add("0123456789abcdef");
  VerifyResult r = verify(token, kNow + 10, &list);
  EXPECT_EQ(r.error, TokenError::revoked);
  EXPECT_EQ(token_error_name(*r.error), "revoked");
}

TEST_F(TokenTest, BadBase64IsMalformed) {
  std::string token = sign_token(claims(), *alice_);
  std::size_t payload_start = token.find('.') + 1;
  for (char bad : {'!', '=', '+', '/', ' ', '\\'}) {
    std::string t = token;
    t[payload_start + 3] = bad;
    EXPECT_EQ(verify(t).error, TokenError::malformed) << "char " << bad;
  }
  std::string padded = token + "==";
  EXPECT_EQ(verify(padded).error, TokenError::malformed);
  EXPECT_EQ(verify(token.substr(0, token.size() - 2)).error, TokenError::malformed);
}

TEST_F(TokenTest, WrongVersionPrefix) {
  std::string token = sign_token(claims(), *alice_);
  std::string v2 = "pgmoat2" + token.substr(7);
  VerifyResult r = verify(v2);
  EXPECT_EQ(r.error, TokenError::unsupported_version) << r.message;
  EXPECT_EQ(verify("jwt" + token.substr(7)).error, TokenError::malformed);
}

TEST_F(TokenTest, WrongShapeIsMalformed) {
  for (std::string t : {"", "pgmoat1", "pgmoat1.", "pgmoat1..", "pgmoat1.abc", "pgmoat1.a.b.c",
                        "pgmoat1.e30.", "pgmoat1..e30"}) {
    VerifyResult r = verify(t);
    EXPECT_EQ(r.error, TokenError::malformed) << "'" << t << "'";
  }
  EXPECT_EQ(verify(std::string(kMaxTokenLength + 1, 'a')).error, TokenError::malformed);
}

TEST_F(TokenTest, SignedPayloadWithUnknownFieldIsMalformed) {
  TokenClaims c = claims();
  c.key_id = key_id(*alice_);
  std::string json = encode_payload(c);
  json.insert(json.size() - 1, ",\"new_restriction\":\"x\"");
  VerifyResult r = verify(detail::sign_payload(json, *alice_));
  EXPECT_EQ(r.error, TokenError::malformed);
  EXPECT_NE(r.message.find("new_restriction"), std::string::npos) << r.message;
}

TEST_F(TokenTest, SignedPayloadFieldChecks) {
  TokenClaims base = claims();
  base.key_id = key_id(*alice_);
  struct Case {
    const char* name;
    std::string from;
    std::string to;
  };
  std::string json = encode_payload(base);
  const Case cases[] = {
      {"unknown class", "\"drop\"", "\"drop_everything\""},
      {"no databases", "\"db\":[\"app\"]", "\"db\":[]"},
      {"exp before iat", "\"exp\":1700000900", "\"exp\":1699999999"},
      {"id not hex", "\"id\":\"0123456789abcdef\"", "\"id\":\"0123456789abcdeg\""},
      {"bad cidr", "\"10.0.0.0/8\"", "\"10.0.0.0/99\""},
      {"zero max uses", "\"max_uses\":3", "\"max_uses\":0"},
      {"version 2", "\"v\":1", "\"v\":2"},
      {"duplicate field", "\"v\":1", "\"v\":1,\"v\":1"},
      {"missing reason", "\"reason\":\"drop the old audit tables (TICKET-42)\",", ""},
  };
  for (const Case& k : cases) {
    std::string changed = json;
    std::size_t at = changed.find(k.from);
    ASSERT_NE(at, std::string::npos) << k.name;
    changed.replace(at, k.from.size(), k.to);
    VerifyResult r = verify(detail::sign_payload(changed, *alice_));
    EXPECT_EQ(r.error, TokenError::malformed) << k.name << ": " << r.message;
  }
}

TEST_F(TokenTest, DecodeUnverifiedNeverChecksSignature) {
  KeyPtr mallory = generate_ed25519_key();
  VerifyResult r = decode_unverified(sign_token(claims(), *mallory));
  ASSERT_TRUE(r.claims);
  EXPECT_EQ(r.claims->databases, std::vector<std::string>{"app"});
  EXPECT_EQ(decode_unverified("pgmoat1.!!.aa").error, TokenError::malformed);
}

TEST(Base64Url, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 40; ++i) {
    std::string enc = base64url_encode(bytes);
    EXPECT_EQ(enc.find('='), std::string::npos);
    auto dec = base64url_decode(enc);
    ASSERT_TRUE(dec) << i;
    EXPECT_EQ(*dec, bytes);
    bytes += static_cast<char>(static_cast<unsigned char>(i * 37 + 251));
  }
}

TEST(Base64Url, KnownVectorsAndStrictness) {
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64url_encode("fo"), "Zm8");
  EXPECT_FALSE(base64url_decode("Zm8="));  // padding
  EXPECT_FALSE(base64url_decode("Zm9"));   // non-canonical trailing bits ("fo" is Zm8)
  EXPECT_FALSE(base64url_decode("Z"));     // 4k+1 characters
  EXPECT_FALSE(base64url_decode("Zm+v"));  // standard alphabet
  EXPECT_EQ(base64url_decode(""), std::string());
}

TEST(LooksLikeToken, Shapes) {
  EXPECT_TRUE(looks_like_token("pgmoat1.abc.def"));
  EXPECT_TRUE(looks_like_token("pgmoat2.abc.def"));  // verification says which version
  EXPECT_FALSE(looks_like_token("on"));
  EXPECT_FALSE(looks_like_token("pgmoat1.abc"));
  EXPECT_FALSE(looks_like_token("pgmoat1..def"));
  EXPECT_FALSE(looks_like_token("pgmoat1.abc.def."));
  EXPECT_FALSE(looks_like_token("pgmoat1.a c.def"));
  EXPECT_FALSE(looks_like_token("pgmoat1.a=.def"));
}

TEST(ToApproval, CopiesEveryField) {
  TokenClaims c;
  c.id = "0123456789abcdef";
  c.approver = "alice";
  c.reason = "why";
  c.issued_at = 10;
  c.expires_at = 20;
  c.databases = {"app"};
  c.users = {"deploy"};
  c.application_name = "migrate*";
  c.client_cidr = "10.0.0.0/8";
  c.classes = parser::bit(StatementClass::drop);
  c.tables = {"public.*"};
  c.max_uses = 2;
  Approval a = to_approval(c);
  EXPECT_EQ(a.id, c.id);
  EXPECT_EQ(a.approver, "alice");
  EXPECT_EQ(a.reason, "why");
  EXPECT_EQ(a.expires_at, 20);
  EXPECT_EQ(a.databases, c.databases);
  EXPECT_EQ(a.users, c.users);
  EXPECT_EQ(a.application_name, c.application_name);
  EXPECT_EQ(a.client_cidr, c.client_cidr);
  EXPECT_EQ(a.classes, c.classes);
  EXPECT_EQ(a.tables, c.tables);
  EXPECT_EQ(a.uses_left, 2);
}

TEST(NewTokenId, IsSixteenHexAndRandom) {
  std::string a = new_token_id();
  std::string b = new_token_id();
  EXPECT_TRUE(valid_token_id(a)) << a;
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace pgmoat::policy
