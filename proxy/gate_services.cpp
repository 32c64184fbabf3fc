#include "proxy/gate_services.h"

#include <spdlog/spdlog.h>

namespace pgmoat::proxy {

std::shared_ptr<GateServices> make_gate_services(const AppConfig& config) {
  auto s = std::make_shared<GateServices>();
  s->policy.store(std::make_shared<const policy::Policy>(config.policy));
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
      s->audit = std::make_unique<audit::AuditLog>(audit::AuditLog::options_from(config.audit));
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("audit.path: ") + e.what());
    }
  }
  return s;
}

void reload_gate_services(GateServices& services, const AppConfig& config) {
  services.policy.store(std::make_shared<const policy::Policy>(config.policy));
  services.approvers.store(std::make_shared<const policy::TrustedKeys>(config.approvers));
  if (services.revocations) {
    if (std::string err = services.revocations->reload(); !err.empty()) {
      spdlog::error("revocation list not reloaded, keeping the previous one: {}", err);
    }
  }
  if (services.audit) services.audit->rotate();
  spdlog::info("policy reloaded: {} rules, mode {}", config.policy.rules.size(),
               policy::mode_name(config.policy.mode));
}

}  // namespace pgmoat::proxy
