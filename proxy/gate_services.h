// What the statement gates of all sessions share: the current policy and approvers (swapped
// atomically on reload), the classification cache, approval state and the audit log.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "audit/audit_log.h"
#include "parser/classify.h"
#include "policy/approval_store.h"
#include "policy/policy.h"
#include "policy/token.h"
#include "proxy/app_config.h"

namespace pgmoat::proxy {

// A loaded policy plus what the hot path needs to skip evaluate() when it cannot matter.
struct PolicySnapshot {
  explicit PolicySnapshot(policy::Policy p);
  policy::Policy policy;
  parser::ClassSet ruled = 0;  // every class some rule names
  // True when no rule can match any statement of `c`: evaluate() would allow it all with no
  // rule, no flag and no approval (the common case: reads under the default policy).
  bool trivially_allowed(const parser::Classification& c) const;
};

struct GateServices {
  // Swapped on reload; `policy_generation` counts the swaps. A gate keeps its own reference
  // and loads again only when the count moved: loading the atomic shared_ptr writes its lock
  // and reference count, which would move between cores on every statement.
  std::atomic<std::shared_ptr<const PolicySnapshot>> policy;
  std::atomic<std::uint64_t> policy_generation{0};
  std::atomic<std::shared_ptr<const policy::TrustedKeys>> approvers;
  parser::ClassificationCache cache;
  std::unique_ptr<policy::RevocationList> revocations;    // null: none configured
  std::unique_ptr<policy::ApprovalStore> approval_store;  // null: tokens with max_uses refused
  std::unique_ptr<audit::AuditLog> audit;                 // null: auditing off
  audit::Settings audit_settings;
};

// Opens the audit log and the approval state. Throws std::runtime_error naming what failed.
std::shared_ptr<GateServices> make_gate_services(const AppConfig& config);
// SIGHUP: swaps in the new policy and approvers, re-reads the revocation list and rotates the
// audit file. Never throws.
void reload_gate_services(GateServices& services, const AppConfig& config);
// Log lines with the classification cache's size and hit/miss counts and the audit writer's
// record, write and fsync counts (SIGHUP, shutdown).
void log_cache_stats(const GateServices& services);

}  // namespace pgmoat::proxy
