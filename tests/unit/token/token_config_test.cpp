// `[[approvers]]` and `[approvals]` config loading.
#include <gtest/gtest.h>

#include "common/toml_reader.h"
#include "policy/approval_store.h"
#include "policy/token.h"
#include "test_util.h"

namespace pgmoat::policy {
namespace {

class TokenConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directory(dir_.path() / "keys");
    alice_ = generate_ed25519_key();
    write_public_key(*alice_, dir_.file("keys/alice.pub"));
    write_private_key(*alice_, dir_.file("keys/alice.key"));
  }

  // Loads approvers and settings from a config with this text; returns the error or "".
  std::string load(const std::string& text) {
    std::string path = dir_.write("pgmoat.toml", text);
    try {
      toml::table tbl = cfg::parse_file(path);
      cfg::Table root(tbl, path, "");
      keys_ = load_approvers(root);
      settings_ = load_approval_settings(root);
      return "";
    } catch (const cfg::ConfigError& e) {
      return e.what();
    }
  }

  // "file:line:column: " at the start, with the right line.
  void expect_error_at(const std::string& error, int line, const std::string& needle) {
    std::string prefix = dir_.file("pgmoat.toml") + ":" + std::to_string(line) + ":";
    ASSERT_TRUE(error.starts_with(prefix)) << error;
    // ...then the column and ": " (std::regex trips a GCC 12 warning in the sanitizer build).
    std::size_t col = error.find(':', prefix.size());
    ASSERT_NE(col, std::string::npos) << error;
    std::string column = error.substr(prefix.size(), col - prefix.size());
    EXPECT_FALSE(column.empty()) << error;
    EXPECT_EQ(column.find_first_not_of("0123456789"), std::string::npos) << error;
    EXPECT_EQ(error.substr(col, 2), ": ") << error;
    EXPECT_NE(error.find(needle), std::string::npos) << error;
  }

  test::TempDir dir_;
  KeyPtr alice_;
  TrustedKeys keys_;
  ApprovalSettings settings_;
};

TEST_F(TokenConfigTest, LoadsApproversRelativeToConfigDir) {
  KeyPtr bob = generate_ed25519_key();
  write_public_key(*bob, dir_.file("bob.pub"));
  std::string abs = dir_.file("bob.pub");
  ASSERT_EQ(load("[[approvers]]\nname = \"alice\"\npublic_key = \"keys/alice.pub\"\n"
                 "[[approvers]]\nname = \"bob\"\npublic_key = \"" +
                 abs + "\"\n"),
            "");
  ASSERT_EQ(keys_.approvers().size(), 2U);
  EXPECT_EQ(keys_.approvers()[0].name, "alice");
  EXPECT_EQ(keys_.approvers()[0].key_id, key_id(*alice_));
  EXPECT_EQ(keys_.approvers()[1].key_id, key_id(*bob));
  EXPECT_TRUE(keys_.approvers()[0].source.starts_with(dir_.file("pgmoat.toml") + ":1:"));
}

TEST_F(TokenConfigTest, NoApproversIsEmpty) {
  ASSERT_EQ(load("[proxy]\nlisten = \"x\"\n"), "");  // other sections are not ours to check
  EXPECT_TRUE(keys_.empty());
  EXPECT_FALSE(settings_.state_dir);
}

TEST_F(TokenConfigTest, MissingKeyFileNamesEntryAndPosition) {
  std::string e = load(
      "# approvers\n[[approvers]]\nname = \"alice\"\npublic_key = \"keys/alice.pub\"\n"
      "\n[[approvers]]\nname = \"carol\"\npublic_key = \"keys/carol.pub\"\n");
  expect_error_at(e, 8, "approvers[1] ('carol')");
  EXPECT_NE(e.find("carol.pub"), std::string::npos) << e;
}

TEST_F(TokenConfigTest, PrivateKeyWhereAPublicKeyBelongsIsAnError) {
  std::string e = load("[[approvers]]\nname = \"alice\"\npublic_key = \"keys/alice.key\"\n");
  expect_error_at(e, 3, "approvers[0] ('alice')");
}

TEST_F(TokenConfigTest, UnknownKeyInApproverEntry) {
  std::string e = load(
      "[[approvers]]\nname = \"alice\"\npublic_key = \"keys/alice.pub\"\n"
      "private_key = \"keys/alice.key\"\n");
  expect_error_at(e, 4, "unknown key 'approvers[0].private_key'");
}

TEST_F(TokenConfigTest, MissingNameOrBadName) {
  expect_error_at(load("\n[[approvers]]\npublic_key = \"keys/alice.pub\"\n"), 2, "needs a 'name'");
  expect_error_at(load("[[approvers]]\nname = \"a b\"\npublic_key = \"keys/alice.pub\"\n"), 2,
                  "approver name 'a b'");
  expect_error_at(load("[[approvers]]\nname = \"alice\"\n"), 1, "needs a 'public_key'");
  expect_error_at(load("[[approvers]]\nname = 7\npublic_key = \"keys/alice.pub\"\n"), 2,
                  "must be a string");
}

TEST_F(TokenConfigTest, SameKeyForTwoApproversIsAnError) {
  std::string e = load(
      "[[approvers]]\nname = \"alice\"\npublic_key = \"keys/alice.pub\"\n"
      "[[approvers]]\nname = \"mallory\"\npublic_key = \"keys/alice.pub\"\n");
  expect_error_at(e, 6, "already trusted for approver 'alice'");
}

TEST_F(TokenConfigTest, ApprovalSettingsResolveRelativePaths) {
  ASSERT_EQ(load("[approvals]\nstate_dir = \"state\"\nrevocation_list = \"/etc/revoked\"\n"), "");
  EXPECT_EQ(settings_.state_dir, dir_.file("state"));
  EXPECT_EQ(settings_.revocation_list, "/etc/revoked");
}

TEST_F(TokenConfigTest, ApprovalSettingsErrors) {
  expect_error_at(load("[approvals]\nstate_dir = \"s\"\nrevoke = \"x\"\n"), 3,
                  "unknown key 'approvals.revoke'");
  expect_error_at(load("[approvals]\nstate_dir = \"\"\n"), 2, "must not be empty");
  expect_error_at(load("[approvals]\nrevocation_list = 1\n"), 2, "must be a string");
}

}  // namespace
}  // namespace pgmoat::policy
