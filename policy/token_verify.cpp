// Token verification: structure, signature, signer, revocation, time window — in that order,
// so that nothing read from an unverified payload decides anything but the error message.
#include <openssl/err.h>
#include <openssl/evp.h>

#include <memory>

#include "policy/approval_store.h"
#include "policy/token.h"
#include "policy/token_internal.h"

namespace pgmoat::policy {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

bool signature_ok(const EVP_PKEY& key, std::string_view signed_bytes, std::string_view sig) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  // EVP_DigestVerifyInit takes a non-const key but does not change it.
  bool ok =
      ctx &&
      EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, const_cast<EVP_PKEY*>(&key)) ==
          1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(signed_bytes.data()),
                       signed_bytes.size()) == 1;
  ERR_clear_error();
  return ok;
}

VerifyResult failure(TokenError error, std::string message) {
  VerifyResult r;
  r.error = error;
  r.message = std::move(message);
  return r;
}

struct Decoded {
  detail::TokenParts parts;
  std::string signature;
  std::optional<TokenClaims> claims;  // nullopt when the payload does not parse
  std::string payload_error;
};

// Splits and base64-decodes; the payload JSON may still be bad (see payload_error).
std::optional<Decoded> decode(std::string_view token, VerifyResult& fail_out) {
  TokenError error = TokenError::malformed;
  std::string why;
  auto parts = detail::split_token(token, error, why);
  if (!parts) {
    fail_out = failure(error, why);
    return std::nullopt;
  }
  auto payload = base64url_decode(parts->payload);
  auto sig = base64url_decode(parts->signature);
  if (!payload || !sig) {
    fail_out = failure(TokenError::malformed,
                       std::string(payload ? "signature" : "payload") + " is not valid base64url");
    return std::nullopt;
  }
  if (sig->size() != 64) {
    fail_out = failure(TokenError::malformed, "signature is not 64 bytes long");
    return std::nullopt;
  }
  Decoded d{*parts, std::move(*sig), std::nullopt, {}};
  d.claims = detail::decode_payload(*payload, d.payload_error);
  return d;
}

}  // namespace

VerifyResult decode_unverified(std::string_view token) {
  VerifyResult r;
  auto d = decode(token, r);
  if (!d) return r;
  if (!d->claims) return failure(TokenError::malformed, d->payload_error);
  r.claims = std::move(d->claims);
  return r;
}

VerifyResult verify_token(std::string_view token, const TrustedKeys& keys, std::int64_t now,
                          const RevocationList* revoked) {
  VerifyResult r;
  auto d = decode(token, r);
  if (!d) return r;

  if (!d->claims) {
    // A payload that does not parse was almost always altered after signing; say so unless a
    // trusted key really signed it (then the issuer is broken and "malformed" is the truth).
    for (const auto& a : keys.approvers()) {
      if (signature_ok(*a.key, d->parts.signing_input, d->signature)) {
        return failure(TokenError::malformed, d->payload_error);
      }
    }
    return failure(TokenError::bad_signature,
                   "signature does not match the token: it was altered or is corrupt");
  }

  const TokenClaims& c = *d->claims;
  const Approver* signer = nullptr;
  bool known_kid = false;
  for (const auto& a : keys.approvers()) {
    if (a.key_id != c.key_id) continue;
    known_kid = true;
    if (signature_ok(*a.key, d->parts.signing_input, d->signature)) {
      signer = &a;
      break;
    }
  }
  if (!known_kid) {
    return failure(TokenError::unknown_signer, "token is signed by key " + c.key_id +
                                                   " (approver '" + c.approver +
                                                   "'), which is not a trusted approver key");
  }
  if (signer == nullptr) {
    return failure(TokenError::bad_signature,
                   "signature does not match the token: it was altered or is corrupt");
  }
  if (signer->name != c.approver) {
    return failure(TokenError::approver_mismatch, "token names approver '" + c.approver +
                                                      "' but is signed by the key of '" +
                                                      signer->name + "'");
  }

  r.claims = std::move(d->claims);
  const TokenClaims& v = *r.claims;
  if (revoked != nullptr && revoked->is_revoked(v.id)) {
    r.error = TokenError::revoked;
    r.message = "token " + v.id + " is revoked";
  } else if (now >= v.expires_at) {
    r.error = TokenError::expired;
    r.message = "token " + v.id + " expired at " + format_utc(v.expires_at);
  } else if (v.issued_at > now + kClockSkewSeconds) {
    r.error = TokenError::not_yet_valid;
    r.message = "token " + v.id + " is not valid before " + format_utc(v.issued_at) +
                " (check the clocks of the issuing machine and of pgmoat)";
  }
  return r;
}

}  // namespace pgmoat::policy
