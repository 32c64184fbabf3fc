#include "audit/settings.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace pgmoat::audit {
namespace {

using testing::TempDir;

Settings load(const TempDir& dir, const std::string& text) {
  const std::string file = dir.file("pgmoat.toml");
  testing::spit(file, text);
  toml::table doc = cfg::parse_file(file);
  cfg::Table root(doc, file, "");
  return load_settings(root);
}

std::string error_of(const TempDir& dir, const std::string& text) {
  try {
    load(dir, text);
  } catch (const cfg::ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(Settings, AbsentSectionIsOnWithDefaults) {
  TempDir dir;
  Settings s = load(dir, "[proxy]\nlisten = 'x'\n");
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ(s.path, kDefaultPath);
  EXPECT_EQ(s.statements, Settings::Statements::kWrites);
  EXPECT_EQ(s.durability, Settings::Durability::kFsync);
  EXPECT_EQ(s.text, Settings::Text::kFull);
  EXPECT_FALSE(s.parameters);
  EXPECT_EQ(s.rotate_bytes, 0u);
}

TEST(Settings, ReadsEveryKey) {
  TempDir dir;
  Settings s = load(dir,
                    "[audit]\nenabled = true\npath = 'logs/audit.jsonl'\nstatements = 'all'\n"
                    "durability = 'write'\ntext = 'normalized'\nparameters = true\n"
                    "rotate_bytes = 1048576\n");
  EXPECT_EQ(s.path, (dir.path() / "logs/audit.jsonl").string());  // relative to the config
  EXPECT_EQ(s.statements, Settings::Statements::kAll);
  EXPECT_EQ(s.durability, Settings::Durability::kWrite);
  EXPECT_EQ(s.text, Settings::Text::kNormalized);
  EXPECT_TRUE(s.parameters);
  EXPECT_EQ(s.rotate_bytes, 1048576u);
  EXPECT_FALSE(load(dir, "[audit]\nenabled = false\n").enabled);
  EXPECT_EQ(load(dir, "[audit]\npath = '/abs/a.jsonl'\n").path, "/abs/a.jsonl");
}

TEST(Settings, ErrorsNameFileLineAndColumn) {
  TempDir dir;
  const std::string f = dir.file("pgmoat.toml");
  EXPECT_EQ(error_of(dir, "[audit]\npath = '/a'\ndurability = 'sometimes'\n").rfind(f + ":3:", 0),
            0u);
  EXPECT_NE(error_of(dir, "[audit]\ndurability = 'sometimes'\n").find("\"fsync\" or \"write\""),
            std::string::npos);
  EXPECT_EQ(error_of(dir, "[audit]\nstatements = 'some'\n").rfind(f + ":2:", 0), 0u);
  EXPECT_EQ(error_of(dir, "[audit]\n\ntext = 3\n").rfind(f + ":3:", 0), 0u);
  EXPECT_EQ(error_of(dir, "[audit]\nrotate_bytes = -1\n").rfind(f + ":2:", 0), 0u);
  EXPECT_EQ(error_of(dir, "[audit]\nrotate_bytes = 10\n").rfind(f + ":2:", 0), 0u);
  EXPECT_EQ(error_of(dir, "[audit]\npath = ''\n").rfind(f + ":2:", 0), 0u);
  const std::string unknown = error_of(dir, "[audit]\npath = '/a'\nrotate_size = 5\n");
  EXPECT_EQ(unknown.rfind(f + ":3:", 0), 0u) << unknown;
  EXPECT_NE(unknown.find("rotate_size"), std::string::npos);
}

}  // namespace
}  // namespace pgmoat::audit
