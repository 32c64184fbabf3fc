// Glob matching for rule and approval patterns: `*` and `?` only, no character classes, so a
// pattern is never a syntax error and a database name with `[` means itself.
#include <cctype>

#include "policy/policy.h"

namespace pgmoat::policy {
namespace {
bool same(char a, char b, bool ignore_case) {
  if (!ignore_case) return a == b;
  return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
}
}  // namespace

// Linear-time greedy matcher: on a mismatch, retry from the last `*` one character further.
bool glob_match(std::string_view pattern, std::string_view text, bool ignore_case) {
  std::size_t p = 0;
  std::size_t t = 0;
  std::size_t star = std::string_view::npos;
  std::size_t star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_t = t;
    } else if (p < pattern.size() &&
               (pattern[p] == '?' || same(pattern[p], text[t], ignore_case))) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace pgmoat::policy
