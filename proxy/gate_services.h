// What the statement gates of all sessions share: the current policy (swapped atomically on
// reload), the classification cache, the audit log and the approval state.
#pragma once

#include <atomic>
#include <memory>

#include "parser/classify.h"
#include "policy/policy.h"
#include "proxy/app_config.h"

namespace pgmoat::proxy {

struct GateServices {
  std::atomic<std::shared_ptr<const policy::Policy>> policy;
  parser::ClassificationCache cache;
};

std::shared_ptr<GateServices> make_gate_services(const AppConfig& config);
// Replaces what can change at runtime (the policy). Never throws.
void reload_gate_services(GateServices& services, const AppConfig& config);

}  // namespace pgmoat::proxy
