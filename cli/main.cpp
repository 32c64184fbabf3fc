#include <cstdio>
#include <cstring>
#include <string_view>

#include "cli/commands.h"

namespace {
void usage() {
  std::fputs(
      "usage: pgmoat COMMAND [OPTIONS]\n"
      "\n"
      "commands:\n"
      "  serve --config FILE      run the proxy\n"
      "  check [OPTIONS] -c SQL   show what the policy would decide, without a server\n"
      "  token keygen|issue|inspect   approval tokens\n"
      "  audit verify|search      check and query the audit trail\n"
      "\n"
      "Run `pgmoat COMMAND --help` for a command's options.\n",
      stderr);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  std::string_view cmd = argv[1];
  if (cmd == "serve") return pgmoat::cli::run_serve(argc - 1, argv + 1);
  if (cmd == "check") return pgmoat::cli::run_check(argc - 1, argv + 1);
  if (cmd == "token") return pgmoat::cli::run_token(argc - 1, argv + 1);
  if (cmd == "audit") return pgmoat::cli::run_audit(argc - 1, argv + 1);
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    usage();
    return 0;
  }
  if (cmd == "--version") {
    std::puts("pgmoat 0.1.0");
    return 0;
  }
  std::fprintf(stderr, "pgmoat: unknown command '%s'\n", argv[1]);
  usage();
  return 2;
}
