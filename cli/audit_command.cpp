// `pgmoat audit verify|search`: check the hash chain and query the audit trail.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/files.h"
#include "audit/record.h"
#include "audit/search.h"
#include "audit/settings.h"
#include "audit/verify.h"
#include "cli/commands.h"
#include "common/toml_reader.h"

namespace pgmoat::cli {
namespace {

constexpr const char* kUsage =
    "usage: pgmoat audit verify [OPTIONS] [FILE|DIR...]\n"
    "       pgmoat audit search [OPTIONS] [FILE|DIR...] [FILTERS]\n"
    "\n"
    "Run `pgmoat audit verify --help` or `pgmoat audit search --help` for details.\n";

constexpr const char* kVerifyUsage =
    "usage: pgmoat audit verify [--config FILE] [--require-genesis] [FILE|DIR...]\n"
    "\n"
    "Checks the hash chain of the audit trail: every record's \"prev\" must be the SHA-256 of\n"
    "the record before it, across rotated files. Files are put in order (rotated files\n"
    "path.YYYYMMDDTHHMMSS.N oldest first, then the current file); a directory means all its\n"
    "files. Without files, --config FILE reads [audit] path and takes it and its rotated files.\n"
    "\n"
    "  --config FILE       pgmoat config file to take the audit path from\n"
    "  --require-genesis   fail unless the chain starts at its first record (seq 1); by default\n"
    "                      a first file that continues one not given is verified from there on\n"
    "\n"
    "Exit 0 when the chain is whole, 1 when a record was edited, deleted, reordered or cut\n"
    "(the first such record is named as file:line and seq), 2 on usage errors.\n"
    "A torn last line (no newline: a crash mid-write) is a warning, not a failure. A hash chain\n"
    "cannot show records cut from the end: compare the printed head with a copy kept elsewhere.\n";

constexpr const char* kSearchUsage =
    "usage: pgmoat audit search [--config FILE] [FILE|DIR...] [FILTERS] [--format table|jsonl]\n"
    "\n"
    "Filters (all must match; text filters are globs such as 'seed*'):\n"
    "  --since TIME, --until TIME   ISO-8601 (2024-05-01, 2024-05-01T12:00:00Z) or an age\n"
    "                               back from now (30m, 24h, 7d)\n"
    "  --user GLOB  --database GLOB  --application-name GLOB\n"
    "  --client IP|CIDR             e.g. 10.1.2.3 or 10.0.0.0/8 or fd00::/8\n"
    "  --table GLOB                 a table written or read (schema.name or name)\n"
    "  --class GLOB                 statement class (delete, ddl, truncate, ...)\n"
    "  --decision GLOB  --rule GLOB  --token GLOB (approval token id)\n"
    "  --type GLOB                  statement, outcome, refusal, would_refuse, approval_use,\n"
    "                               connection_accepted, authenticated, auth_failed,\n"
    "                               connection_closed, chain_resume, rotate\n"
    "Output:\n"
    "  --format table               aligned columns for people (default)\n"
    "  --format jsonl               the matching records as they are stored, one per line\n"
    "\n"
    "Without files, --config FILE reads [audit] path and searches it and its rotated files.\n";

struct Args {
  std::string config;
  std::vector<std::string> operands;
  bool help = false;
};

// Reads "--name value" or "--name=value"; returns nullopt when argv[i] is not --name.
std::optional<std::string> option(int argc, char** argv, int& i, std::string_view name) {
  std::string_view a = argv[i];
  if (a.substr(0, name.size()) != name) return std::nullopt;
  if (a.size() > name.size() && a[name.size()] == '=') {
    return std::string(a.substr(name.size() + 1));
  }
  if (a.size() != name.size()) return std::nullopt;
  if (i + 1 >= argc) throw std::invalid_argument(std::string(name) + " needs a value");
  ++i;
  return std::string(argv[i]);
}

std::vector<std::string> input_files(const Args& args) {
  if (!args.operands.empty()) return audit::expand_inputs(args.operands);
  if (args.config.empty()) throw std::invalid_argument("give audit files, or --config FILE");
  toml::table doc = cfg::parse_file(args.config);
  cfg::Table root(doc, args.config, "");
  audit::Settings settings = audit::load_settings(root);
  std::vector<std::string> files = audit::list_audit_files(settings.path);
  if (files.empty()) throw std::runtime_error(settings.path + ": no audit files found");
  return files;
}

int verify(int argc, char** argv) {
  Args args;
  bool require_genesis = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kVerifyUsage, stdout);
      return 0;
    }
    if (auto v = option(argc, argv, i, "--config")) {
      args.config = *v;
    } else if (a == "--require-genesis") {
      require_genesis = true;
    } else if (a.size() > 1 && a[0] == '-') {
      throw std::invalid_argument("unknown option " + std::string(a));
    } else {
      args.operands.emplace_back(a);
    }
  }
  std::vector<std::string> files = input_files(args);
  audit::VerifyReport rep = audit::verify_files(files, require_genesis);
  for (const auto& w : rep.warnings) std::printf("warning: %s\n", audit::to_string(w).c_str());
  if (!rep.ok) {
    std::printf("TAMPERED: %s\n", audit::to_string(*rep.error).c_str());
    return 1;
  }
  std::printf("OK: chain whole: %llu records (seq %llu..%llu) in %zu file(s)\n",
              static_cast<unsigned long long>(rep.records),
              static_cast<unsigned long long>(rep.first_seq),
              static_cast<unsigned long long>(rep.last_seq), files.size());
  if (rep.records != 0) {
    std::printf("head: seq %llu sha256 %s\n", static_cast<unsigned long long>(rep.last_seq),
                rep.head_hash.c_str());
  }
  return 0;
}

int search(int argc, char** argv) {
  Args args;
  audit::SearchFilter f;
  std::string format = "table";
  const std::int64_t now = audit::now_us();
  auto time_arg = [now](const std::string& v, const char* name) {
    auto t = audit::parse_time_arg(v, now);
    if (!t) {
      throw std::invalid_argument(std::string(name) + ": cannot read '" + v +
                                  "' as a time (2024-05-01T12:00:00Z) or an age (24h)");
    }
    return *t;
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kSearchUsage, stdout);
      return 0;
    }
    if (auto v = option(argc, argv, i, "--config")) {
      args.config = *v;
    } else if (auto since = option(argc, argv, i, "--since")) {
      f.since_us = time_arg(*since, "--since");
    } else if (auto until = option(argc, argv, i, "--until")) {
      f.until_us = time_arg(*until, "--until");
    } else if (auto user = option(argc, argv, i, "--user")) {
      f.user = *user;
    } else if (auto db = option(argc, argv, i, "--database")) {
      f.database = *db;
    } else if (auto app = option(argc, argv, i, "--application-name")) {
      f.application_name = *app;
    } else if (auto client = option(argc, argv, i, "--client")) {
      f.client = audit::parse_cidr(*client);
      if (!f.client)
        throw std::invalid_argument("--client: '" + *client + "' is not an IP or CIDR");
    } else if (auto table = option(argc, argv, i, "--table")) {
      f.table = *table;
    } else if (auto klass = option(argc, argv, i, "--class")) {
      f.klass = *klass;
    } else if (auto decision = option(argc, argv, i, "--decision")) {
      f.decision = *decision;
    } else if (auto rule = option(argc, argv, i, "--rule")) {
      f.rule = *rule;
    } else if (auto token = option(argc, argv, i, "--token")) {
      f.token = *token;
    } else if (auto type = option(argc, argv, i, "--type")) {
      f.type = *type;
    } else if (auto fmt = option(argc, argv, i, "--format")) {
      if (*fmt != "table" && *fmt != "jsonl") {
        throw std::invalid_argument("--format must be table or jsonl");
      }
      format = *fmt;
    } else if (a.size() > 1 && a[0] == '-') {
      throw std::invalid_argument("unknown option " + std::string(a));
    } else {
      args.operands.emplace_back(a);
    }
  }
  std::vector<std::string> files = input_files(args);
  std::vector<audit::Row> rows;
  const bool jsonl = format == "jsonl";
  const std::uint64_t n = audit::search_files(
      files, f,
      [&](std::string_view line, const audit::Row& row) {
        if (jsonl) {
          std::cout << line << '\n';
        } else {
          rows.push_back(row);
        }
      },
      std::cerr);
  if (!jsonl) {
    audit::print_table(std::cout, rows);
    std::cerr << n << " record(s)\n";
  }
  std::cout.flush();
  return 0;
}

}  // namespace

int run_audit(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string_view sub = argv[1];
  try {
    if (sub == "verify") return verify(argc - 1, argv + 1);
    if (sub == "search") return search(argc - 1, argv + 1);
    if (sub == "--help" || sub == "-h" || sub == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "pgmoat audit: unknown subcommand '%s'\n%s", argv[1], kUsage);
    return 2;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "pgmoat audit %s: %s\n", argv[1], e.what());
    return 2;
  } catch (const cfg::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgmoat audit %s: %s\n", argv[1], e.what());
    return 1;
  }
}

}  // namespace pgmoat::cli
