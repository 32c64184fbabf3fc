#include "audit/verify.h"

#include <gtest/gtest.h>

#include "audit/audit_log.h"
#include "audit/files.h"
#include "audit/record.h"
#include "test_util.h"

namespace pgmoat::audit {
namespace {

using testing::join_lines;
using testing::lines_of;
using testing::slurp;
using testing::spit;
using testing::TempDir;

// Writes `n` statement records (seq 1..n) to dir/audit.jsonl, then rotates and writes
// `after_rotation` more when that is not 0. Returns the files oldest first.
std::vector<std::string> make_trail(const TempDir& dir, int n, int after_rotation = 0) {
  AuditLog::Options o;
  o.path = dir.file("audit.jsonl");
  AuditLog log(o);
  Identity id;
  id.user = "app";
  for (int i = 1; i <= n; ++i) {
    Event ev;
    ev.statement = "DELETE FROM t WHERE id = " + std::to_string(i);
    EXPECT_TRUE(log.append_sync(encode(id, ev)));
  }
  if (after_rotation != 0) {
    EXPECT_TRUE(log.rotate_sync());
    for (int i = 0; i < after_rotation; ++i) {
      Event ev;
      ev.statement = "UPDATE t SET x = " + std::to_string(i);
      EXPECT_TRUE(log.append_sync(encode(id, ev)));
    }
  }
  return list_audit_files(o.path);
}

VerifyIssue error_of(const std::vector<std::string>& files) {
  VerifyReport rep = verify_files(files);
  EXPECT_FALSE(rep.ok);
  return rep.error.value_or(VerifyIssue{"", 0, 0, "<no error>"});
}

TEST(Verify, WholeChainPasses) {
  TempDir dir;
  auto files = make_trail(dir, 10);
  VerifyReport rep = verify_files(files);
  EXPECT_TRUE(rep.ok);
  EXPECT_EQ(rep.records, 10u);
  EXPECT_EQ(rep.first_seq, 1u);
  EXPECT_EQ(rep.last_seq, 10u);
  EXPECT_EQ(rep.head_hash.size(), 64u);
}

TEST(Verify, OneEditedByteNamesThatRecord) {
  TempDir dir;
  auto files = make_trail(dir, 10);
  auto lines = lines_of(slurp(files[0]));
  const std::size_t at = lines[4].find("id = 5");
  ASSERT_NE(at, std::string::npos);
  lines[4][at + 5] = '6';  // "id = 5" -> "id = 6": still valid JSON
  spit(files[0], join_lines(lines));
  VerifyIssue e = error_of(files);
  EXPECT_EQ(e.line, 5u);
  EXPECT_EQ(e.seq, 5u);
  EXPECT_NE(e.message.find("modified"), std::string::npos) << to_string(e);
}

TEST(Verify, DeletedRecordIsNamed) {
  TempDir dir;
  auto files = make_trail(dir, 10);
  auto lines = lines_of(slurp(files[0]));
  lines.erase(lines.begin() + 4);  // seq 5
  spit(files[0], join_lines(lines));
  VerifyIssue e = error_of(files);
  EXPECT_EQ(e.line, 5u);  // where seq 5 should have been (now holds seq 6)
  EXPECT_EQ(e.seq, 6u);
  EXPECT_NE(e.message.find("records missing: seq 5 "), std::string::npos) << to_string(e);
}

TEST(Verify, SwappedRecordsAreNamed) {
  TempDir dir;
  auto files = make_trail(dir, 10);
  auto lines = lines_of(slurp(files[0]));
  std::swap(lines[3], lines[4]);  // seq 4 and 5
  spit(files[0], join_lines(lines));
  VerifyIssue e = error_of(files);
  EXPECT_EQ(e.line, 4u);
  EXPECT_EQ(e.seq, 5u);
  EXPECT_NE(e.message.find("out of order"), std::string::npos) << to_string(e);
}

TEST(Verify, DeletedFirstRecordIsCaught) {
  TempDir dir;
  auto files = make_trail(dir, 3);
  auto lines = lines_of(slurp(files[0]));
  lines.erase(lines.begin());
  spit(files[0], join_lines(lines));
  VerifyIssue e = error_of(files);
  EXPECT_EQ(e.line, 1u);
  EXPECT_EQ(e.seq, 2u);
  EXPECT_NE(e.message.find("does not start here"), std::string::npos) << to_string(e);
}

TEST(Verify, BrokenJsonLineIsNamed) {
  TempDir dir;
  auto files = make_trail(dir, 5);
  auto lines = lines_of(slurp(files[0]));
  lines[2].pop_back();  // drop the closing brace
  spit(files[0], join_lines(lines));
  VerifyIssue e = error_of(files);
  EXPECT_EQ(e.line, 3u);
  EXPECT_NE(e.message.find("not an audit record"), std::string::npos);
}

TEST(Verify, TruncatedInTheMiddleBeforeARotatedFileIsCaught) {
  TempDir dir;
  auto files = make_trail(dir, 10, 3);
  ASSERT_EQ(files.size(), 2u);
  const std::string data = slurp(files[0]);
  const auto lines = lines_of(data);
  // Cut in the middle of seq 6.
  std::size_t cut = 0;
  for (int i = 0; i < 5; ++i) cut += lines[static_cast<std::size_t>(i)].size() + 1;
  spit(files[0], data.substr(0, cut + 20));
  VerifyReport rep = verify_files(files);
  ASSERT_FALSE(rep.ok);
  EXPECT_EQ(rep.error->file, files[1]);
  EXPECT_EQ(rep.error->line, 1u);
  EXPECT_NE(rep.error->message.find("records missing: seq 6..10"), std::string::npos)
      << to_string(*rep.error);
  ASSERT_EQ(rep.warnings.size(), 1u);
  EXPECT_EQ(rep.warnings[0].line, 6u);
}

TEST(Verify, TornLastLineIsAWarningNotTampering) {
  TempDir dir;
  auto files = make_trail(dir, 4);
  const std::string data = slurp(files[0]);
  spit(files[0], data.substr(0, data.size() - 30));  // crash in the middle of seq 4
  VerifyReport rep = verify_files(files);
  EXPECT_TRUE(rep.ok);
  EXPECT_EQ(rep.records, 3u);
  ASSERT_EQ(rep.warnings.size(), 1u);
  EXPECT_EQ(rep.warnings[0].line, 4u);
  EXPECT_NE(rep.warnings[0].message.find("torn last record (crash?)"), std::string::npos);
}

TEST(Verify, MissingMiddleFileIsCaught) {
  TempDir dir;
  std::vector<std::string> files;
  {
    AuditLog::Options o;
    o.path = dir.file("audit.jsonl");
    AuditLog log(o);
    for (int r = 0; r < 3; ++r) {
      ASSERT_TRUE(log.append_sync(encode(Identity{}, Event{})));
      ASSERT_TRUE(log.rotate_sync());
    }
    ASSERT_TRUE(log.append_sync(encode(Identity{}, Event{})));
    files = list_audit_files(o.path);
  }
  ASSERT_EQ(files.size(), 4u);
  EXPECT_TRUE(verify_files(files).ok);
  VerifyIssue e = error_of({files[0], files[2], files[3]});
  EXPECT_EQ(e.file, files[2]);
  EXPECT_EQ(e.line, 1u);
}

TEST(Files, SortsRotatedFilesOldestFirstAndCurrentLast) {
  std::vector<std::string> files = {"d/audit.jsonl", "d/audit.jsonl.20240502T000000.1",
                                    "d/audit.jsonl.20240501T000000.10",
                                    "d/audit.jsonl.20240501T000000.2"};
  sort_audit_files(files);
  EXPECT_EQ(files, (std::vector<std::string>{"d/audit.jsonl.20240501T000000.2",
                                             "d/audit.jsonl.20240501T000000.10",
                                             "d/audit.jsonl.20240502T000000.1", "d/audit.jsonl"}));
}

TEST(Files, ReadTailFindsTheLastCompleteLine) {
  TempDir dir;
  const std::string f = dir.file("x");
  spit(f, "a\nbb\nccc");
  Tail t = read_tail(f);
  EXPECT_EQ(t.last_line, "bb");
  EXPECT_EQ(t.torn_bytes, 3u);
  spit(f, std::string(200000, 'z') + "\n" + std::string(100000, 'q') + "\n");
  t = read_tail(f);
  EXPECT_EQ(t.last_line, std::string(100000, 'q'));
  EXPECT_EQ(t.torn_bytes, 0u);
  spit(f, "only torn");
  t = read_tail(f);
  EXPECT_FALSE(t.last_line);
  EXPECT_EQ(t.torn_bytes, 9u);
}

}  // namespace
}  // namespace pgmoat::audit
