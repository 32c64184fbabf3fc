// Token encoding: base64url (RFC 4648 section 5, no padding) and the payload JSON.
#include <openssl/rand.h>

#include <array>
#include <ctime>
#include <set>
#include <stdexcept>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/hex.h"
#include "policy/policy.h"
#include "policy/token.h"
#include "policy/token_internal.h"

namespace pgmoat::policy {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Limits keep a signed-but-silly token from costing much; they are far above real use.
constexpr std::size_t kMaxString = 1024;
constexpr std::size_t kMaxList = 64;

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

bool token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void put_string(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void put_list(Writer& w, std::string_view key, const std::vector<std::string>& list) {
  put_string(w, key);
  w.StartArray();
  for (const auto& s : list) put_string(w, s);
  w.EndArray();
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k]));
  };
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    std::uint32_t v = byte(i) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (rest == 2) {
    std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;  // no byte count encodes to 4k+1 chars
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = b64_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Leftover bits must be zero, so that each byte string has exactly one encoding.
  if ((acc & ((1U << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string encode_payload(const TokenClaims& c) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  put_string(w, "v");
  w.Int(1);
  put_string(w, "id");
  put_string(w, c.id);
  put_string(w, "kid");
  put_string(w, c.key_id);
  put_string(w, "approver");
  put_string(w, c.approver);
  put_string(w, "reason");
  put_string(w, c.reason);
  put_string(w, "iat");
  w.Int64(c.issued_at);
  put_string(w, "exp");
  w.Int64(c.expires_at);
  put_list(w, "db", c.databases);
  put_list(w, "user", c.users);
  if (c.application_name) {
    put_string(w, "app");
    put_string(w, *c.application_name);
  }
  if (c.client_cidr) {
    put_string(w, "cidr");
    put_string(w, *c.client_cidr);
  }
  put_string(w, "classes");
  w.StartArray();
  for (int i = 0; i < static_cast<int>(parser::StatementClass::kCount); ++i) {
    auto cls = static_cast<parser::StatementClass>(i);
    if (parser::has(c.classes, cls)) put_string(w, parser::class_name(cls));
  }
  w.EndArray();
  if (!c.tables.empty()) put_list(w, "tables", c.tables);
  if (c.max_uses) {
    put_string(w, "max_uses");
    w.Int64(*c.max_uses);
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

namespace detail {

bool is_lower_hex(std::string_view text, std::size_t length) {
  if (text.size() != length) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::optional<TokenParts> split_token(std::string_view token, TokenError& error, std::string& why) {
  error = TokenError::malformed;
  if (token.size() > kMaxTokenLength) {
    why = "token is longer than " + std::to_string(kMaxTokenLength) + " characters";
    return std::nullopt;
  }
  std::size_t first = token.find('.');
  std::size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    why = "a token has three parts separated by '.'";
    return std::nullopt;
  }
  TokenParts parts;
  parts.prefix = token.substr(0, first);
  parts.payload = token.substr(first + 1, second - first - 1);
  parts.signature = token.substr(second + 1);
  parts.signing_input = token.substr(0, second);
  if (parts.prefix != kTokenPrefix) {
    if (parts.prefix.starts_with("pgmoat")) {
      error = TokenError::unsupported_version;
      why = "token version '" + std::string(parts.prefix) + "' is not supported (expected '" +
            std::string(kTokenPrefix) + "')";
    } else {
      why = "token does not start with '" + std::string(kTokenPrefix) + ".'";
    }
    return std::nullopt;
  }
  if (parts.payload.empty() || parts.signature.empty()) {
    why = "token has an empty part";
    return std::nullopt;
  }
  return parts;
}

std::optional<TokenClaims> decode_payload(std::string_view json, std::string& why) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(json.data(), json.size());
  if (doc.HasParseError()) {
    why = std::string("payload is not valid JSON: ") +
          rapidjson::GetParseError_En(doc.GetParseError());
    return std::nullopt;
  }
  if (!doc.IsObject()) {
    why = "payload is not a JSON object";
    return std::nullopt;
  }
  TokenClaims c;
  std::set<std::string, std::less<>> seen;
  bool have_v = false, have_id = false, have_kid = false, have_approver = false;
  bool have_reason = false, have_iat = false, have_exp = false, have_db = false;
  bool have_user = false, have_classes = false;

  auto fail = [&](std::string message) -> std::optional<TokenClaims> {
    why = std::move(message);
    return std::nullopt;
  };
  auto get_string = [&](const rapidjson::Value& v, std::string& out) {
    if (!v.IsString() || v.GetStringLength() > kMaxString) return false;
    out.assign(v.GetString(), v.GetStringLength());
    return true;
  };
  auto get_list = [&](const rapidjson::Value& v, std::vector<std::string>& out) {
    if (!v.IsArray() || v.Size() > kMaxList) return false;
    for (const auto& el : v.GetArray()) {
      std::string s;
      if (!get_string(el, s) || s.empty()) return false;
      out.push_back(std::move(s));
    }
    return true;
  };

  for (const auto& m : doc.GetObject()) {
    std::string_view key(m.name.GetString(), m.name.GetStringLength());
    const rapidjson::Value& v = m.value;
    if (!seen.emplace(key).second)
      return fail("payload repeats the field '" + std::string(key) + "'");
    if (key == "v") {
      if (!v.IsInt() || v.GetInt() != 1) return fail("payload version 'v' must be 1");
      have_v = true;
    } else if (key == "id") {
      if (!get_string(v, c.id) || !is_lower_hex(c.id, 16)) {
        return fail("'id' must be 16 lower-case hex characters");
      }
      have_id = true;
    } else if (key == "kid") {
      if (!get_string(v, c.key_id) || !is_lower_hex(c.key_id, 16)) {
        return fail("'kid' must be 16 lower-case hex characters");
      }
      have_kid = true;
    } else if (key == "approver") {
      if (!get_string(v, c.approver) || c.approver.empty()) {
        return fail("'approver' must be a non-empty string");
      }
      have_approver = true;
    } else if (key == "reason") {
      if (!get_string(v, c.reason)) return fail("'reason' must be a string");
      have_reason = true;
    } else if (key == "iat" || key == "exp") {
      if (!v.IsInt64()) return fail("'" + std::string(key) + "' must be an integer");
      (key == "iat" ? c.issued_at : c.expires_at) = v.GetInt64();
      (key == "iat" ? have_iat : have_exp) = true;
    } else if (key == "db") {
      if (!get_list(v, c.databases) || c.databases.empty()) {
        return fail("'db' must be a non-empty list of database names");
      }
      have_db = true;
    } else if (key == "user") {
      if (!get_list(v, c.users)) return fail("'user' must be a list of user names");
      have_user = true;
    } else if (key == "app") {
      std::string s;
      if (!get_string(v, s) || s.empty()) return fail("'app' must be a non-empty string");
      c.application_name = std::move(s);
    } else if (key == "cidr") {
      std::string s;
      if (!get_string(v, s) || !valid_cidr(s))
        return fail("'cidr' must be a CIDR such as 10.0.0.0/8");
      c.client_cidr = std::move(s);
    } else if (key == "classes") {
      std::vector<std::string> names;
      if (!get_list(v, names) || names.empty()) {
        return fail("'classes' must be a non-empty list of statement classes");
      }
      for (const auto& n : names) {
        auto cls = parser::class_from_name(n);
        if (!cls) return fail("'classes' names an unknown statement class '" + n + "'");
        c.classes |= parser::bit(*cls);
      }
      have_classes = true;
    } else if (key == "tables") {
      if (!get_list(v, c.tables)) return fail("'tables' must be a list of table globs");
    } else if (key == "max_uses") {
      if (!v.IsInt64() || v.GetInt64() < 1) return fail("'max_uses' must be a positive integer");
      c.max_uses = v.GetInt64();
    } else {
      // Refused rather than ignored: an unknown field might be a restriction we would drop.
      return fail("payload has an unknown field '" + std::string(key) + "'");
    }
  }
  if (!have_v) return fail("payload lacks 'v'");
  if (!have_id) return fail("payload lacks 'id'");
  if (!have_kid) return fail("payload lacks 'kid'");
  if (!have_approver) return fail("payload lacks 'approver'");
  if (!have_reason) return fail("payload lacks 'reason'");
  if (!have_iat) return fail("payload lacks 'iat'");
  if (!have_exp) return fail("payload lacks 'exp'");
  if (!have_db) return fail("payload lacks 'db'");
  if (!have_user) return fail("payload lacks 'user'");
  if (!have_classes) return fail("payload lacks 'classes'");
  if (c.expires_at <= c.issued_at) return fail("'exp' is not after 'iat'");
  return c;
}

}  // namespace detail

bool looks_like_token(std::string_view text) {
  if (text.size() > kMaxTokenLength || !text.starts_with("pgmoat")) return false;
  int dots = 0;
  char prev = '.';
  for (char c : text) {
    if (!token_char(c)) return false;
    if (c == '.') {
      if (prev == '.') return false;  // empty part
      ++dots;
    }
    prev = c;
  }
  return dots == 2 && prev != '.';
}

std::string new_token_id() {
  std::array<unsigned char, 8> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
    throw std::runtime_error("cannot get random bytes for a token id");
  }
  return to_hex(raw);
}

std::string format_utc(std::int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(unix_seconds);
  std::array<char, 64> buf{};
  std::size_t n = std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return std::string(buf.data(), n);
}

bool valid_cidr(std::string_view text) {
  return parse_cidr(text).has_value();
}

std::string_view token_error_name(TokenError e) {
  switch (e) {
    case TokenError::malformed:
      return "malformed";
    case TokenError::unsupported_version:
      return "unsupported version";
    case TokenError::bad_signature:
      return "bad signature";
    case TokenError::unknown_signer:
      return "unknown signer";
    case TokenError::approver_mismatch:
      return "approver mismatch";
    case TokenError::revoked:
      return "revoked";
    case TokenError::expired:
      return "expired";
    case TokenError::not_yet_valid:
      return "not yet valid";
  }
  return "unknown error";
}

}  // namespace pgmoat::policy
