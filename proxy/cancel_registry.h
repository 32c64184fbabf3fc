// Which backend keys belong to live sessions, so a CancelRequest is only forwarded when it
// names a real session of ours (a bogus key cancels nothing and never reaches Postgres).
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_set>

namespace pgmoat::proxy {

class CancelRegistry {
 public:
  void add(std::uint32_t pid, std::uint32_t secret) {
    std::lock_guard lock(mu_);
    keys_.insert(key(pid, secret));
  }
  void remove(std::uint32_t pid, std::uint32_t secret) {
    std::lock_guard lock(mu_);
    keys_.erase(key(pid, secret));
  }
  bool contains(std::uint32_t pid, std::uint32_t secret) const {
    std::lock_guard lock(mu_);
    return keys_.count(key(pid, secret)) != 0;
  }

 private:
  static std::uint64_t key(std::uint32_t pid, std::uint32_t secret) {
    return (std::uint64_t{pid} << 32) | secret;
  }
  mutable std::mutex mu_;
  std::unordered_set<std::uint64_t> keys_;
};

}  // namespace pgmoat::proxy
