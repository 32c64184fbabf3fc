// `pgmoat check`: what the policy would decide for some SQL, without a server. Exit codes:
// 0 every statement would run, 1 at least one would be refused, 2 usage or config error.
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "common/toml_reader.h"
#include "parser/classify.h"
#include "policy/approval_store.h"
#include "policy/policy.h"
#include "policy/token.h"
#include "proxy/app_config.h"

namespace pgmoat::cli {
namespace {

constexpr const char* kCheckHelp =
    "usage: pgmoat check [OPTIONS] (-c SQL | -f FILE | reads stdin)\n"
    "\n"
    "Shows what the policy would decide for each statement, without a server: one line per\n"
    "statement (decision, classes, rule, target), then the error a refused statement gets.\n"
    "A DELETE, UPDATE or MERGE under a row limit (a max_rows rule) shows as LIMIT <rows>: it\n"
    "runs, pgmoat counts the rows it touches, and over the limit refuses it (a log rule or\n"
    "monitor mode only records it).\n"
    "A whole migration file is checked at once; if any statement would be refused, pgmoat\n"
    "refuses the whole query string.\n"
    "\n"
    "  --config FILE            config file (default: $PGMOAT_CONFIG; one of them is required)\n"
    "  -c, --command SQL        the SQL to check\n"
    "  -f, --file FILE          read the SQL from FILE (`-` = stdin); default: stdin\n"
    "  --user USER              session user (default: $PGUSER, else $USER)\n"
    "  --database DB            database (default: $PGDATABASE, else the user)\n"
    "  --application-name NAME  application_name (default: empty)\n"
    "  --client-addr IP         client address (default: none, like a Unix socket; rules with\n"
    "                           client_addr then never match)\n"
    "  --tls-subject SUBJECT    client certificate subject (default: none)\n"
    "  --token TOKEN            an approval token the session holds (repeatable); verified\n"
    "                           against the config's [[approvers]] and revocation_list; use\n"
    "                           counts are not checked\n"
    "  --enforce                decide as in enforce mode even if the config says monitor\n"
    "\n"
    "Exit status: 0 when every statement would run, 1 when any would be refused, 2 on a usage\n"
    "or configuration error (config errors are printed as file:line:column: message).\n";

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Options {
  std::optional<std::string> config;
  std::optional<std::string> sql;
  std::optional<std::string> file;
  policy::SessionContext ctx;
  std::vector<std::string> tokens;
  bool enforce = false;
  bool help = false;
};

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

Options parse_args(int argc, char** argv) {
  Options o;
  std::optional<std::string> user, database;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> inline_value;
    if (arg.starts_with("--")) {
      if (auto eq = arg.find('='); eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg.resize(eq);
      }
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      o.help = true;
    } else if (arg == "--config") {
      o.config = value();
    } else if (arg == "-c" || arg == "--command") {
      if (o.sql || o.file) throw UsageError("give only one of -c and -f");
      o.sql = value();
    } else if (arg == "-f" || arg == "--file") {
      if (o.sql || o.file) throw UsageError("give only one of -c and -f");
      o.file = value();
    } else if (arg == "--user") {
      user = value();
    } else if (arg == "--database") {
      database = value();
    } else if (arg == "--application-name") {
      o.ctx.application_name = value();
    } else if (arg == "--client-addr") {
      o.ctx.client_addr = value();
      if (!policy::parse_ip(o.ctx.client_addr)) {
        throw UsageError("--client-addr '" + o.ctx.client_addr + "' is not an IP address");
      }
    } else if (arg == "--tls-subject") {
      o.ctx.tls_subject = value();
    } else if (arg == "--token") {
      o.tokens.push_back(value());
    } else if (arg == "--enforce" && !inline_value) {
      o.enforce = true;
    } else {
      throw UsageError("unknown option '" + std::string(argv[i]) + "'");
    }
  }
  if (!o.config) {
    if (std::string e = env("PGMOAT_CONFIG"); !e.empty()) o.config = e;
  }
  o.ctx.user = user ? *user : (!env("PGUSER").empty() ? env("PGUSER") : env("USER"));
  o.ctx.database =
      database ? *database : (!env("PGDATABASE").empty() ? env("PGDATABASE") : o.ctx.user);
  return o;
}

std::string read_sql(const Options& o) {
  if (o.sql) return *o.sql;
  if (o.file && *o.file != "-") {
    std::ifstream in(*o.file, std::ios::binary);
    if (!in) throw UsageError("cannot read '" + *o.file + "'");
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
}

std::string decision_label(const policy::StatementVerdict& v) {
  using policy::Action;
  if (!v.allowed) return v.action == Action::deny ? "DENY" : "NEEDS-APPROVAL";
  if (!v.approval_id.empty()) return "ALLOW(approved)";
  if (v.row_limit && !v.would_refuse) return "LIMIT " + std::to_string(v.row_limit->max_rows);
  if (v.action == Action::log) return "ALLOW(logged)";
  if (v.would_refuse)
    return v.action == Action::deny ? "ALLOW(monitor:deny)" : "ALLOW(monitor:approval)";
  return "ALLOW";
}

// The statement's first 60 characters on one line, after any leading `--` comment lines.
std::string snippet(std::string_view text) {
  while (text.starts_with("--")) {
    auto nl = text.find('\n');
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  }
  std::string out;
  bool space = false;
  for (char ch : text) {
    if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += ch;
    if (out.size() >= 60) {
      out += "...";
      break;
    }
  }
  return out;
}

// "row limit: 1000 rows (rule row-limit, class delete); touching more when it runs is refused
// unless ...", and for require_approval the token command.
void print_row_limit(const policy::RowLimit& limit) {
  using policy::Action;
  std::string over;
  if (!limit.enforce) {
    over = limit.action == Action::log ? "only logged (log rule)" : "only logged (monitor mode)";
  } else if (limit.action == Action::deny) {
    over = "refused (deny)";
  } else {
    over = "refused unless the session holds an approval token for it";
  }
  std::printf("    row limit: %lld rows (rule %s, class %s); touching more when it runs is %s\n",
              static_cast<long long>(limit.max_rows), limit.rule.c_str(),
              std::string(parser::class_name(limit.limited_class)).c_str(), over.c_str());
  if (limit.enforce && limit.action == Action::require_approval) {
    std::printf("    HINT:   %s\n", limit.hint.c_str());
  }
}

void print_error(const std::string& message, const std::string& detail, const std::string& hint) {
  std::printf("    ERROR:  %s\n", message.c_str());
  if (!detail.empty()) std::printf("    DETAIL: %s\n", detail.c_str());
  if (!hint.empty()) std::printf("    HINT:   %s\n", hint.c_str());
}

std::vector<policy::Approval> verify_tokens(const Options& o, const proxy::AppConfig& config,
                                            std::int64_t now) {
  std::vector<policy::Approval> out;
  // The revocation list the server would consult: a revoked token must not look valid here.
  std::optional<policy::RevocationList> revoked;
  if (!o.tokens.empty() && config.approvals.revocation_list) {
    try {
      revoked.emplace(*config.approvals.revocation_list);
    } catch (const std::exception& e) {
      throw UsageError(std::string("cannot check --token: ") + e.what());
    }
  }
  for (const auto& token : o.tokens) {
    policy::VerifyResult r =
        policy::verify_token(token, config.approvers, now, revoked ? &*revoked : nullptr);
    if (!r.ok() || !r.claims) {
      throw UsageError("--token is not valid: " + r.message);
    }
    out.push_back(policy::to_approval(*r.claims));
  }
  return out;
}

int check(const Options& o) {
  if (!o.config) throw UsageError("no config: give --config FILE or set PGMOAT_CONFIG");
  proxy::AppConfig config = proxy::load_app_config(*o.config);
  policy::Policy& pol = config.policy;
  if (o.enforce) pol.mode = policy::Mode::enforce;

  policy::SessionContext ctx = o.ctx;
  ctx.now = static_cast<std::int64_t>(std::time(nullptr));
  std::vector<policy::Approval> approvals = verify_tokens(o, config, ctx.now);
  ctx.approvals = &approvals;

  std::string sql = read_sql(o);
  parser::Classification c = parser::classify(sql);
  policy::Decision d = policy::evaluate(c, ctx, pol);

  if (d.parse_error) {
    std::printf("%s  %s\n", d.allowed ? "ALLOW(parse error)" : "REFUSE", d.message.c_str());
    if (!d.allowed) print_error(d.message, d.detail, d.hint);
    return d.allowed ? 0 : 1;
  }
  std::size_t refused = 0;
  std::size_t limited = 0;
  for (std::size_t i = 0; i < d.statements.size(); ++i) {
    const policy::StatementVerdict& v = d.statements[i];
    const parser::Statement& st = c.statements[i];
    std::string classes = parser::class_list(v.classes);
    // A statement only under a row limit has no deciding rule: name the limit's.
    const bool show_limit = v.allowed && v.row_limit.has_value();
    std::string rule = !v.rule.empty() ? v.rule : show_limit ? v.row_limit->rule : "-";
    std::printf("%zu  %-16s %-28s rule=%-24s target=%-20s %s\n", i + 1, decision_label(v).c_str(),
                classes.empty() ? "-" : classes.c_str(), rule.c_str(),
                v.target.empty() ? "-" : v.target.c_str(), snippet(st.text).c_str());
    if (!v.approval_id.empty()) std::printf("    approval: %s\n", v.approval_id.c_str());
    if (!v.message.empty()) print_error(v.message, v.detail, v.hint);
    if (show_limit) {
      print_row_limit(*v.row_limit);
      ++limited;
    }
    if (!v.allowed) ++refused;
  }
  std::string limits;
  if (limited > 0) {
    limits = "; " + std::to_string(limited) +
             " under a row limit, checked when they run (pgmoat counts the rows they touch)";
  }
  if (d.allowed) {
    std::printf("%zu statement(s): all would run%s%s\n", d.statements.size(),
                d.would_refuse ? " (some only because of log rules or monitor mode)" : "",
                limits.c_str());
    return 0;
  }
  std::printf("%zu statement(s): %zu would be refused, so pgmoat refuses the whole query%s\n",
              d.statements.size(), refused, limits.c_str());
  if (d.first_refused && d.hint != d.statements[*d.first_refused].hint) {
    std::printf("HINT (whole query): %s\n", d.hint.c_str());
  }
  return 1;
}

}  // namespace

int run_check(int argc, char** argv) {
  try {
    Options o = parse_args(argc, argv);
    if (o.help) {
      std::fputs(kCheckHelp, stdout);
      return 0;
    }
    return check(o);
  } catch (const cfg::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "pgmoat check: %s (see pgmoat check --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgmoat check: %s\n", e.what());
    return 2;
  }
}

}  // namespace pgmoat::cli
