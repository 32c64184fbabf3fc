// Durable use counts and revocation lists (policy/approval_store.cpp).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>
#include <vector>

#include "policy/approval_store.h"
#include "policy/token.h"
#include "test_util.h"

namespace pgmoat::policy {
namespace {

constexpr const char* kId = "0123456789abcdef";

TEST(ApprovalStore, CountsUpToMaxUses) {
  test::TempDir dir;
  ApprovalStore store(dir.file("state"));
  EXPECT_EQ(store.uses(kId), 0);
  EXPECT_TRUE(store.try_consume(kId, 3));
  EXPECT_TRUE(store.try_consume(kId, 3));
  EXPECT_TRUE(store.try_consume(kId, 3));
  EXPECT_FALSE(store.try_consume(kId, 3));
  EXPECT_FALSE(store.try_consume(kId, 3));
  EXPECT_EQ(store.uses(kId), 3);
  EXPECT_EQ(store.uses("fedcba9876543210"), 0);  // other tokens are separate
  EXPECT_TRUE(store.try_consume("fedcba9876543210", 1));
}

TEST(ApprovalStore, UnlimitedStillRecordsUses) {
  test::TempDir dir;
  ApprovalStore store(dir.path().string());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(store.try_consume(kId, std::nullopt));
  EXPECT_EQ(store.uses(kId), 5);
}

TEST(ApprovalStore, CountsSurviveANewInstance) {
  test::TempDir dir;
  {
    ApprovalStore store(dir.path().string());
    EXPECT_TRUE(store.try_consume(kId, 2));
  }
  ApprovalStore again(dir.path().string());
  EXPECT_EQ(again.uses(kId), 1);
  EXPECT_TRUE(again.try_consume(kId, 2));
  EXPECT_FALSE(again.try_consume(kId, 2));
  ApprovalStore third(dir.path().string());
  EXPECT_EQ(third.uses(kId), 2);
  EXPECT_FALSE(third.try_consume(kId, 2));
}

TEST(ApprovalStore, TornLastLineCountsAsAUse) {
  test::TempDir dir;
  ApprovalStore store(dir.path().string());
  ASSERT_TRUE(store.try_consume(kId, 5));
  { std::ofstream(dir.file(std::string(kId) + ".uses"), std::ios::app) << "17000"; }
  EXPECT_EQ(store.uses(kId), 2);
}

TEST(ApprovalStore, RefusesIdsThatAreNotTokenIds) {
  test::TempDir dir;
  ApprovalStore store(dir.path().string());
  std::string error;
  EXPECT_FALSE(store.try_consume("../../etc/passwd", 5, &error));
  EXPECT_NE(error.find("invalid token id"), std::string::npos) << error;
  EXPECT_FALSE(store.try_consume("0123456789ABCDEF", 5));
  EXPECT_THROW(store.uses("x"), std::invalid_argument);
}

TEST(ApprovalStore, UnwritableUseFileFailsClosed) {
  // A directory where the use file belongs cannot be opened for writing, even by root.
  test::TempDir dir;
  ApprovalStore store(dir.path().string());
  std::filesystem::create_directory(dir.path() / (std::string(kId) + ".uses"));
  std::string error;
  EXPECT_FALSE(store.try_consume(kId, 5, &error));
  EXPECT_NE(error.find("cannot open"), std::string::npos) << error;
  EXPECT_FALSE(store.try_consume(kId, std::nullopt));
}

TEST(ApprovalStore, ConcurrentThreadsNeverOverConsume) {
  test::TempDir dir;
  ApprovalStore store(dir.path().string());
  constexpr int kThreads = 8;
  constexpr int kAttempts = 25;
  constexpr std::int64_t kMax = 60;
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kAttempts; ++i) {
        if (store.try_consume(kId, kMax)) granted.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted.load(), kMax);
  EXPECT_EQ(store.uses(kId), kMax);
}

TEST(ApprovalStore, ConcurrentInstancesInOneProcessNeverOverConsume) {
  // Separate instances do not share the mutex: only flock keeps them apart.
  test::TempDir dir;
  constexpr std::int64_t kMax = 40;
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      ApprovalStore own(dir.path().string());
      for (int i = 0; i < 10; ++i) {
        if (own.try_consume(kId, kMax)) granted.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted.load(), kMax);
}

TEST(ApprovalStore, ConcurrentProcessesNeverOverConsume) {
  test::TempDir dir;
  constexpr int kProcs = 4;
  constexpr int kAttempts = 15;
  constexpr std::int64_t kMax = 30;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ApprovalStore store(dir.path().string());
      int mine = 0;
      for (int i = 0; i < kAttempts; ++i) {
        if (store.try_consume(kId, kMax)) ++mine;
      }
      ::_exit(mine);  // granted count as exit status (< 256)
    }
    pids.push_back(pid);
  }
  int granted = 0;
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    granted += WEXITSTATUS(status);
  }
  EXPECT_EQ(granted, kMax);
  EXPECT_EQ(ApprovalStore(dir.path().string()).uses(kId), kMax);
}

TEST(RevocationList, ReadsIdsCommentsAndPastedTokens) {
  test::TempDir dir;
  KeyPtr key = generate_ed25519_key();
  TokenClaims c;
  c.id = "aaaaaaaaaaaaaaaa";
  c.approver = "alice";
  c.issued_at = 1;
  c.expires_at = 2;
  c.databases = {"app"};
  c.classes = parser::bit(parser::StatementClass::drop);
  std::string token = sign_token(c, *key);
  std::string path = dir.write("revoked",
                               "# revoked tokens\n0123456789abcdef  # leaked in chat\n"
                               "\n   fedcba9876543210\r\n" +
                                   token + "\n");
  RevocationList list(path);
  EXPECT_TRUE(list.is_revoked("0123456789abcdef"));
  EXPECT_TRUE(list.is_revoked("fedcba9876543210"));
  EXPECT_TRUE(list.is_revoked("aaaaaaaaaaaaaaaa"));
  EXPECT_FALSE(list.is_revoked("1111111111111111"));
  EXPECT_FALSE(list.is_revoked("# revoked tokens"));
}

TEST(RevocationList, ReloadPicksUpChangesAndKeepsListWhenFileVanishes) {
  test::TempDir dir;
  std::string path = dir.write("revoked", "0123456789abcdef\n");
  RevocationList list(path);
  EXPECT_FALSE(list.is_revoked("fedcba9876543210"));
  dir.write("revoked", "0123456789abcdef\nfedcba9876543210\n");
  EXPECT_EQ(list.reload(), "");
  EXPECT_TRUE(list.is_revoked("fedcba9876543210"));
  std::filesystem::remove(path);
  std::string error = list.reload();
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_TRUE(list.is_revoked("fedcba9876543210"));  // nothing un-revoked
}

TEST(RevocationList, MissingFileAtStartIsAnError) {
  test::TempDir dir;
  EXPECT_THROW(RevocationList(dir.file("nope")), std::runtime_error);
}

TEST(RevocationList, RevokedTokenFailsVerification) {
  test::TempDir dir;
  KeyPtr key = generate_ed25519_key();
  TrustedKeys keys;
  keys.add("alice", key);
  TokenClaims c;
  c.id = new_token_id();
  c.approver = "alice";
  c.issued_at = 100;
  c.expires_at = 1000;
  c.databases = {"app"};
  c.classes = parser::bit(parser::StatementClass::drop);
  std::string token = sign_token(c, *key);
  RevocationList list(dir.write("revoked", "# none yet\n"));
  EXPECT_TRUE(verify_token(token, keys, 200, &list).ok());
  dir.write("revoked", c.id + "\n");
  ASSERT_EQ(list.reload(), "");
  VerifyResult r = verify_token(token, keys, 200, &list);
  EXPECT_EQ(r.error, TokenError::revoked);
}

}  // namespace
}  // namespace pgmoat::policy
