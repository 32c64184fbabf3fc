// Does a rule's client match apply to this session?
#include "policy/policy.h"

namespace pgmoat::policy {
namespace {
bool any_glob(const std::vector<std::string>& globs, std::string_view value) {
  if (globs.empty()) return true;
  for (const auto& g : globs) {
    if (glob_match(g, value)) return true;
  }
  return false;
}
}  // namespace

bool ClientMatch::empty() const {
  return users.empty() && databases.empty() && application_names.empty() && client_addrs.empty() &&
         tls_subjects.empty();
}

bool ClientMatch::matches(const SessionContext& ctx) const {
  if (!any_glob(users, ctx.user) || !any_glob(databases, ctx.database) ||
      !any_glob(application_names, ctx.application_name)) {
    return false;
  }
  // No certificate never matches a subject pattern, not even "*".
  if (!tls_subjects.empty() &&
      (ctx.tls_subject.empty() || !any_glob(tls_subjects, ctx.tls_subject))) {
    return false;
  }
  if (!client_addrs.empty()) {
    auto ip = parse_ip(ctx.client_addr);
    if (!ip) return false;
    bool found = false;
    for (const auto& c : client_addrs) {
      if (c.contains(*ip)) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

}  // namespace pgmoat::policy
