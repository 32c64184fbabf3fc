// The text of a refusal: what a client sees as the ErrorResponse's message, DETAIL and HINT.
#include "policy/engine_detail.h"

namespace pgmoat::policy::detail {
namespace {
using parser::StatementClass;

bool listed(const std::vector<std::string>& v, std::string_view s) {
  for (const auto& x : v) {
    if (x == s) return true;
  }
  return false;
}

// "drop (table) on public.users", "dangerous_function (pg_terminate_backend) ..."
std::string class_phrase(const parser::Statement& st, StatementClass matched,
                         const std::vector<std::string>& dangerous) {
  std::string out = "statement class " + std::string(parser::class_name(matched));
  std::string qualifier;
  if (matched == StatementClass::dangerous_function) {
    for (const auto& f : st.functions) {
      if (!listed(dangerous, f) || qualifier.find(f + "()") != std::string::npos) continue;
      if (!qualifier.empty()) qualifier += ", ";
      qualifier += f + "()";
    }
  } else {
    qualifier = st.object_type;
  }
  if (!qualifier.empty()) out += " (" + qualifier + ")";
  if (!st.target.empty()) out += " on " + st.target;
  return out;
}

}  // namespace

void ApprovalRequest::add(const parser::Statement& st, parser::ClassSet needed) {
  classes |= needed;
  if (tables_unknown(st)) any_table = true;
  for (const parser::TableRef* t : relevant_tables(st, needed)) {
    if (!listed(tables, t->name)) tables.push_back(t->name);
  }
}

// Matches the flags of `pgmoat token issue` (cli/token_command.cpp).
std::string ApprovalRequest::hint(const SessionContext& ctx) const {
  std::string cmd = "pgmoat token issue --key <approver key>";
  if (!ctx.database.empty()) cmd += " --database " + ctx.database;
  cmd += ctx.user.empty() ? std::string(" --any-user") : " --user " + ctx.user;
  cmd += " --classes " + parser::class_list(classes);
  if (!any_table) {
    for (std::size_t i = 0; i < tables.size(); ++i)
      cmd += (i == 0 ? " --tables " : ",") + tables[i];
  }
  return "Ask an approver for a token: " + cmd +
         " --reason '...', then SET pgmoat.approval = '<token>' in this session and run it "
         "again.";
}

ErrorText refusal_text(const parser::Statement& st, StatementClass matched, const Rule& rule,
                       const SessionContext& ctx, const std::vector<std::string>& dangerous,
                       parser::ClassSet needed, const std::vector<std::string>& approval_gaps) {
  ErrorText out;
  std::string command = st.command.empty() ? std::string("statement") : st.command;
  const char* verb = rule.action == Action::log ? " matched log rule \"" : " refused by rule \"";
  out.message = "pgmoat: " + command + verb + rule.name + "\"";
  if (!rule.message.empty()) out.message += ": " + rule.message;
  out.detail = class_phrase(st, matched, dangerous);
  for (const auto& gap : approval_gaps) out.detail += "; " + gap;
  if (rule.action == Action::require_approval) {
    ApprovalRequest request;
    request.add(st, needed);
    out.hint = request.hint(ctx);
  } else if (rule.action == Action::deny) {
    out.hint =
        "This statement is denied by policy; no approval token can allow it. Change the policy "
        "if it must run.";
  }
  return out;
}

ErrorText row_limit_text(const parser::Statement& st, StatementClass limited, const Rule& rule,
                         const SessionContext& ctx) {
  ErrorText out;
  out.message = "pgmoat: " + (st.command.empty() ? std::string("statement") : st.command) +
                (st.target.empty() ? std::string() : " on " + st.target) +
                " touched more rows than rule \"" + rule.name + "\" allows";
  if (!rule.message.empty()) out.message += ": " + rule.message;
  if (rule.action == Action::deny) {
    out.hint =
        "Over this limit the statement is denied by policy; no approval token can allow it. "
        "Touch fewer rows per statement, or change the policy.";
  } else {
    ApprovalRequest request;
    request.add(st, parser::bit(limited));
    out.hint = request.hint(ctx);
  }
  return out;
}

ErrorText parse_error_text(const parser::Classification& c) {
  ErrorText out;
  out.message = "pgmoat: statement could not be parsed (" +
                (c.error.empty() ? std::string("syntax error") : c.error) + ")";
  if (c.error_position > 0) {
    out.detail = "at character " + std::to_string(c.error_position);
  }
  out.hint =
      "pgmoat refuses SQL it cannot parse, because it cannot tell what it would do. Check the "
      "statement's syntax.";
  return out;
}

}  // namespace pgmoat::policy::detail
