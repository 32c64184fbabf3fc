// Key files (policy/token_keys.cpp).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>
#include <fstream>

#include "policy/token.h"
#include "test_util.h"

namespace pgmoat::policy {
namespace {

TEST(TokenKeys, PrivateKeyFileIsMode0600AndNeverOverwritten) {
  test::TempDir dir;
  KeyPtr key = generate_ed25519_key();
  std::string path = dir.file("alice.key");
  write_private_key(*key, path);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);

  KeyPtr other = generate_ed25519_key();
  EXPECT_THROW(write_private_key(*other, path), std::runtime_error);
  // The original key is still there.
  EXPECT_EQ(key_id(*load_private_key(path)), key_id(*key));
}

TEST(TokenKeys, PublicKeyRoundTripsAndVerifiesTokens) {
  test::TempDir dir;
  KeyPtr key = generate_ed25519_key();
  write_private_key(*key, dir.file("alice.key"));
  write_public_key(*key, dir.file("alice.pub"));
  KeyPtr priv = load_private_key(dir.file("alice.key"));
  KeyPtr pub = load_public_key(dir.file("alice.pub"));
  EXPECT_EQ(key_id(*pub), key_id(*key));
  EXPECT_EQ(key_id(*pub).size(), 16U);

  TrustedKeys keys;
  keys.add("alice", pub);
  TokenClaims c;
  c.id = new_token_id();
  c.approver = "alice";
  c.issued_at = 100;
  c.expires_at = 200;
  c.databases = {"app"};
  c.classes = parser::bit(parser::StatementClass::truncate);
  EXPECT_TRUE(verify_token(sign_token(c, *priv), keys, 150).ok());
}

TEST(TokenKeys, LoadErrorsNameThePath) {
  test::TempDir dir;
  std::string missing = dir.file("nope.pub");
  try {
    load_public_key(missing);
    FAIL() << "loaded a missing file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  std::string junk = dir.write("junk.pub", "not a key\n");
  EXPECT_THROW(load_public_key(junk), std::runtime_error);
  // A private key file is not a public key file.
  KeyPtr key = generate_ed25519_key();
  write_private_key(*key, dir.file("k.key"));
  EXPECT_THROW(load_public_key(dir.file("k.key")), std::runtime_error);
}

TEST(TokenKeys, NonEd25519KeysAreRefused) {
  test::TempDir dir;
  EVP_PKEY* ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  ASSERT_NE(ec, nullptr);
  KeyPtr ec_key(ec, EVP_PKEY_free);
  {
    FILE* f = std::fopen(dir.file("ec.pub").c_str(), "w");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(PEM_write_PUBKEY(f, ec), 1);
    std::fclose(f);
  }
  try {
    load_public_key(dir.file("ec.pub"));
    FAIL() << "accepted an EC key";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not an Ed25519 key"), std::string::npos) << e.what();
  }
  TrustedKeys keys;
  EXPECT_THROW(keys.add("ec", ec_key), std::invalid_argument);
  TokenClaims c;
  EXPECT_THROW(sign_token(c, *ec_key), std::invalid_argument);
}

TEST(TokenKeys, SameKeyUnderTwoNamesIsRefused) {
  KeyPtr key = generate_ed25519_key();
  TrustedKeys keys;
  keys.add("alice", key);
  EXPECT_THROW(keys.add("bob", key), std::invalid_argument);
  EXPECT_NO_THROW(keys.add("alice", generate_ed25519_key()));  // a second key for alice
  EXPECT_EQ(keys.approvers().size(), 2U);
}

}  // namespace
}  // namespace pgmoat::policy
