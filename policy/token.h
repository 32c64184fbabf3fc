// Approval tokens: a person approves a destructive statement class for a short time by signing
// a token with their Ed25519 private key; pgmoat trusts only the public keys its config lists.
//
// Format (one printable string, safe in a URL, an environment variable and libpq's
// `options=-c pgmoat.approval=<token>`: only [A-Za-z0-9_.-]):
//
//     pgmoat1.<base64url(payload JSON)>.<base64url(Ed25519 signature)>
//
// The signature covers the bytes "pgmoat1.<payload part>" exactly as they appear in the token,
// so the version prefix is signed too and no JSON canonicalisation is needed. base64url is
// RFC 4648 section 5 without '=' padding. Payload keys (all others are refused, so a field a
// newer issuer adds to narrow a token can never be silently ignored):
//
//     v         1
//     id        16 lower-case hex chars, random
//     kid       16 lower-case hex chars: SHA-256 of the raw public key, first 8 bytes
//     approver  the approver's name; must equal the name the config gives that key
//     reason    free text
//     iat, exp  issued-at and expiry, unix seconds (exp > iat)
//     db        databases, non-empty list of exact names
//     user      users, list of exact names; empty = any user
//     app       optional application_name glob
//     cidr      optional client CIDR ("10.0.0.0/8", "::1/128")
//     classes   statement classes unlocked, names from parser/classification.h, non-empty
//     tables    optional table globs; empty = any table
//     max_uses  optional positive integer; absent = unlimited within the TTL
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/types.h>

#include "parser/classification.h"

namespace pgmoat::cfg {
class Table;
}

namespace pgmoat::policy {

struct Approval;       // policy/policy.h
class RevocationList;  // policy/approval_store.h

inline constexpr std::string_view kTokenPrefix = "pgmoat1";
// Tokens longer than this are refused before any decoding.
inline constexpr std::size_t kMaxTokenLength = 8192;
// A token issued up to this far in the future (clock skew between machines) is still accepted.
inline constexpr std::int64_t kClockSkewSeconds = 60;

struct TokenClaims {
  std::string id;
  std::string key_id;
  std::string approver;
  std::string reason;
  std::int64_t issued_at = 0;   // unix seconds
  std::int64_t expires_at = 0;  // unix seconds
  std::vector<std::string> databases;
  std::vector<std::string> users;  // empty = any
  std::optional<std::string> application_name;
  std::optional<std::string> client_cidr;
  parser::ClassSet classes = 0;
  std::vector<std::string> tables;  // empty = any
  std::optional<std::int64_t> max_uses;
  bool operator==(const TokenClaims&) const = default;
};

// ---- Keys ---------------------------------------------------------------------------------

// Shared so that TrustedKeys copies cheaply; frees with EVP_PKEY_free.
using KeyPtr = std::shared_ptr<EVP_PKEY>;

KeyPtr generate_ed25519_key();
// PEM (PKCS#8 private / SubjectPublicKeyInfo public). Throw std::runtime_error with the path and
// the reason, also when the key is not Ed25519.
KeyPtr load_private_key(const std::string& path);
KeyPtr load_public_key(const std::string& path);
// Write with O_CREAT|O_EXCL (private: mode 0600, public: 0644): never overwrite a file.
void write_private_key(const EVP_PKEY& key, const std::string& path);
void write_public_key(const EVP_PKEY& key, const std::string& path);
// 16 lower-case hex chars identifying the public half of `key`.
std::string key_id(const EVP_PKEY& key);

struct Approver {
  std::string name;
  KeyPtr key;  // public key (Ed25519)
  std::string key_id;
  std::string source;  // "file:line:column" of the config entry, or "" when built in code
};

class TrustedKeys {
 public:
  // Throws std::invalid_argument when the key is not Ed25519 or the same key is already
  // trusted under another name.
  void add(std::string name, KeyPtr key, std::string source = {});
  const std::vector<Approver>& approvers() const { return approvers_; }
  bool empty() const { return approvers_.empty(); }
  const Approver* find_by_key_id(std::string_view key_id) const;

 private:
  std::vector<Approver> approvers_;
};

// Reads every `[[approvers]]` entry (`name`, `public_key` = PEM path relative to the config
// file's directory). Errors are cfg::ConfigError "file:line:column: ...". Calls finish() on
// each approver table, not on root. No entries = an empty TrustedKeys (no token verifies).
TrustedKeys load_approvers(cfg::Table& root);

// ---- Encoding -----------------------------------------------------------------------------

std::string base64url_encode(std::string_view bytes);
// Strict: URL-safe alphabet only, no padding, canonical trailing bits. nullopt otherwise.
std::optional<std::string> base64url_decode(std::string_view text);

std::string encode_payload(const TokenClaims& claims);
// Signs claims with an Ed25519 private key; claims.key_id is overwritten with key_id(key).
std::string sign_token(TokenClaims claims, const EVP_PKEY& private_key);

// A cheap shape test for `SET pgmoat.approval = '...'`: starts with "pgmoat", has three
// dot-separated non-empty parts, and only token characters. Says nothing about validity.
bool looks_like_token(std::string_view text);

// 1-64 characters of A-Z a-z 0-9 _ - . @, not starting with '.': approver and key names.
bool valid_approver_name(std::string_view name);

// A 16-hex-char random token id.
std::string new_token_id();

// ---- Verification -------------------------------------------------------------------------

enum class TokenError {
  malformed,            // not three parts, bad base64, bad JSON, missing or unknown fields
  unsupported_version,  // prefix other than "pgmoat1"
  bad_signature,        // signature does not match the payload: tampered
  unknown_signer,       // signed by a key the config does not trust
  approver_mismatch,    // signed by a trusted key, but names another approver
  revoked,
  expired,
  not_yet_valid,
};
std::string_view token_error_name(TokenError e);

struct VerifyResult {
  // Set when the signature checked out, even if the token is revoked / expired / not yet
  // valid (so callers can say which token); never set for malformed or untrusted tokens.
  std::optional<TokenClaims> claims;
  std::optional<TokenError> error;  // nullopt = valid
  std::string message;              // human text for the error, e.g. "expired at ... UTC"
  bool ok() const { return !error.has_value(); }
};

// Pure apart from reading `revoked` (may be null). `now` is unix seconds.
VerifyResult verify_token(std::string_view token, const TrustedKeys& keys, std::int64_t now,
                          const RevocationList* revoked = nullptr);

// Decodes without checking the signature (for `pgmoat token inspect` without --config). The
// result must never authorise anything. error is set for malformed / unsupported_version only.
VerifyResult decode_unverified(std::string_view token);

// "2024-05-01 12:00:00 UTC"
std::string format_utc(std::int64_t unix_seconds);

// policy::parse_cidr accepts it: "10.0.0.0/8", "192.168.1.7", "::1/128" (no host bits set).
bool valid_cidr(std::string_view text);

// For the policy engine. uses_left is the token's max_uses; the caller subtracts the uses
// ApprovalStore recorded.
Approval to_approval(const TokenClaims& claims);

}  // namespace pgmoat::policy
