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

// A max_rows rule that decided one class of a statement.
struct Limit {
  const Rule* rule;
  StatementClass cls;
};

// Approvals one statement uses: `uses[i]` counts the statements of this query that
// (*ctx.approvals)[i] allowed so far; `used` lists the approvals this statement took a use of.
class ApprovalUses {
 public:
  ApprovalUses(const SessionContext& ctx, std::vector<std::int64_t>& uses)
      : ctx_(ctx), uses_(uses) {}
  std::size_t size() const { return ctx_.approvals == nullptr ? 0 : ctx_.approvals->size(); }
  const Approval& at(std::size_t i) const { return (*ctx_.approvals)[i]; }
  // Uses of approval i by other statements of the query.
  std::int64_t others(std::size_t i) const { return uses_[i] - (taken(i) ? 1 : 0); }
  bool taken(std::size_t i) const { return std::find(used.begin(), used.end(), i) != used.end(); }
  void take(std::size_t i, StatementVerdict& v) {
    if (taken(i)) return;
    ++uses_[i];
    used.push_back(i);
    if (v.approval_id.empty()) v.approval_id = at(i).id;
  }
  std::vector<std::size_t> used;
  // What a token for this statement should cover: the classes that need approval and those
  // under a row limit an approval can lift (a token for the first only would let the statement
  // run into the limit).
  parser::ClassSet wanted = 0;

 private:
  const SessionContext& ctx_;
  std::vector<std::int64_t>& uses_;
};

// Sets the tightest row limit (ties: the first class) that no approval lifts. An approval
// lifts the limit on a class it covers; an approval this statement already uses does so
// without another use. Limits of deny rules are never lifted, and nothing is lifted (no use
// spent) on a statement refused for another reason.
void apply_row_limits(StatementVerdict& v, const parser::Statement& st,
                      const std::vector<Limit>& limits, bool refused, const SessionContext& ctx,
                      const Policy& policy, ApprovalUses& approvals) {
  for (const auto& [rule, c] : limits) {
    bool lifted = false;
    if (!refused && rule->action != Action::deny) {
      for (std::size_t i : approvals.used) {
        if (!approval_gap(approvals.at(i), ctx, st, parser::bit(c), approvals.others(i))) {
          lifted = true;
          break;
        }
      }
      for (std::size_t i = 0; i < approvals.size() && !lifted; ++i) {
        if (approvals.taken(i)) continue;
        if (approval_gap(approvals.at(i), ctx, st, parser::bit(c), approvals.others(i))) continue;
        approvals.take(i, v);
        lifted = true;
      }
    }
    if (lifted) continue;
    if (v.row_limit && v.row_limit->max_rows <= *rule->max_rows) continue;
    RowLimit limit;
    limit.max_rows = *rule->max_rows;
    limit.rule = rule->name;
    limit.limited_class = c;
    limit.action = rule->action;
    limit.enforce = rule->action != Action::log && policy.mode == Mode::enforce;
    ErrorText text = row_limit_text(st, c, *rule, ctx);
    limit.message = std::move(text.message);
    limit.hint = std::move(text.hint);
    v.row_limit = std::move(limit);
  }
}

StatementVerdict evaluate_statement(const parser::Statement& st, const SessionContext& ctx,
                                    const Policy& policy, RuleClients& clients,
                                    ApprovalUses& approvals) {
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
  // A max_rows rule decides its class too, but only at run time: it sets a row limit.
  const Rule* worst = nullptr;
  std::vector<Limit> limits;
  parser::ClassSet liftable = 0;  // limited classes an approval may lift (not deny rules)
  for (auto ci = 0u; ci < static_cast<unsigned>(StatementClass::kCount); ++ci) {
    auto c = static_cast<StatementClass>(ci);
    if (!parser::has(v.classes, c)) continue;
    for (std::size_t ri = 0; ri < policy.rules.size(); ++ri) {
      const Rule& r = policy.rules[ri];
      if (!parser::has(r.classes, c) || !clients.matches(ri)) continue;
      if (!rule_tables_match(r.tables, st, parser::bit(c), bias_of(r.action))) continue;
      if (r.max_rows) {
        limits.push_back({&r, c});
        if (r.action != Action::deny) liftable |= parser::bit(c);
        break;
      }
      if (r.action == Action::require_approval) v.approval_classes |= parser::bit(c);
      if (worst == nullptr || severity(r.action) > severity(worst->action)) {
        worst = &r;
        v.matched_class = c;
      }
      break;
    }
  }

  approvals.wanted = v.approval_classes | liftable;
  bool refused = false;  // by a deny rule, or by require_approval without an approval
  if (worst != nullptr) {
    v.action = worst->action;
    v.rule = worst->name;
  }
  if (worst != nullptr && worst->action != Action::allow) {
    bool approved = false;
    std::vector<std::string> gaps;
    if (worst->action == Action::require_approval) {
      // Prefer an approval that also lifts the statement's row limits: one token, one use.
      for (std::size_t i = 0; i < approvals.size() && liftable != 0 && !approved; ++i) {
        if (approval_gap(approvals.at(i), ctx, st, v.approval_classes | liftable,
                         approvals.others(i))) {
          continue;
        }
        approvals.take(i, v);
        approved = true;
      }
      for (std::size_t i = 0; i < approvals.size() && !approved; ++i) {
        auto gap = approval_gap(approvals.at(i), ctx, st, v.approval_classes, approvals.others(i));
        if (!gap) {
          approvals.take(i, v);
          approved = true;
        } else {
          gaps.push_back(std::move(*gap));
        }
      }
    }
    if (!approved) {
      ErrorText text = refusal_text(st, *v.matched_class, *worst, ctx, policy.dangerous_functions,
                                    approvals.wanted, gaps);
      v.message = std::move(text.message);
      v.detail = std::move(text.detail);
      v.hint = std::move(text.hint);
      refused = worst->action != Action::log;
      if (worst->action == Action::log || policy.mode == Mode::monitor) {
        v.would_refuse = true;
      } else {
        v.allowed = false;
      }
    }
  }
  if (!limits.empty()) apply_row_limits(v, st, limits, refused, ctx, policy, approvals);
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
  std::vector<parser::ClassSet> wanted;  // per statement, for the query's approval hint
  wanted.reserve(c.statements.size());
  std::optional<std::size_t> first_shadow;
  for (const auto& st : c.statements) {
    ApprovalUses approvals(ctx, uses);
    StatementVerdict v = evaluate_statement(st, ctx, policy, clients, approvals);
    wanted.push_back(approvals.wanted);
    std::size_t index = d.statements.size();
    if (!v.allowed && !d.first_refused) d.first_refused = index;
    if (v.would_refuse && !first_shadow) first_shadow = index;
    // Every approval the statement used (a second one may have lifted a row limit).
    for (std::size_t i : approvals.used) {
      const std::string& id = approvals.at(i).id;
      auto it = std::find(d.approvals_used.begin(), d.approvals_used.end(), id);
      if (it == d.approvals_used.end()) {
        d.approvals_used.push_back(id);
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
        request.add(c.statements[i], wanted[i]);
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
