// Who is on the other end of a session: everything the policy matches on and the audit records.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pgmoat::proxy {

struct SessionInfo {
  std::uint64_t id = 0;
  std::string client_addr;
  std::uint16_t client_port = 0;
  std::string listen_addr;
  std::string tls_version;      // empty when the client did not use TLS
  std::string tls_subject;      // client certificate subject, if one was presented
  std::string tls_fingerprint;  // "sha256:<hex>" of that certificate
  std::string user;
  std::string database;
  std::string application_name;
  std::vector<std::pair<std::string, std::string>> startup_params;  // as forwarded
  std::string auth_method = "trust";                                // what the server asked for
  std::uint32_t backend_pid = 0;
  std::uint32_t backend_secret = 0;
  char transaction_status = 'I';
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

}  // namespace pgmoat::proxy
