// Bytes as lowercase hex, two digits per byte (digests, ids, binary parameter values).
// Header-only, so the wire codec can use it without linking anything.
#pragma once

#include <span>
#include <string>

namespace pgmoat {

inline void append_hex(std::string& out, std::span<const unsigned char> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 0xF];
  }
}

inline std::string to_hex(std::span<const unsigned char> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  append_hex(out, bytes);
  return out;
}

}  // namespace pgmoat
