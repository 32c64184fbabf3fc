// The proxy's own configuration: [listen], [upstream], [tls], [limits], [log].
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/toml_reader.h"

namespace pgmoat::proxy {

enum class UpstreamTls : std::uint8_t { disable, require, verify_ca, verify_full };

struct Settings {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 6432;

  std::string upstream_host = "127.0.0.1";
  std::uint16_t upstream_port = 5432;
  UpstreamTls upstream_tls = UpstreamTls::disable;
  std::string upstream_tls_ca_file;
  std::int64_t connect_timeout_ms = 10'000;

  // Client-side TLS termination: on when both are set.
  std::string tls_cert_file;
  std::string tls_key_file;
  // When set, clients are asked for a certificate signed by this CA; a presented certificate
  // must verify, and its subject is what policy `tls_subject` matches and the audit records.
  std::string tls_client_ca_file;
  bool tls_enabled() const { return !tls_cert_file.empty(); }

  std::size_t max_client_connections = 10'000;
  std::size_t max_message_bytes = 1u << 20;  // cap on a Query or Parse message
  std::int64_t login_timeout_ms = 15'000;
  std::int64_t idle_timeout_ms = 0;  // 0: none
  std::int64_t shutdown_timeout_ms = 30'000;
  bool allow_replication = false;
  unsigned threads = 0;  // 0: one per core

  std::string log_level = "info";
};

// Reads the proxy's sections from the root of the config file. Relative file paths are
// resolved against `config_dir`. Throws cfg::ConfigError.
Settings load_settings(cfg::Table& root, const std::string& config_dir);

}  // namespace pgmoat::proxy
