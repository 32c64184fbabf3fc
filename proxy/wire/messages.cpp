#include "proxy/wire/messages.h"

#include <charconv>
#include <cstring>

#include "common/hex.h"
#include "proxy/wire/protocol.h"

namespace pgmoat::wire {

namespace {

// A bounds-checked cursor over a message body.
class Reader {
 public:
  explicit Reader(Bytes b) : data_(b) {}
  bool cstr(std::string_view* out) {
    const void* nul = std::memchr(data_.data() + pos_, 0, data_.size() - pos_);
    if (nul == nullptr) return false;
    auto end = static_cast<std::size_t>(static_cast<const std::uint8_t*>(nul) - data_.data());
    *out = std::string_view(reinterpret_cast<const char*>(data_.data() + pos_), end - pos_);
    pos_ = end + 1;
    return true;
  }
  bool u32(std::uint32_t* out) {
    if (data_.size() - pos_ < 4) return false;
    *out = read_u32(data_.data() + pos_);
    pos_ += 4;
    return true;
  }
  bool u8(std::uint8_t* out) {
    if (pos_ >= data_.size()) return false;
    *out = data_[pos_++];
    return true;
  }
  Bytes rest() const { return data_.subspan(pos_); }
  bool done() const { return pos_ == data_.size(); }

 private:
  Bytes data_;
  std::size_t pos_ = 0;
};

// The body of a tagged message, after checking that tag and length agree with the span.
std::optional<Bytes> body_of(Bytes message, char tag) {
  if (message.size() < 5 || static_cast<char>(message[0]) != tag) return std::nullopt;
  if (read_u32(message.data() + 1) + std::size_t{1} != message.size()) return std::nullopt;
  return message.subspan(5);
}

}  // namespace

const std::string* StartupPacket::get(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::optional<StartupPacket> parse_startup(Bytes packet, std::string* error) {
  auto fail = [&](const char* what) -> std::optional<StartupPacket> {
    if (error != nullptr) *error = what;
    return std::nullopt;
  };
  if (packet.size() < 8) return fail("startup packet too short");
  if (read_u32(packet.data()) != packet.size()) return fail("startup packet length mismatch");
  StartupPacket p;
  p.code = read_u32(packet.data() + 4);
  Reader r(packet.subspan(8));
  if (p.code == kCancelRequestCode) {
    if (!r.u32(&p.cancel_pid) || !r.u32(&p.cancel_key) || !r.done()) {
      return fail("invalid cancel request packet");
    }
    return p;
  }
  if (p.code == kSslRequestCode || p.code == kGssEncRequestCode) {
    if (!r.done()) return fail("invalid encryption request packet");
    return p;
  }
  if ((p.code >> 16) != 3) return p;  // the caller rejects the version with a clear message
  for (;;) {
    std::string_view key;
    if (!r.cstr(&key)) return fail("startup packet has no terminator");
    if (key.empty()) break;
    std::string_view value;
    if (!r.cstr(&value)) return fail("startup packet parameter has no value");
    p.params.emplace_back(std::string(key), std::string(value));
  }
  if (!r.done()) return fail("startup packet has bytes after its terminator");
  return p;
}

std::string build_startup(const StartupPacket& p) {
  std::string out(4, '\0');
  put_u32(out, p.code);
  for (const auto& [k, v] : p.params) {
    put_cstr(out, k);
    put_cstr(out, v);
  }
  out.push_back('\0');
  auto len = static_cast<std::uint32_t>(out.size());
  std::string head;
  put_u32(head, len);
  out.replace(0, 4, head);
  return out;
}

std::string build_cancel_request(std::uint32_t pid, std::uint32_t key) {
  std::string out;
  put_u32(out, 16);
  put_u32(out, kCancelRequestCode);
  put_u32(out, pid);
  put_u32(out, key);
  return out;
}

const std::string* ErrorFields::get(char code) const {
  for (const auto& f : fields) {
    if (f.code == code) return &f.value;
  }
  return nullptr;
}

std::string ErrorFields::sqlstate() const {
  const std::string* s = get('C');
  return s != nullptr ? *s : std::string();
}

std::string ErrorFields::message() const {
  const std::string* s = get('M');
  return s != nullptr ? *s : std::string();
}

bool ErrorFields::fatal() const {
  const std::string* sev = get('V');  // not localized
  if (sev == nullptr) sev = get('S');
  return sev != nullptr && (*sev == "FATAL" || *sev == "PANIC");
}

std::optional<ErrorFields> parse_error(Bytes message) {
  if (message.empty()) return std::nullopt;
  char tag = static_cast<char>(message[0]);
  if (tag != be::kErrorResponse && tag != be::kNoticeResponse) return std::nullopt;
  auto body = body_of(message, tag);
  if (!body) return std::nullopt;
  Reader r(*body);
  ErrorFields out;
  for (;;) {
    std::uint8_t code = 0;
    if (!r.u8(&code)) return std::nullopt;
    if (code == 0) break;
    std::string_view value;
    if (!r.cstr(&value)) return std::nullopt;
    out.fields.push_back(ErrorField{static_cast<char>(code), std::string(value)});
  }
  if (!r.done()) return std::nullopt;
  return out;
}

std::string build_error(const ErrorFields& fields, char tag) {
  std::string out;
  std::size_t at = begin_message(out, tag);
  for (const auto& f : fields.fields) {
    out.push_back(f.code);
    put_cstr(out, f.value);
  }
  out.push_back('\0');
  finish_message(out, at);
  return out;
}

std::string error_response(std::string_view severity, std::string_view sqlstate,
                           std::string_view message, std::string_view detail,
                           std::string_view hint) {
  ErrorFields f;
  f.fields.push_back({'S', std::string(severity)});
  f.fields.push_back({'V', std::string(severity)});
  f.fields.push_back({'C', std::string(sqlstate)});
  f.fields.push_back({'M', std::string(message)});
  if (!detail.empty()) f.fields.push_back({'D', std::string(detail)});
  if (!hint.empty()) f.fields.push_back({'H', std::string(hint)});
  return build_error(f);
}

std::optional<std::string_view> parse_query(Bytes message) {
  auto body = body_of(message, fe::kQuery);
  if (!body) return std::nullopt;
  Reader r(*body);
  std::string_view sql;
  if (!r.cstr(&sql) || !r.done()) return std::nullopt;
  return sql;
}

std::string build_query(std::string_view sql) {
  std::string out;
  std::size_t at = begin_message(out, fe::kQuery);
  put_cstr(out, sql);
  finish_message(out, at);
  return out;
}

std::optional<ParseMsg> parse_parse(Bytes message) {
  auto body = body_of(message, fe::kParse);
  if (!body) return std::nullopt;
  Reader r(*body);
  ParseMsg p;
  if (!r.cstr(&p.name) || !r.cstr(&p.query)) return std::nullopt;
  p.param_types = r.rest();
  if (p.param_types.size() < 2) return std::nullopt;
  std::size_t count = read_u16(p.param_types.data());
  if (p.param_types.size() != 2 + 4 * count) return std::nullopt;
  return p;
}

std::string build_parse(std::string_view name, std::string_view query, Bytes param_types) {
  std::string out;
  std::size_t at = begin_message(out, fe::kParse);
  put_cstr(out, name);
  put_cstr(out, query);
  out.append(reinterpret_cast<const char*>(param_types.data()), param_types.size());
  finish_message(out, at);
  return out;
}

std::optional<BindNames> parse_bind_names(Bytes message) {
  if (message.size() < 5 || static_cast<char>(message[0]) != fe::kBind) return std::nullopt;
  Reader r(message.subspan(5));
  BindNames b;
  if (!r.cstr(&b.portal) || !r.cstr(&b.statement)) return std::nullopt;
  return b;
}

std::optional<std::vector<std::optional<std::string>>> parse_bind_values(Bytes message) {
  auto body = body_of(message, fe::kBind);
  if (!body) return std::nullopt;
  Bytes b = *body;
  std::size_t pos = 0;
  auto skip_cstr = [&]() {
    while (pos < b.size() && b[pos] != 0) ++pos;
    if (pos >= b.size()) return false;
    ++pos;
    return true;
  };
  auto u16 = [&](std::uint16_t* out) {
    if (b.size() - pos < 2) return false;
    *out = read_u16(b.data() + pos);
    pos += 2;
    return true;
  };
  if (!skip_cstr() || !skip_cstr()) return std::nullopt;
  std::uint16_t nformats = 0;
  if (!u16(&nformats)) return std::nullopt;
  std::vector<std::uint16_t> formats(nformats);
  for (auto& f : formats) {
    if (!u16(&f)) return std::nullopt;
  }
  std::uint16_t nvalues = 0;
  if (!u16(&nvalues)) return std::nullopt;
  // As in Postgres: no format codes (all text), one for all, or one per value.
  if (nformats > 1 && nformats != nvalues) return std::nullopt;
  std::vector<std::optional<std::string>> out;
  out.reserve(nvalues);
  for (std::uint16_t i = 0; i < nvalues; ++i) {
    if (b.size() - pos < 4) return std::nullopt;
    std::uint32_t len = read_u32(b.data() + pos);
    pos += 4;
    if (len == 0xffffffffu) {
      out.emplace_back(std::nullopt);
      continue;
    }
    if (b.size() - pos < len) return std::nullopt;
    const std::uint16_t format = nformats == 0 ? 0 : formats[nformats == 1 ? 0u : std::size_t{i}];
    const auto* v = b.data() + pos;
    if (format == 0) {
      out.emplace_back(std::string(reinterpret_cast<const char*>(v), len));
    } else {
      std::string h = "\\x";
      append_hex(h, std::span<const unsigned char>(v, len));
      out.emplace_back(std::move(h));
    }
    pos += len;
  }
  return out;
}

std::optional<std::pair<char, std::string_view>> parse_target(Bytes message) {
  if (message.size() < 6) return std::nullopt;
  char tag = static_cast<char>(message[0]);
  auto body = body_of(message, tag);
  if (!body) return std::nullopt;
  Reader r(*body);
  std::uint8_t kind = 0;
  std::string_view name;
  if (!r.u8(&kind) || !r.cstr(&name) || !r.done()) return std::nullopt;
  if (kind != 'S' && kind != 'P') return std::nullopt;
  return std::make_pair(static_cast<char>(kind), name);
}

std::optional<std::string_view> parse_execute_portal(Bytes message) {
  auto body = body_of(message, fe::kExecute);
  if (!body) return std::nullopt;
  Reader r(*body);
  std::string_view portal;
  std::uint32_t max_rows = 0;
  if (!r.cstr(&portal) || !r.u32(&max_rows) || !r.done()) return std::nullopt;
  return portal;
}

std::string build_bind(std::string_view portal, std::string_view statement) {
  std::string out;
  std::size_t at = begin_message(out, fe::kBind);
  put_cstr(out, portal);
  put_cstr(out, statement);
  put_u16(out, 0);  // parameter formats
  put_u16(out, 0);  // parameters
  put_u16(out, 0);  // result formats: all text
  finish_message(out, at);
  return out;
}

std::string build_execute(std::string_view portal, std::uint32_t max_rows) {
  std::string out;
  std::size_t at = begin_message(out, fe::kExecute);
  put_cstr(out, portal);
  put_u32(out, max_rows);
  finish_message(out, at);
  return out;
}

std::string build_close(char kind, std::string_view name) {
  std::string out;
  std::size_t at = begin_message(out, fe::kClose);
  out.push_back(kind);
  put_cstr(out, name);
  finish_message(out, at);
  return out;
}

namespace {
std::string bodiless(char tag) {
  std::string out;
  std::size_t at = begin_message(out, tag);
  finish_message(out, at);
  return out;
}
}  // namespace

std::string build_sync() {
  return bodiless(fe::kSync);
}

std::string build_flush() {
  return bodiless(fe::kFlush);
}

std::optional<std::vector<std::optional<std::string_view>>> parse_data_row(Bytes message) {
  auto body = body_of(message, be::kDataRow);
  if (!body || body->size() < 2) return std::nullopt;
  const std::size_t count = (std::size_t{(*body)[0]} << 8) | (*body)[1];
  std::vector<std::optional<std::string_view>> out;
  out.reserve(count);
  std::size_t pos = 2;
  for (std::size_t i = 0; i < count; ++i) {
    if (body->size() - pos < 4) return std::nullopt;
    const std::uint32_t len = read_u32(body->data() + pos);
    pos += 4;
    if (len == 0xFFFFFFFFu) {
      out.emplace_back(std::nullopt);
      continue;
    }
    if (body->size() - pos < len) return std::nullopt;
    out.emplace_back(std::string_view(reinterpret_cast<const char*>(body->data() + pos), len));
    pos += len;
  }
  if (pos != body->size()) return std::nullopt;
  return out;
}

std::optional<CommandComplete> parse_command_complete(Bytes message) {
  auto body = body_of(message, be::kCommandComplete);
  if (!body) return std::nullopt;
  Reader r(*body);
  CommandComplete c;
  if (!r.cstr(&c.tag) || !r.done()) return std::nullopt;
  // The row count is the last word for INSERT/DELETE/UPDATE/MERGE/SELECT/MOVE/FETCH/COPY.
  auto space = c.tag.rfind(' ');
  if (space != std::string_view::npos) {
    std::string_view num = c.tag.substr(space + 1);
    std::uint64_t rows = 0;
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), rows);
    if (ec == std::errc() && p == num.data() + num.size()) c.rows = rows;
  }
  return c;
}

std::optional<char> parse_ready_for_query(Bytes message) {
  auto body = body_of(message, be::kReadyForQuery);
  if (!body || body->size() != 1) return std::nullopt;
  char s = static_cast<char>((*body)[0]);
  if (s != 'I' && s != 'T' && s != 'E') return std::nullopt;
  return s;
}

std::string ready_for_query(char status) {
  std::string out;
  std::size_t at = begin_message(out, be::kReadyForQuery);
  out.push_back(status);
  finish_message(out, at);
  return out;
}

std::optional<BackendKey> parse_backend_key(Bytes message) {
  auto body = body_of(message, be::kBackendKeyData);
  if (!body || body->size() != 8) return std::nullopt;
  return BackendKey{read_u32(body->data()), read_u32(body->data() + 4)};
}

std::optional<Authentication> parse_authentication(Bytes message) {
  auto body = body_of(message, be::kAuthentication);
  if (!body) return std::nullopt;
  Reader r(*body);
  Authentication a{};
  if (!r.u32(&a.code)) return std::nullopt;
  if (a.code == static_cast<std::uint32_t>(AuthCode::sasl)) {
    for (;;) {
      std::string_view mech;
      if (!r.cstr(&mech)) return std::nullopt;
      if (mech.empty()) break;
      a.sasl_mechanisms.emplace_back(mech);
    }
    if (!r.done()) return std::nullopt;
  }
  return a;
}

std::string build_sasl_mechanisms(const std::vector<std::string>& mechanisms) {
  std::string out;
  std::size_t at = begin_message(out, be::kAuthentication);
  put_u32(out, static_cast<std::uint32_t>(AuthCode::sasl));
  for (const auto& m : mechanisms) put_cstr(out, m);
  out.push_back('\0');
  finish_message(out, at);
  return out;
}

std::optional<std::pair<std::string_view, std::string_view>> parse_parameter_status(Bytes message) {
  auto body = body_of(message, be::kParameterStatus);
  if (!body) return std::nullopt;
  Reader r(*body);
  std::string_view name;
  std::string_view value;
  if (!r.cstr(&name) || !r.cstr(&value) || !r.done()) return std::nullopt;
  return std::make_pair(name, value);
}

}  // namespace pgmoat::wire
