// Each subcommand of the one `pgmoat` binary, owned by the folder it drives.
#pragma once

namespace pgmoat::cli {
// argv[0] is the subcommand name ("serve", "check", ...). Return the process exit code.
int run_serve(int argc, char** argv);  // cli/serve_command.cpp
int run_check(int argc, char** argv);  // cli/check_command.cpp
int run_token(int argc, char** argv);  // cli/token_command.cpp
int run_audit(int argc, char** argv);  // cli/audit_command.cpp
}  // namespace pgmoat::cli
