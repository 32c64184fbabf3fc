// The whole pgmoat config file, read once: each section by the code that owns it, then a
// check that no key was left unread (a typo is an error, not a silent default).
#pragma once

#include <string>

#include "audit/settings.h"
#include "policy/approval_store.h"
#include "policy/policy.h"
#include "policy/token.h"
#include "proxy/settings.h"

namespace pgmoat::proxy {

struct AppConfig {
  std::string path;
  Settings proxy;
  policy::Policy policy;
  audit::Settings audit;
  policy::TrustedKeys approvers;
  policy::ApprovalSettings approvals;
};

// Throws cfg::ConfigError ("file:line:column: what is wrong").
AppConfig load_app_config(const std::string& path);

}  // namespace pgmoat::proxy
