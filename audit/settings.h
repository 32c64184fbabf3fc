// The [audit] section of the config file.
#pragma once

#include <cstdint>
#include <string>

#include "common/toml_reader.h"

namespace pgmoat::audit {

// Audit is on by default: pgmoat exists to answer "who ran that write". An operator who
// really wants no trail has to say `enabled = false`.
inline constexpr const char* kDefaultPath = "/var/lib/pgmoat/audit.jsonl";

struct Settings {
  enum class Statements { kWrites, kAll };
  enum class Durability { kFsync, kWrite };
  enum class Text { kFull, kNormalized };

  bool enabled = true;
  std::string path = kDefaultPath;  // the current file; rotated files sit next to it
  Statements statements = Statements::kWrites;
  Durability durability = Durability::kFsync;
  Text text = Text::kFull;
  bool parameters = false;         // record Bind parameter values
  std::uint64_t rotate_bytes = 0;  // 0: rotate only on rotate() (SIGHUP)
};

// Reads `[audit]` from the root table (absent section: defaults) and finish()es that
// sub-table, so an unknown key is a ConfigError "file:line:column: ...". The root itself is
// left alone. A relative `path` is taken relative to the config file's directory.
Settings load_settings(cfg::Table& root);

}  // namespace pgmoat::audit
