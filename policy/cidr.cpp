// Client address networks. Addresses are kept in 128-bit form with IPv4 mapped into
// ::ffff:0:0/96, so one comparison covers both families and dual-stack sockets.
#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "policy/policy.h"

namespace pgmoat::policy {
namespace {
constexpr unsigned kMappedPrefix = 96;

std::optional<std::array<std::uint8_t, 16>> parse_ip_family(std::string_view text, bool& is_v4) {
  std::array<std::uint8_t, 16> out{};
  if (text.empty() || text.size() > 64) return std::nullopt;
  std::string s(text);
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out[10] = 0xff;
    out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    is_v4 = true;
    return out;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out.data(), &v6, 16);
    is_v4 = false;
    return out;
  }
  return std::nullopt;
}

bool prefix_equal(const std::array<std::uint8_t, 16>& a, const std::array<std::uint8_t, 16>& b,
                  unsigned bits) {
  std::size_t whole = bits / 8;
  if (std::memcmp(a.data(), b.data(), whole) != 0) return false;
  unsigned rest = bits % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}
}  // namespace

std::optional<std::array<std::uint8_t, 16>> parse_ip(std::string_view text) {
  bool is_v4 = false;
  return parse_ip_family(text, is_v4);
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  std::string_view addr_part = text;
  std::optional<unsigned> bits;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    addr_part = text.substr(0, slash);
    std::string_view len = text.substr(slash + 1);
    unsigned v = 0;
    auto [ptr, ec] = std::from_chars(len.data(), len.data() + len.size(), v);
    if (len.empty() || ec != std::errc() || ptr != len.data() + len.size()) return std::nullopt;
    bits = v;
  }
  bool is_v4 = false;
  auto addr = parse_ip_family(addr_part, is_v4);
  if (!addr) return std::nullopt;
  unsigned max = is_v4 ? 32 : 128;
  unsigned n = bits.value_or(max);
  if (n > max) return std::nullopt;
  Cidr c;
  c.addr = *addr;
  c.prefix = is_v4 ? kMappedPrefix + n : n;
  c.text = std::string(text);
  // Host bits set ("10.0.0.1/8") usually means a typo in the prefix length: refuse it.
  std::array<std::uint8_t, 16> zero_host = c.addr;
  for (unsigned i = c.prefix; i < 128; ++i) {
    zero_host[i / 8] = static_cast<std::uint8_t>(zero_host[i / 8] & ~(0x80u >> (i % 8)));
  }
  if (zero_host != c.addr) return std::nullopt;
  return c;
}

bool Cidr::contains(const std::array<std::uint8_t, 16>& ip) const {
  return prefix_equal(addr, ip, prefix);
}

}  // namespace pgmoat::policy
