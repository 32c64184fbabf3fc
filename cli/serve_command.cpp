// `pgmoat serve --config FILE`: run the proxy until SIGTERM.
#include <cstdio>
#include <cstring>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "common/toml_reader.h"
#include "proxy/app_config.h"
#include "proxy/gate_services.h"
#include "proxy/server.h"
#include "proxy/tls.h"

namespace pgmoat::cli {

namespace {
void serve_usage() {
  std::fputs(
      "usage: pgmoat serve --config FILE\n"
      "\n"
      "Runs the proxy. SIGHUP reloads the policy rules; SIGTERM stops accepting and waits\n"
      "up to limits.shutdown_timeout for open sessions.\n",
      stderr);
}
}  // namespace

int run_serve(int argc, char** argv) {
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if ((a == "--config" || a == "-c") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a.starts_with("--config=")) {
      config_path = std::string(a.substr(9));
    } else if (a == "--help" || a == "-h") {
      serve_usage();
      return 0;
    } else {
      std::fprintf(stderr, "pgmoat serve: unknown argument '%s'\n", argv[i]);
      serve_usage();
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fputs("pgmoat serve: --config FILE is required\n", stderr);
    serve_usage();
    return 2;
  }

  spdlog::set_default_logger(spdlog::stderr_color_mt("pgmoat"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %v", spdlog::pattern_time_type::utc);

  proxy::AppConfig config;
  try {
    config = proxy::load_app_config(config_path);
  } catch (const cfg::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  spdlog::set_level(spdlog::level::from_str(config.proxy.log_level));

  auto services = std::make_shared<proxy::Services>();
  services->settings = config.proxy;
  try {
    services->server_tls = proxy::make_server_tls(config.proxy);
    services->upstream_tls = proxy::make_upstream_tls(config.proxy);
    services->gate = proxy::make_gate_services(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", config_path.c_str(), e.what());
    return 1;
  }

  proxy::Server server(services);
  server.set_reload_handler([services, config_path] {
    try {
      auto fresh = proxy::load_app_config(config_path);
      proxy::reload_gate_services(*services->gate, fresh);
      spdlog::info("configuration reloaded from {}", config_path);
    } catch (const std::exception& e) {
      spdlog::error("reload failed, keeping the previous policy: {}", e.what());
    }
  });
  try {
    server.listen();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgmoat: %s\n", e.what());
    return 1;
  }
  int rc = server.run();
  proxy::log_cache_stats(*services->gate);
  return rc;
}

}  // namespace pgmoat::cli
