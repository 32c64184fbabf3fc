#include "audit/settings.h"

#include <filesystem>
#include <limits>

namespace pgmoat::audit {

Settings load_settings(cfg::Table& root) {
  Settings s;
  std::optional<cfg::Table> t = root.get_table("audit");
  if (!t) return s;

  s.enabled = t->get_bool("enabled", true);
  if (auto path = t->get_string("path")) {
    if (path->empty()) t->fail("path", "'audit.path' must not be empty");
    std::filesystem::path p(*path);
    if (p.is_relative() && !t->file().empty()) {
      p = std::filesystem::path(t->file()).parent_path() / p;
    }
    s.path = p.lexically_normal().string();
  }
  if (auto v = t->get_string("statements")) {
    if (*v == "writes") {
      s.statements = Settings::Statements::kWrites;
    } else if (*v == "all") {
      s.statements = Settings::Statements::kAll;
    } else {
      t->fail("statements", "'audit.statements' must be \"writes\" or \"all\", got \"" + *v + "\"");
    }
  }
  if (auto v = t->get_string("durability")) {
    if (*v == "fsync") {
      s.durability = Settings::Durability::kFsync;
    } else if (*v == "write") {
      s.durability = Settings::Durability::kWrite;
    } else {
      t->fail("durability",
              "'audit.durability' must be \"fsync\" or \"write\", got \"" + *v + "\"");
    }
  }
  if (auto v = t->get_string("text")) {
    if (*v == "full") {
      s.text = Settings::Text::kFull;
    } else if (*v == "normalized") {
      s.text = Settings::Text::kNormalized;
    } else {
      t->fail("text", "'audit.text' must be \"full\" or \"normalized\", got \"" + *v + "\"");
    }
  }
  s.parameters = t->get_bool("parameters", false);
  s.rotate_bytes = static_cast<std::uint64_t>(
      t->get_int("rotate_bytes", 0, 0, std::numeric_limits<std::int64_t>::max()));
  if (s.rotate_bytes != 0 && s.rotate_bytes < 4096) {
    t->fail("rotate_bytes", "'audit.rotate_bytes' must be 0 (no size rotation) or at least 4096");
  }
  t->finish();
  return s;
}

}  // namespace pgmoat::audit
