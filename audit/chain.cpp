#include "audit/chain.h"

#include <array>
#include <charconv>

#include <rapidjson/document.h>

#include "audit/record.h"
#include "common/hex.h"
#include "common/sha256.h"

namespace pgmoat::audit {

std::string sha256_hex(std::string_view bytes) {
  return to_hex(sha256(bytes));
}

void append_chained_line(std::string& out, std::uint64_t seq, std::string_view prev,
                         std::string_view rotated_from, std::string_view record) {
  std::array<char, 24> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), seq);
  (void)ec;
  out += "{\"seq\":";
  out.append(buf.data(), end);
  out += ",\"prev\":\"";
  out += prev;
  out += '"';
  if (!rotated_from.empty()) {
    out += ",\"rotated_from\":";
    append_json_string(out, rotated_from);
  }
  // record is "{...}": splice its members after ours.
  std::string_view body = record.substr(1);
  if (body.size() > 1) out += ',';
  out += body;
}

std::optional<ChainFields> parse_chain_fields(std::string_view line) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(line.data(), line.size());
  if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
  auto seq = doc.FindMember("seq");
  auto prev = doc.FindMember("prev");
  if (seq == doc.MemberEnd() || !seq->value.IsUint64() || prev == doc.MemberEnd() ||
      !prev->value.IsString() || prev->value.GetStringLength() != 64) {
    return std::nullopt;
  }
  ChainFields f;
  f.seq = seq->value.GetUint64();
  f.prev.assign(prev->value.GetString(), prev->value.GetStringLength());
  auto rf = doc.FindMember("rotated_from");
  if (rf != doc.MemberEnd() && rf->value.IsString()) {
    f.rotated_from.assign(rf->value.GetString(), rf->value.GetStringLength());
  }
  auto type = doc.FindMember("type");
  if (type != doc.MemberEnd() && type->value.IsString()) {
    f.type.assign(type->value.GetString(), type->value.GetStringLength());
  }
  return f;
}

}  // namespace pgmoat::audit
