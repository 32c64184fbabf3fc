#include "proxy/app_config.h"

#include <filesystem>

#include "common/toml_reader.h"

namespace pgmoat::proxy {

AppConfig load_app_config(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    throw cfg::ConfigError(path + ":1:1: cannot read config file: no such file");
  }
  toml::table doc = cfg::parse_file(path);
  cfg::Table root(doc, path, "");
  std::string dir = std::filesystem::path(path).parent_path().string();
  AppConfig c;
  c.path = path;
  c.proxy = load_settings(root, dir);
  c.policy = policy::load_policy(root);
  c.audit = audit::load_settings(root);
  c.approvers = policy::load_approvers(root);
  c.approvals = policy::load_approval_settings(root);
  root.finish();
  return c;
}

}  // namespace pgmoat::proxy
