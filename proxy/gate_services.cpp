#include "proxy/gate_services.h"

#include <filesystem>

#include <spdlog/spdlog.h>

namespace pgmoat::proxy {

PolicySnapshot::PolicySnapshot(policy::Policy p) : policy(std::move(p)) {
  for (const auto& r : policy.rules) ruled |= r.classes;
}

bool PolicySnapshot::trivially_allowed(const parser::Classification& c) const {
  if (!c.ok) return false;
  const bool functions_matter = parser::has(ruled, parser::StatementClass::dangerous_function);
  for (const auto& st : c.statements) {
    if ((st.classes & ruled) != 0 || st.opaque) return false;
    if (!functions_matter) continue;
    for (const auto& f : st.functions) {
      for (const auto& d : policy.dangerous_functions) {
        if (f == d) return false;
      }
    }
  }
  return true;
}

std::shared_ptr<GateServices> make_gate_services(const AppConfig& config) {
  auto s = std::make_shared<GateServices>();
  s->policy.store(std::make_shared<const PolicySnapshot>(config.policy));
  s->approvers.store(std::make_shared<const policy::TrustedKeys>(config.approvers));
  if (config.approvals.revocation_list) {
    s->revocations = std::make_unique<policy::RevocationList>(*config.approvals.revocation_list);
  }
  if (config.approvals.state_dir) {
    s->approval_store = std::make_unique<policy::ApprovalStore>(*config.approvals.state_dir);
  }
  s->audit_settings = config.audit;
  if (config.audit.enabled) {
    try {
      // A fresh install has no /var/lib/pgmoat yet: make it, readable by pgmoat only.
      auto dir = std::filesystem::path(config.audit.path).parent_path();
      if (!dir.empty() && !std::filesystem::exists(dir)) {
        std::filesystem::create_directories(dir);
        std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
      }
      s->audit = std::make_unique<audit::AuditLog>(audit::AuditLog::options_from(config.audit));
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("audit.path: ") + e.what());
    }
  }
  return s;
}

void reload_gate_services(GateServices& services, const AppConfig& config) {
  services.policy.store(std::make_shared<const PolicySnapshot>(config.policy));
  services.policy_generation.fetch_add(1, std::memory_order_release);
  services.approvers.store(std::make_shared<const policy::TrustedKeys>(config.approvers));
  if (services.revocations) {
    if (std::string err = services.revocations->reload(); !err.empty()) {
      spdlog::error("revocation list not reloaded, keeping the previous one: {}", err);
    }
  }
  if (services.audit) services.audit->rotate();
  spdlog::info("policy reloaded: {} rules, mode {}", config.policy.rules.size(),
               policy::mode_name(config.policy.mode));
  log_cache_stats(services);
}

void log_cache_stats(const GateServices& services) {
  spdlog::info("classification cache: {} entries, {} hits, {} misses", services.cache.entries(),
               services.cache.hits(), services.cache.misses());
  if (services.audit) {
    const auto s = services.audit->stats();
    spdlog::info("audit: {} records in {} writes and {} fsyncs, {} failed, {} rotations", s.records,
                 s.batches, s.syncs, s.failed, s.rotations);
  }
}

}  // namespace pgmoat::proxy
