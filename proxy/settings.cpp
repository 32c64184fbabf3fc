#include "proxy/settings.h"

#include <filesystem>
#include <limits>

namespace pgmoat::proxy {

namespace {

std::string resolve(const std::string& dir, const std::string& path) {
  if (path.empty() || path.front() == '/' || dir.empty()) return path;
  return (std::filesystem::path(dir) / path).string();
}

std::uint16_t read_port(cfg::Table& t, std::uint16_t fallback) {
  return static_cast<std::uint16_t>(t.get_int("port", fallback, 1, 65535));
}

}  // namespace

Settings load_settings(cfg::Table& root, const std::string& config_dir) {
  Settings s;
  if (auto listen = root.get_table("listen")) {
    s.listen_host = listen->get_string("host", s.listen_host);
    s.listen_port = read_port(*listen, s.listen_port);
    s.threads = static_cast<unsigned>(listen->get_int("threads", 0, 0, 256));
    listen->finish();
  }
  if (auto up = root.get_table("upstream")) {
    s.upstream_host = up->get_string("host", s.upstream_host);
    s.upstream_port = read_port(*up, s.upstream_port);
    if (auto mode = up->get_string("tls_mode")) {
      if (*mode == "disable")
        s.upstream_tls = UpstreamTls::disable;
      else if (*mode == "require")
        s.upstream_tls = UpstreamTls::require;
      else if (*mode == "verify-ca")
        s.upstream_tls = UpstreamTls::verify_ca;
      else if (*mode == "verify-full")
        s.upstream_tls = UpstreamTls::verify_full;
      else {
        up->fail("tls_mode",
                 "'upstream.tls_mode' must be one of disable, require, verify-ca, "
                 "verify-full; got \"" +
                     *mode + "\"");
      }
    }
    s.upstream_tls_ca_file = resolve(config_dir, up->get_string("tls_ca_file", ""));
    if ((s.upstream_tls == UpstreamTls::verify_ca || s.upstream_tls == UpstreamTls::verify_full) &&
        s.upstream_tls_ca_file.empty()) {
      up->fail("tls_mode", "'upstream.tls_mode' verify-ca and verify-full need 'tls_ca_file'");
    }
    if (auto ms = up->get_duration_ms("connect_timeout")) s.connect_timeout_ms = *ms;
    up->finish();
  }
  if (auto tls = root.get_table("tls")) {
    s.tls_cert_file = resolve(config_dir, tls->get_string("cert_file", ""));
    s.tls_key_file = resolve(config_dir, tls->get_string("key_file", ""));
    s.tls_client_ca_file = resolve(config_dir, tls->get_string("client_ca_file", ""));
    if (!s.tls_client_ca_file.empty() && s.tls_cert_file.empty()) {
      tls->fail("client_ca_file", "'tls.client_ca_file' needs 'tls.cert_file' and 'tls.key_file'");
    }
    if (s.tls_cert_file.empty() != s.tls_key_file.empty()) {
      tls->fail(s.tls_cert_file.empty() ? "key_file" : "cert_file",
                "'tls.cert_file' and 'tls.key_file' must be set together");
    }
    tls->finish();
  }
  if (auto lim = root.get_table("limits")) {
    constexpr std::int64_t kMax = std::numeric_limits<std::int32_t>::max();
    s.max_client_connections =
        static_cast<std::size_t>(lim->get_int("max_client_connections", 10'000, 1, 1'000'000));
    s.max_message_bytes =
        static_cast<std::size_t>(lim->get_int("max_message_bytes", 1 << 20, 1024, kMax));
    if (auto ms = lim->get_duration_ms("login_timeout")) s.login_timeout_ms = *ms;
    if (auto ms = lim->get_duration_ms("idle_timeout")) s.idle_timeout_ms = *ms;
    if (auto ms = lim->get_duration_ms("shutdown_timeout")) s.shutdown_timeout_ms = *ms;
    s.allow_replication = lim->get_bool("allow_replication", false);
    lim->finish();
  }
  if (auto log = root.get_table("log")) {
    s.log_level = log->get_string("level", s.log_level);
    static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
    bool known = false;
    for (const char* l : kLevels) known = known || s.log_level == l;
    if (!known) {
      log->fail("level",
                "'log.level' must be one of trace, debug, info, warn, error, critical, "
                "off; got \"" +
                    s.log_level + "\"");
    }
    log->finish();
  }
  return s;
}

}  // namespace pgmoat::proxy
