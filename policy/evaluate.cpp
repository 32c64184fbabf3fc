// evaluate(): classification + session + policy -> decision. See policy.h for the semantics.
#include <algorithm>
#include <exception>

#include "policy/engine_detail.h"

namespace pgmoat::policy {
namespace {
using parser::StatementClass;
using namespace detail;

int severity(Action a) {
  switch (a) {
    case Action::allow:
      return 0;
    case Action::log:
      return 1;
    case Action::require_approval:
      return 2;
    case Action::deny:
      return 3;
  }
  return 3;
}

bool listed(const std::vector<std::string>& v, std::string_view s) {
  for (const auto& x : v) {
    if (x == s) return true;
  }
  return false;
}

// Evaluates each rule's client match at most once per call.
class RuleClients {
 public:
  RuleClients(const Policy& p, const SessionContext& ctx)
      : policy_(p), ctx_(ctx), state_(p.rules.size(), kUnknown) {}
  bool matches(std::size_t i) {
    if (state_[i] == kUnknown) state_[i] = policy_.rules[i].match.matches(ctx_) ? kYes : kNo;
    return state_[i] == kYes;
  }

 private:
  static constexpr signed char kUnknown = -1, kNo = 0, kYes = 1;
  const Policy& policy_;
  const SessionContext& ctx_;
  std::vector<signed char> state_;
};

// `uses[i]`: statements of this query already allowed by (*ctx.approvals)[i].
StatementVerdict evaluate_statement(const parser::Statement& st, const SessionContext& ctx,
                                    const Policy& policy, RuleClients& clients,
                                    std::vector<std::int64_t>& uses) {
  StatementVerdict v;
  v.command = st.command;
  v.target = st.target;
  v.classes = st.classes;
  for (const auto& f : st.functions) {
    if (listed(policy.dangerous_functions, f)) {
      v.classes |= parser::bit(StatementClass::dangerous_function);
      break;
    }
  }

  // Each class is decided by its own first matching rule; the statement takes the worst.
  const Rule* worst = nullptr;
  for (auto ci = 0u; ci < static_cast<unsigned>(StatementClass::kCount); ++ci) {
    auto c = static_cast<StatementClass>(ci);
    if (!parser::has(v.classes, c)) continue;
    for (std::size_t ri = 0; ri < policy.rules.size(); ++ri) {
      const Rule& r = policy.rules[ri];
      if (!parser::has(r.classes, c) || !clients.matches(ri)) continue;
      if (!rule_tables_match(r.tables, st, parser::bit(c), bias_of(r.action))) continue;
      if (r.action == Action::require_approval) v.approval_classes |= parser::bit(c);
      if (worst == nullptr || severity(r.action) > severity(worst->action)) {
        worst = &r;
        v.matched_class = c;
      }
      break;
    }
  }
  if (worst == nullptr) return v;
  v.action = worst->action;
  v.rule = worst->name;
  if (worst->action == Action::allow) return v;

  std::vector<std::string> gaps;
  if (worst->action == Action::require_approval && ctx.approvals != nullptr) {
    for (std::size_t i = 0; i < ctx.approvals->size(); ++i) {
      const Approval& a = (*ctx.approvals)[i];
      auto gap = approval_gap(a, ctx, st, v.approval_classes, uses[i]);
      if (!gap) {
        v.approval_id = a.id;
        ++uses[i];
        return v;
      }
      gaps.push_back(std::move(*gap));
    }
  }
  ErrorText text = refusal_text(st, *v.matched_class, *worst, ctx, policy.dangerous_functions,
                                v.approval_classes, gaps);
  v.message = std::move(text.message);
  v.detail = std::move(text.detail);
  v.hint = std::move(text.hint);
  if (worst->action == Action::log || policy.mode == Mode::monitor) {
    v.would_refuse = true;
  } else {
    v.allowed = false;
  }
  return v;
}

Decision evaluate_impl(const parser::Classification& c, const SessionContext& ctx,
                       const Policy& policy) {
  Decision d;
  if (!c.ok) {
    d.parse_error = true;
    ErrorText text = parse_error_text(c);
    d.message = std::move(text.message);
    d.detail = std::move(text.detail);
    d.hint = std::move(text.hint);
    if (policy.on_parse_error == OnParseError::allow) return d;
    if (policy.mode == Mode::monitor) {
      d.would_refuse = true;
    } else {
      d.allowed = false;
    }
    return d;
  }
  RuleClients clients(policy, ctx);
  std::vector<std::int64_t> uses(ctx.approvals != nullptr ? ctx.approvals->size() : 0, 0);
  d.statements.reserve(c.statements.size());
  std::optional<std::size_t> first_shadow;
  for (const auto& st : c.statements) {
    StatementVerdict v = evaluate_statement(st, ctx, policy, clients, uses);
    std::size_t index = d.statements.size();
    if (!v.allowed && !d.first_refused) d.first_refused = index;
    if (v.would_refuse && !first_shadow) first_shadow = index;
    if (!v.approval_id.empty()) {
      auto it = std::find(d.approvals_used.begin(), d.approvals_used.end(), v.approval_id);
      if (it == d.approvals_used.end()) {
        d.approvals_used.push_back(v.approval_id);
        d.approval_uses.push_back(1);
      } else {
        ++d.approval_uses[static_cast<std::size_t>(it - d.approvals_used.begin())];
      }
    }
    d.allowed = d.allowed && v.allowed;
    d.would_refuse = d.would_refuse || v.would_refuse;
    d.statements.push_back(std::move(v));
  }
  if (!d.first_refused) d.first_refused = first_shadow;
  if (d.first_refused) {
    const StatementVerdict& v = d.statements[*d.first_refused];
    d.message = v.message;
    d.detail = v.detail;
    d.hint = v.hint;
    if (v.action == Action::require_approval) {
      // One token for every statement of the query that needs one, not just the first.
      ApprovalRequest request;
      for (std::size_t i = 0; i < d.statements.size(); ++i) {
        if (d.statements[i].action != Action::require_approval) continue;
        request.add(c.statements[i], d.statements[i].approval_classes);
      }
      d.hint = request.hint(ctx);
    }
  }
  return d;
}
}  // namespace

Decision evaluate(const parser::Classification& c, const SessionContext& ctx,
                  const Policy& policy) noexcept {
  try {
    return evaluate_impl(c, ctx, policy);
  } catch (...) {
    // Fail closed. Allocation failure is the only expected cause; keep this path small.
    Decision d;
    d.allowed = false;
    try {
      d.message = "pgmoat: internal error while evaluating the policy";
    } catch (...) {
    }
    return d;
  }
}

}  // namespace pgmoat::policy
