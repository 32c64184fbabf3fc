#include "proxy/gate_services.h"

namespace pgmoat::proxy {

std::shared_ptr<GateServices> make_gate_services(const AppConfig& config) {
  auto s = std::make_shared<GateServices>();
  s->policy.store(std::make_shared<const policy::Policy>(config.policy));
  return s;
}

void reload_gate_services(GateServices& services, const AppConfig& config) {
  services.policy.store(std::make_shared<const policy::Policy>(config.policy));
}

}  // namespace pgmoat::proxy
