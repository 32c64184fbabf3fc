// Does an approval (from a verified token) cover a statement that needs approval?
// Each check returns the first precise reason it does not, for the refusal's DETAIL.
#include <cstdio>

#include "policy/engine_detail.h"

namespace pgmoat::policy::detail {
namespace {
std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  for (const auto& x : v) {
    if (x == s) return true;
  }
  return false;
}

std::string missing_classes(parser::ClassSet missing) {
  std::string out;
  for (auto i = 0u; i < static_cast<unsigned>(parser::StatementClass::kCount); ++i) {
    auto c = static_cast<parser::StatementClass>(i);
    if (!parser::has(missing, c)) continue;
    if (!out.empty()) out += ", ";
    out += "`" + std::string(parser::class_name(c)) + "`";
  }
  return out;
}
}  // namespace

// Howard Hinnant's civil_from_days: no time zone database, no locale, no I/O.
std::string utc_text(std::int64_t unix_seconds) {
  std::int64_t days = unix_seconds / 86400;
  std::int64_t secs = unix_seconds % 86400;
  if (secs < 0) {
    secs += 86400;
    --days;
  }
  std::int64_t z = days + 719468;
  std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  std::int64_t doe = z - era * 146097;
  std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t y = yoe + era * 400;
  std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  std::int64_t mp = (5 * doy + 2) / 153;
  std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld %02lld:%02lld:%02lld UTC",
                static_cast<long long>(y), static_cast<long long>(m), static_cast<long long>(d),
                static_cast<long long>(secs / 3600), static_cast<long long>(secs / 60 % 60),
                static_cast<long long>(secs % 60));
  return buf;
}

std::optional<std::string> approval_gap(const Approval& a, const SessionContext& ctx,
                                        const parser::Statement& st, parser::ClassSet needed,
                                        std::int64_t used) {
  const std::string who = "approval " + a.id;
  if (ctx.now >= a.expires_at) return who + " expired at " + utc_text(a.expires_at);
  if (a.uses_left && *a.uses_left - used <= 0) {
    if (used == 0) return who + " has no uses left";
    return who + " has no uses left (" + std::to_string(used) +
           " used by earlier statements of this query)";
  }
  if (!a.databases.empty() && !contains(a.databases, ctx.database)) {
    return who + " is not valid for database \"" + ctx.database + "\" (only " + join(a.databases) +
           ")";
  }
  if (!a.users.empty() && !contains(a.users, ctx.user)) {
    return who + " is not valid for user \"" + ctx.user + "\" (only " + join(a.users) + ")";
  }
  if (a.application_name && !glob_match(*a.application_name, ctx.application_name)) {
    return who + " is not valid for application_name \"" + ctx.application_name + "\" (only " +
           *a.application_name + ")";
  }
  if (a.client_cidr) {
    auto net = parse_cidr(*a.client_cidr);
    if (!net) return who + " has an invalid client network \"" + *a.client_cidr + "\"";
    auto ip = parse_ip(ctx.client_addr);
    if (!ip || !net->contains(*ip)) {
      std::string addr = ctx.client_addr.empty() ? "local socket" : ctx.client_addr;
      return who + " is not valid for client address " + addr + " (only " + *a.client_cidr + ")";
    }
  }
  if (parser::ClassSet missing = needed & ~a.classes; missing != 0) {
    return who + " does not cover class " + missing_classes(missing);
  }
  if (!a.tables.empty()) {
    if (tables_unknown(st)) {
      return who + " covers only tables " + join(a.tables) + ", but " +
             (st.command.empty() ? std::string("this statement") : st.command) +
             " may affect any table";
    }
    for (const parser::TableRef* t : relevant_tables(st, needed)) {
      bool ok = false;
      for (const auto& g : a.tables) {
        if (table_glob_matches(g, t->name, Bias::permissive)) {
          ok = true;
          break;
        }
      }
      if (!ok) return who + " does not cover table " + t->name;
    }
  }
  return std::nullopt;
}

}  // namespace pgmoat::policy::detail
