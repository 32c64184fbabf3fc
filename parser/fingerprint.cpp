// Statement fingerprints without a second parse.
//
// libpg_query's fingerprint ignores every constant (A_Const, whatever its type or value) and
// every location. The shape of a statement -- its parse tree with exactly those two things
// left out -- therefore determines its fingerprint: statements that differ only in literals
// (pgbench's, and any application that interpolates values) have the same shape. classify()
// records a SHA-256 of the shape, and fingerprint(Statement) looks it up here; only a shape
// never seen before costs pg_query_fingerprint's parse.

#include <array>
#include <charconv>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/sha256.h"
#include "parser/classify.h"
#include "parser/parse_json.h"

namespace pgmoat::parser {
namespace detail {

namespace {

void put_number(std::string& out, std::int64_t n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
  out.append(digits, end);
}

// A tag byte, the length as 4 raw bytes, the bytes: unambiguous whatever the string holds.
void put_string(std::string& out, char tag, std::string_view s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  const char head[5] = {tag, static_cast<char>(n), static_cast<char>(n >> 8),
                        static_cast<char>(n >> 16), static_cast<char>(n >> 24)};
  out.append(head, sizeof head);
  out.append(s);
}

// Deeper trees are not cached (fingerprint() parses them itself): the recursion stays small.
constexpr int kMaxShapeDepth = 256;

// In a template: does this node body (of the member named `type`) stand for a number? A
// ParamRef does, and so does `-` applied to one: PostgreSQL's grammar turns `-5` into the
// constant -5 (doNegate), but `-$1` into an operator applied to the parameter.
bool stands_for_number(std::string_view type, const rapidjson::Value& body, int depth) {
  if (type == "ParamRef") return true;
  if (depth > kMaxShapeDepth || type != "A_Expr" || !body.IsObject() || body.HasMember("lexpr"))
    return false;
  const auto kind = body.FindMember("kind");
  const auto name = body.FindMember("name");
  const auto rexpr = body.FindMember("rexpr");
  if (kind == body.MemberEnd() || !kind->value.IsString() ||
      std::string_view(kind->value.GetString()) != "AEXPR_OP" || name == body.MemberEnd() ||
      !name->value.IsArray() || name->value.Size() != 1 || rexpr == body.MemberEnd() ||
      !rexpr->value.IsObject() || rexpr->value.MemberCount() != 1) {
    return false;
  }
  const rapidjson::Value& op = name->value[0];
  const auto str = op.IsObject() ? op.FindMember("String") : op.MemberEnd();
  if (!op.IsObject() || str == op.MemberEnd() || !str->value.IsObject()) return false;
  const auto sval = str->value.FindMember("sval");
  if (sval == str->value.MemberEnd() || !sval->value.IsString() ||
      std::string_view(sval->value.GetString()) != "-") {
    return false;
  }
  const auto& inner = *rexpr->value.MemberBegin();
  return stands_for_number(std::string_view(inner.name.GetString(), inner.name.GetStringLength()),
                           inner.value, depth + 1);
}

// An unambiguous serialisation of the tree without constants and locations: every string
// is length-prefixed, so no two different trees serialise alike.
bool put_shape(std::string& out, const rapidjson::Value& v, int depth, bool params_are_numbers) {
  if (depth > kMaxShapeDepth) return false;
  switch (v.GetType()) {
    case rapidjson::kObjectType:
      out += '{';
      for (const auto& m : v.GetObject()) {
        const std::string_view name(m.name.GetString(), m.name.GetStringLength());
        if (name == "location") continue;
        if (name == "A_Const" || (params_are_numbers && stands_for_number(name, m.value, 0))) {
          put_string(out, 'k', "A_Const");
          out += "{}";  // libpg_query's fingerprint ignores the constant entirely
        } else {
          put_string(out, 'k', name);
          if (!put_shape(out, m.value, depth + 1, params_are_numbers)) return false;
        }
      }
      out += '}';
      break;
    case rapidjson::kArrayType:
      out += '[';
      for (const auto& e : v.GetArray()) {
        if (!put_shape(out, e, depth + 1, params_are_numbers)) return false;
      }
      out += ']';
      break;
    case rapidjson::kStringType:
      put_string(out, 's', std::string_view(v.GetString(), v.GetStringLength()));
      break;
    case rapidjson::kNumberType:
      out += 'n';
      if (v.IsInt64()) {
        put_number(out, v.GetInt64());
      } else {
        out += std::to_string(v.GetDouble());
      }
      out += ';';
      break;
    case rapidjson::kTrueType:
      out += 't';
      break;
    case rapidjson::kFalseType:
      out += 'f';
      break;
    case rapidjson::kNullType:
      out += '0';
      break;
  }
  return true;
}

}  // namespace

std::string shape_digest(const rapidjson::Value& stmt, bool params_are_numbers) {
  thread_local std::string buf;
  buf.clear();
  buf.reserve(4096);
  const bool whole = put_shape(buf, stmt, 0, params_are_numbers);
  Sha256 md{};
  if (whole) md = sha256(buf);
  if (buf.capacity() > (1u << 20)) std::string().swap(buf);  // do not keep a huge one
  if (!whole) return {};
  return std::string(reinterpret_cast<const char*>(md.data()), md.size());
}

}  // namespace detail

namespace {

// Shape digest -> fingerprint, bounded; cleared (per shard) when full.
class FingerprintCache {
 public:
  std::string get(const Statement& st) {
    Shard& shard = shards_[static_cast<unsigned char>(st.shape.front()) % kShards];
    {
      std::lock_guard lk(shard.mu);
      if (auto it = shard.map.find(st.shape); it != shard.map.end()) return it->second;
    }
    std::string fp = fingerprint(st.text);
    if (fp.empty()) return fp;  // unparseable on its own: not cached
    std::lock_guard lk(shard.mu);
    if (shard.map.size() >= kMaxPerShard) shard.map.clear();
    shard.map.emplace(st.shape, fp);
    return fp;
  }

 private:
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kMaxPerShard = 4096;
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::string> map;
  };
  std::array<Shard, kShards> shards_;
};

}  // namespace

std::string fingerprint(std::string_view sql) {
  if (sql.find('\0') != std::string_view::npos) return {};
  const std::string buf(sql);
  PgQueryFingerprintResult r = pg_query_fingerprint(buf.c_str());
  std::string out;
  if (r.error == nullptr && r.fingerprint_str != nullptr) out = r.fingerprint_str;
  pg_query_free_fingerprint_result(r);
  return out;
}

std::string fingerprint(const Statement& st) {
  if (st.shape.empty()) return fingerprint(st.text);
  static FingerprintCache cache;
  return cache.get(st);
}

}  // namespace pgmoat::parser
