// Helpers shared by the token_*.cpp files; not part of the public token API.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "policy/token.h"

namespace pgmoat::policy::detail {

// The three dot-separated parts of a token, as they appear in it.
struct TokenParts {
  std::string_view prefix;
  std::string_view payload;    // base64url
  std::string_view signature;  // base64url
  // "pgmoat1.<payload>": the bytes the signature covers.
  std::string_view signing_input;
};

// Splits and checks the prefix. On failure sets `error` / `why` and returns nullopt.
std::optional<TokenParts> split_token(std::string_view token, TokenError& error, std::string& why);

// Parses the payload JSON strictly (see token.h for the fields). nullopt + `why` on failure.
std::optional<TokenClaims> decode_payload(std::string_view json, std::string& why);

// Signs arbitrary payload JSON (sign_token uses it; tests use it to sign odd payloads).
std::string sign_payload(std::string_view payload_json, const EVP_PKEY& private_key);

bool is_lower_hex(std::string_view text, std::size_t length);

}  // namespace pgmoat::policy::detail
