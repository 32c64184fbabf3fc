// `pgmoat token keygen|issue|inspect`: make approver keys, sign approval tokens, and show what a
// token allows. Exit codes: 0 success (inspect: the token is valid), 1 failure (inspect: the
// token is not valid), 2 usage or configuration error.
#include <charconv>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "common/toml_reader.h"
#include "parser/classification.h"
#include "policy/approval_store.h"
#include "policy/token.h"

namespace pgmoat::cli {
namespace {

namespace fs = std::filesystem;
using policy::TokenClaims;

constexpr std::int64_t kDefaultTtlSeconds = 15 * 60;
constexpr std::int64_t kMaxTtlSeconds = 24 * 3600;
constexpr std::int64_t kMaxLongTtlSeconds = 30 * 24 * 3600;

constexpr const char* kKeygenHelp =
    "usage: pgmoat token keygen --name NAME [--out DIR]\n"
    "\n"
    "Creates an approver key pair: DIR/NAME.key (private, mode 0600; keep it with the approver,\n"
    "never on the pgmoat host) and DIR/NAME.pub (give it to pgmoat's config). Existing files are\n"
    "never overwritten. DIR defaults to the current directory and is created (mode 0700)\n"
    "when missing.\n";

constexpr const char* kIssueHelp =
    "usage: pgmoat token issue --key FILE --database DB --user USER|--any-user\n"
    "                          --classes CLASS[,CLASS...] --reason TEXT [OPTIONS]\n"
    "\n"
    "Signs an approval token with the approver's private key and prints it on stdout.\n"
    "\n"
    "  --key FILE               approver's private key (from `pgmoat token keygen`)\n"
    "  --database DB            database(s) the token is good for; repeatable or comma list\n"
    "  --user USER              user(s) the token is good for; repeatable or comma list\n"
    "  --any-user               good for every user (instead of --user)\n"
    "  --classes LIST           statement classes it unlocks, e.g. drop,truncate\n"
    "  --reason TEXT            why; recorded in the audit trail\n"
    "  --ttl DURATION           lifetime, e.g. 90s, 15m, 2h (default 15m, at most 24h)\n"
    "  --allow-long-ttl         allow a TTL up to 30d\n"
    "  --tables GLOB            only these tables (\"public.*\"); repeatable or comma list\n"
    "  --max-uses N             at most N statements (default: unlimited within the TTL)\n"
    "  --application-name GLOB  only sessions whose application_name matches\n"
    "  --client-cidr CIDR       only clients from this network\n"
    "  --approver NAME          approver name (default: the key file name without .key);\n"
    "                           must be the name pgmoat's config gives this key\n"
    "\n"
    "Use it with: SET pgmoat.approval = '<token>'; or in a connection URL:\n"
    "  options=-c%20pgmoat.approval%3D<token>\n";

constexpr const char* kInspectHelp =
    "usage: pgmoat token inspect TOKEN|- [--config FILE]\n"
    "\n"
    "Shows what a token allows and whether it is still valid. With --config, also checks the\n"
    "signature against the config's [[approvers]] and the revocation list. `-` reads the token\n"
    "from stdin. Exit 0 when valid, 1 when not, 2 on usage or configuration errors.\n";

constexpr const char* kTokenHelp =
    "usage: pgmoat token keygen|issue|inspect [OPTIONS]\n"
    "\n"
    "  keygen   create an approver key pair\n"
    "  issue    sign an approval token\n"
    "  inspect  show what a token allows and whether it is valid\n"
    "\n"
    "Run `pgmoat token SUBCOMMAND --help` for its options.\n";

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Options as `--name value`, `--name=value` or a bare `--flag`; positionals kept in order.
struct Args {
  std::map<std::string, std::vector<std::string>, std::less<>> values;
  std::vector<std::string> flags;
  std::vector<std::string> positional;
  bool help = false;

  bool flag(std::string_view name) const {
    for (const auto& f : flags) {
      if (f == name) return true;
    }
    return false;
  }
  std::optional<std::string> one(std::string_view name) const {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    if (it->second.size() > 1) throw UsageError("--" + std::string(name) + " given twice");
    return it->second.front();
  }
  std::string required(std::string_view name) const {
    auto v = one(name);
    if (!v || v->empty()) throw UsageError("--" + std::string(name) + " is required");
    return *v;
  }
  // Repeatable and comma-separated: --tables a --tables b,c -> a, b, c.
  std::vector<std::string> list(std::string_view name) const {
    std::vector<std::string> out;
    auto it = values.find(name);
    if (it == values.end()) return out;
    for (const auto& v : it->second) {
      std::size_t start = 0;
      while (start <= v.size()) {
        std::size_t comma = v.find(',', start);
        if (comma == std::string::npos) comma = v.size();
        std::string item = v.substr(start, comma - start);
        if (item.empty()) throw UsageError("--" + std::string(name) + " has an empty entry");
        out.push_back(std::move(item));
        start = comma + 1;
      }
    }
    return out;
  }
};

Args parse_args(int argc, char** argv, const std::vector<std::string_view>& with_value,
                const std::vector<std::string_view>& bare) {
  Args a;
  auto takes_value = [&](std::string_view n) {
    for (auto w : with_value) {
      if (w == n) return true;
    }
    return false;
  };
  auto is_flag = [&](std::string_view n) {
    for (auto b : bare) {
      if (b == n) return true;
    }
    return false;
  };
  for (int i = 0; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      a.help = true;
      continue;
    }
    if (!arg.starts_with("--") || arg == "-") {
      a.positional.emplace_back(arg);
      continue;
    }
    std::string_view name = arg.substr(2);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string_view::npos) {
      value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
    }
    if (is_flag(name)) {
      if (value) throw UsageError("--" + std::string(name) + " takes no value");
      a.flags.emplace_back(name);
    } else if (takes_value(name)) {
      if (!value) {
        if (i + 1 >= argc) throw UsageError("--" + std::string(name) + " needs a value");
        value = argv[++i];
      }
      a.values[std::string(name)].push_back(*value);
    } else {
      throw UsageError("unknown option --" + std::string(name));
    }
  }
  return a;
}

std::string all_class_names() {
  std::string out;
  for (int i = 0; i < static_cast<int>(parser::StatementClass::kCount); ++i) {
    if (!out.empty()) out += ", ";
    out += parser::class_name(static_cast<parser::StatementClass>(i));
  }
  return out;
}

std::string join(const std::vector<std::string>& v, std::string_view empty_text) {
  if (v.empty()) return std::string(empty_text);
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

std::string human_duration(std::int64_t seconds) {
  if (seconds < 0) seconds = -seconds;
  std::int64_t h = seconds / 3600, m = seconds / 60 % 60, s = seconds % 60;
  std::string out;
  if (h > 0) out += std::to_string(h) + "h ";
  if (h > 0 || m > 0) out += std::to_string(m) + "m ";
  out += std::to_string(s) + "s";
  return out;
}

// ---- keygen -------------------------------------------------------------------------------

int keygen(int argc, char** argv) {
  Args a = parse_args(argc, argv, {"name", "out"}, {});
  if (a.help) {
    std::fputs(kKeygenHelp, stdout);
    return 0;
  }
  if (!a.positional.empty()) throw UsageError("unexpected argument '" + a.positional[0] + "'");
  std::string name = a.required("name");
  if (!policy::valid_approver_name(name)) {
    throw UsageError(
        "--name must be 1-64 characters of A-Z a-z 0-9 _ - . @, not starting with '.'");
  }
  fs::path dir = a.one("out").value_or(".");
  fs::path key_path = dir / (name + ".key");
  fs::path pub_path = dir / (name + ".pub");
  // Check both first so that a refusal leaves nothing half-written.
  for (const auto& p : {key_path, pub_path}) {
    std::error_code ec;
    if (fs::exists(fs::symlink_status(p, ec))) {
      std::fprintf(stderr, "pgmoat token keygen: '%s' already exists; not overwriting it\n",
                   p.c_str());
      return 1;
    }
  }
  if (std::error_code ec; !fs::exists(dir, ec)) {
    // A new key directory holds a private key: readable by its owner only.
    fs::create_directories(dir, ec);
    if (ec) {
      std::fprintf(stderr, "pgmoat token keygen: cannot create '%s': %s\n", dir.c_str(),
                   ec.message().c_str());
      return 1;
    }
    fs::permissions(dir, fs::perms::owner_all, ec);
  }
  policy::KeyPtr key = policy::generate_ed25519_key();
  policy::write_private_key(*key, key_path.string());
  try {
    policy::write_public_key(*key, pub_path.string());
  } catch (...) {
    fs::remove(key_path);
    throw;
  }
  std::printf(
      "wrote %s (private key, mode 0600: keep it with %s, never on the pgmoat host)\n"
      "wrote %s (public key)\n"
      "key id %s\n"
      "\n"
      "Trust it in pgmoat's config (public_key is relative to the config file's directory):\n"
      "\n"
      "[[approvers]]\n"
      "name = \"%s\"\n"
      "public_key = \"%s\"\n",
      key_path.c_str(), name.c_str(), pub_path.c_str(), policy::key_id(*key).c_str(), name.c_str(),
      pub_path.filename().c_str());
  return 0;
}

// ---- issue --------------------------------------------------------------------------------

int issue(int argc, char** argv) {
  Args a = parse_args(argc, argv,
                      {"key", "database", "user", "classes", "ttl", "reason", "tables", "max-uses",
                       "application-name", "client-cidr", "approver"},
                      {"any-user", "allow-long-ttl"});
  if (a.help) {
    std::fputs(kIssueHelp, stdout);
    return 0;
  }
  if (!a.positional.empty()) throw UsageError("unexpected argument '" + a.positional[0] + "'");

  TokenClaims c;
  std::string key_file = a.required("key");
  c.approver = a.one("approver").value_or(fs::path(key_file).stem().string());
  if (!policy::valid_approver_name(c.approver)) {
    throw UsageError("approver name '" + c.approver +
                     "' must be 1-64 characters of A-Z a-z 0-9 _ - . @ (use --approver)");
  }
  c.databases = a.list("database");
  if (c.databases.empty()) throw UsageError("--database is required");
  c.users = a.list("user");
  if (c.users.empty() == !a.flag("any-user")) {
    throw UsageError("give either --user USER or --any-user");
  }
  for (const auto& name : a.list("classes")) {
    auto cls = parser::class_from_name(name);
    if (!cls) {
      throw UsageError("unknown statement class '" + name +
                       "'; known classes: " + all_class_names());
    }
    c.classes |= parser::bit(*cls);
  }
  if (c.classes == 0) throw UsageError("--classes is required, e.g. --classes drop,truncate");
  c.reason = a.required("reason");
  c.tables = a.list("tables");

  std::int64_t ttl = kDefaultTtlSeconds;
  if (auto text = a.one("ttl")) {
    auto ms = cfg::parse_duration_ms(*text);
    if (!ms || *ms < 1000) throw UsageError("--ttl must be a duration such as 90s, 15m or 2h");
    ttl = *ms / 1000;
  }
  std::int64_t max_ttl = a.flag("allow-long-ttl") ? kMaxLongTtlSeconds : kMaxTtlSeconds;
  if (ttl > max_ttl) {
    throw UsageError("--ttl is longer than " + human_duration(max_ttl) +
                     (a.flag("allow-long-ttl") ? "" : " (add --allow-long-ttl for up to 30d)"));
  }
  if (auto text = a.one("max-uses")) {
    std::int64_t n = 0;
    auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
    if (ec != std::errc() || ptr != text->data() + text->size() || n < 1) {
      throw UsageError("--max-uses must be a positive integer");
    }
    c.max_uses = n;
  }
  c.application_name = a.one("application-name");
  if (c.application_name && c.application_name->empty()) {
    throw UsageError("--application-name must not be empty");
  }
  c.client_cidr = a.one("client-cidr");
  if (c.client_cidr && !policy::valid_cidr(*c.client_cidr)) {
    throw UsageError("--client-cidr '" + *c.client_cidr +
                     "' is not a network such as 10.0.0.0/8 or 2001:db8::/32");
  }

  policy::KeyPtr key = policy::load_private_key(key_file);
  c.id = policy::new_token_id();
  c.issued_at = static_cast<std::int64_t>(std::time(nullptr));
  c.expires_at = c.issued_at + ttl;
  std::string token = policy::sign_token(c, *key);
  std::printf("%s\n", token.c_str());
  std::fprintf(stderr, "token %s by %s: %s on %s until %s\n", c.id.c_str(), c.approver.c_str(),
               parser::class_list(c.classes).c_str(), join(c.databases, "").c_str(),
               policy::format_utc(c.expires_at).c_str());
  return 0;
}

// ---- inspect ------------------------------------------------------------------------------

void print_claims(const TokenClaims& c, std::int64_t now, bool verified) {
  std::printf("token:        %s\n", c.id.c_str());
  std::printf("approver:     %s (key %s)%s\n", c.approver.c_str(), c.key_id.c_str(),
              verified ? "" : " [claimed, not verified]");
  std::printf("reason:       %s\n", c.reason.c_str());
  std::printf("issued:       %s\n", policy::format_utc(c.issued_at).c_str());
  std::int64_t left = c.expires_at - now;
  std::printf("expires:      %s (%s %s)\n", policy::format_utc(c.expires_at).c_str(),
              left > 0 ? "in" : "expired",
              (human_duration(left) + (left > 0 ? "" : " ago")).c_str());
  std::printf("databases:    %s\n", join(c.databases, "any").c_str());
  std::printf("users:        %s\n", join(c.users, "any").c_str());
  std::printf("application:  %s\n", c.application_name.value_or("any").c_str());
  std::printf("client:       %s\n", c.client_cidr.value_or("any").c_str());
  std::printf("classes:      %s\n", parser::class_list(c.classes).c_str());
  std::printf("tables:       %s\n", join(c.tables, "any").c_str());
  std::printf("max uses:     %s\n",
              c.max_uses ? std::to_string(*c.max_uses).c_str() : "unlimited within the TTL");
}

int inspect(int argc, char** argv) {
  Args a = parse_args(argc, argv, {"config", "now"}, {});
  if (a.help) {
    std::fputs(kInspectHelp, stdout);
    return 0;
  }
  if (a.positional.size() != 1) throw UsageError("give exactly one TOKEN (or - for stdin)");
  std::string token = a.positional[0];
  if (token == "-") {
    std::getline(std::cin, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  }
  std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  if (auto text = a.one("now")) {  // for tests and for "was it valid at ...?"
    auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), now);
    if (ec != std::errc() || ptr != text->data() + text->size()) {
      throw UsageError("--now must be unix seconds");
    }
  }

  auto config = a.one("config");
  if (!config) {
    policy::VerifyResult r = policy::decode_unverified(token);
    if (!r.claims) {
      std::printf("status:       INVALID: %s: %s\n",
                  std::string(policy::token_error_name(*r.error)).c_str(), r.message.c_str());
      return 1;
    }
    print_claims(*r.claims, now, false);
    std::puts("signature:    not checked (pass --config FILE to check it against trusted keys)");
    if (now >= r.claims->expires_at) {
      std::printf("status:       INVALID: expired: token expired at %s\n",
                  policy::format_utc(r.claims->expires_at).c_str());
      return 1;
    }
    std::puts("status:       not expired (signature and revocation not checked)");
    return 0;
  }

  policy::TrustedKeys keys;
  policy::ApprovalSettings settings;
  std::optional<policy::RevocationList> revoked;
  try {
    toml::table root_table = cfg::parse_file(*config);
    cfg::Table root(root_table, *config, "");
    keys = policy::load_approvers(root);
    settings = policy::load_approval_settings(root);
    if (settings.revocation_list) revoked.emplace(*settings.revocation_list);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgmoat token inspect: %s\n", e.what());
    return 2;
  }

  policy::VerifyResult r = policy::verify_token(token, keys, now, revoked ? &*revoked : nullptr);
  if (r.claims) {
    print_claims(*r.claims, now, true);
    std::puts("signature:    good, by a trusted approver key");
    if (settings.state_dir && fs::is_directory(*settings.state_dir)) {
      try {
        std::printf(
            "uses so far:  %lld\n",
            static_cast<long long>(policy::ApprovalStore(*settings.state_dir).uses(r.claims->id)));
      } catch (const std::exception& e) {
        std::printf("uses so far:  unknown (%s)\n", e.what());
      }
    }
  } else if (auto unverified = policy::decode_unverified(token); unverified.claims) {
    print_claims(*unverified.claims, now, false);
  }
  if (!r.ok()) {
    std::printf("status:       INVALID: %s: %s\n",
                std::string(policy::token_error_name(*r.error)).c_str(), r.message.c_str());
    return 1;
  }
  std::puts("status:       VALID");
  return 0;
}

}  // namespace

int run_token(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kTokenHelp, stderr);
    return 2;
  }
  std::string_view sub = argv[1];
  const char* help = kTokenHelp;
  try {
    if (sub == "keygen") {
      help = kKeygenHelp;
      return keygen(argc - 2, argv + 2);
    }
    if (sub == "issue") {
      help = kIssueHelp;
      return issue(argc - 2, argv + 2);
    }
    if (sub == "inspect") {
      help = kInspectHelp;
      return inspect(argc - 2, argv + 2);
    }
    if (sub == "--help" || sub == "-h" || sub == "help") {
      std::fputs(kTokenHelp, stdout);
      return 0;
    }
    std::fprintf(stderr, "pgmoat token: unknown subcommand '%s'\n\n", argv[1]);
    std::fputs(kTokenHelp, stderr);
    return 2;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "pgmoat token %s: %s\n\n%s", argv[1], e.what(), help);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgmoat token %s: %s\n", argv[1], e.what());
    return 1;
  }
}

}  // namespace pgmoat::cli
