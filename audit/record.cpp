#include "audit/record.h"

#include <array>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace pgmoat::audit {
namespace {

constexpr std::array<std::string_view, 11> kTypeNames = {
    "connection_accepted", "authenticated", "auth_failed", "connection_closed",
    "statement",           "outcome",       "refusal",     "would_refuse",
    "approval_use",        "chain_resume",  "rotate"};

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not valid
// (overlong forms, surrogates and code points above U+10FFFF are invalid, RFC 3629).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t len = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  const auto b1 = static_cast<unsigned char>(s[i + 1]);
  if (b1 < lo || b1 > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return len;
}

void append_int(std::string& out, std::int64_t v) {
  std::array<char, 24> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  (void)ec;
  out.append(buf.data(), end);
}

void append_uint(std::string& out, std::uint64_t v) {
  std::array<char, 24> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  (void)ec;
  out.append(buf.data(), end);
}

// Writes `,"key":` (every field after "type" is preceded by a comma).
void key(std::string& out, std::string_view k) {
  out += ",\"";
  out += k;
  out += "\":";
}

void str_field(std::string& out, std::string_view k, std::string_view v) {
  key(out, k);
  append_json_string(out, v);
}

void opt_str_field(std::string& out, std::string_view k, std::string_view v) {
  if (!v.empty()) str_field(out, k, v);
}

void list_field(std::string& out, std::string_view k, const std::vector<std::string>& v) {
  key(out, k);
  out += '[';
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i != 0) out += ',';
    append_json_string(out, v[i]);
  }
  out += ']';
}

bool is_password_key(std::string_view k) {
  constexpr std::string_view kPassword = "password";
  if (k.size() != kPassword.size()) return false;
  for (std::size_t i = 0; i < k.size(); ++i) {
    char c = k[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kPassword[i]) return false;
  }
  return true;
}

bool parse_digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

}  // namespace

std::string_view to_string(EventType type) {
  return kTypeNames.at(static_cast<std::size_t>(type));
}

std::optional<EventType> event_type_from_string(std::string_view name) {
  for (std::size_t i = 0; i < kTypeNames.size(); ++i) {
    if (kTypeNames[i] == name) return static_cast<EventType>(i);
  }
  return std::nullopt;
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  std::size_t run = 0;  // start of the pending run of bytes that need no escaping
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const std::size_t len = utf8_sequence_length(text, i);
      if (len != 0) {
        i += len;
        continue;
      }
    }
    out.append(text.data() + run, i - run);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += "\xEF\xBF\xBD";  // invalid UTF-8 byte -> U+FFFD
        }
    }
    ++i;
    run = i;
  }
  out.append(text.data() + run, text.size() - run);
  out += '"';
}

std::string encode(const Identity& id, const Event& ev) {
  std::string out;
  out.reserve(320 + ev.statement.size());
  out += "{\"type\":\"";
  out += to_string(ev.type);
  out += '"';
  str_field(out, "ts", format_timestamp(ev.ts_us != 0 ? ev.ts_us : now_us()));
  // Identity: the core keys are always present so that search sees the same shape everywhere.
  str_field(out, "session", id.session_id);
  str_field(out, "client_addr", id.client_addr);
  key(out, "client_port");
  append_uint(out, id.client_port);
  opt_str_field(out, "listen", id.listen_addr);
  if (!id.tls_version.empty() || !id.client_cert_subject.empty() ||
      !id.client_cert_fingerprint.empty()) {
    key(out, "tls");
    out += "{\"version\":";
    append_json_string(out, id.tls_version);
    out += ",\"subject\":";
    append_json_string(out, id.client_cert_subject);
    out += ",\"fingerprint\":";
    append_json_string(out, id.client_cert_fingerprint);
    out += '}';
  }
  str_field(out, "user", id.user);
  str_field(out, "database", id.database);
  str_field(out, "application_name", id.application_name);
  bool any_param = false;
  for (const auto& [k, v] : id.startup_parameters) {
    if (is_password_key(k)) continue;
    if (!any_param) {
      key(out, "startup");
      out += '{';
      any_param = true;
    } else {
      out += ',';
    }
    append_json_string(out, k);
    out += ':';
    append_json_string(out, v);
  }
  if (any_param) out += '}';
  opt_str_field(out, "auth", id.auth_method);
  if (id.backend_pid != 0) {
    key(out, "backend_pid");
    append_int(out, id.backend_pid);
  }

  if (ev.statement_id != 0) {
    key(out, "statement_id");
    append_uint(out, ev.statement_id);
  }
  opt_str_field(out, "statement", ev.statement);
  opt_str_field(out, "fingerprint", ev.fingerprint);
  if (!ev.classes.empty()) list_field(out, "classes", ev.classes);
  if (!ev.tables_written.empty()) list_field(out, "tables_written", ev.tables_written);
  if (!ev.tables_read.empty()) list_field(out, "tables_read", ev.tables_read);
  opt_str_field(out, "decision", ev.decision);
  opt_str_field(out, "rule", ev.rule);
  if (!ev.token_id.empty() || !ev.approver.empty() || !ev.reason.empty()) {
    key(out, "approval");
    out += "{\"token_id\":";
    append_json_string(out, ev.token_id);
    out += ",\"approver\":";
    append_json_string(out, ev.approver);
    out += ",\"reason\":";
    append_json_string(out, ev.reason);
    out += '}';
  }
  if (ev.outcome) {
    const Outcome& o = *ev.outcome;
    key(out, "outcome");
    out += '{';
    if (o.sqlstate.empty()) {
      out += "\"tag\":";
      append_json_string(out, o.command_tag);
      if (o.rows) {
        out += ",\"rows\":";
        append_int(out, *o.rows);
      }
    } else {
      out += "\"sqlstate\":";
      append_json_string(out, o.sqlstate);
      out += ",\"message\":";
      append_json_string(out, o.message);
    }
    out += '}';
  }
  if (ev.duration_us) {
    key(out, "duration_us");
    append_int(out, *ev.duration_us);
  }
  if (ev.would_have_affected_rows) {
    key(out, "would_have_affected_rows");
    append_int(out, *ev.would_have_affected_rows);
  }
  if (!ev.parameters.empty()) {
    key(out, "parameters");
    out += '[';
    for (std::size_t i = 0; i < ev.parameters.size(); ++i) {
      if (i != 0) out += ',';
      if (ev.parameters[i]) {
        append_json_string(out, *ev.parameters[i]);
      } else {
        out += "null";
      }
    }
    out += ']';
  }
  opt_str_field(out, "detail", ev.detail);
  out += '}';
  return out;
}

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string format_timestamp(std::int64_t ts_us) {
  // Plain arithmetic (no gmtime_r, which takes glibc's timezone lock, and no snprintf): every
  // audit record carries one of these.
  std::int64_t secs = ts_us / 1'000'000;
  std::int64_t frac = ts_us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    secs -= 1;
  }
  std::int64_t days = secs / 86'400;
  std::int64_t sod = secs % 86'400;
  if (sod < 0) {
    sod += 86'400;
    days -= 1;
  }
  const std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{days}}};
  std::string out = "0000-00-00T00:00:00.000000Z";
  auto put = [&out](std::size_t at, std::int64_t v, int width) {
    for (int i = width - 1; i >= 0; --i, v /= 10)
      out[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + v % 10);
  };
  put(0, static_cast<int>(ymd.year()), 4);
  put(5, static_cast<unsigned>(ymd.month()), 2);
  put(8, static_cast<unsigned>(ymd.day()), 2);
  put(11, sod / 3600, 2);
  put(14, sod / 60 % 60, 2);
  put(17, sod % 60, 2);
  put(20, frac, 6);
  return out;
}

std::optional<std::int64_t> parse_timestamp(std::string_view s) {
  int year = 0;
  int mon = 0;
  int day = 0;
  int hour = 0;
  int min = 0;
  int sec = 0;
  if (!parse_digits(s, 0, 4, year) || s.size() < 10 || s[4] != '-' || s[7] != '-' ||
      !parse_digits(s, 5, 2, mon) || !parse_digits(s, 8, 2, day)) {
    return std::nullopt;
  }
  std::size_t pos = 10;
  std::int64_t frac_us = 0;
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == ' ')) {
    if (!parse_digits(s, pos + 1, 2, hour) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !parse_digits(s, pos + 4, 2, min)) {
      return std::nullopt;
    }
    pos += 6;
    if (pos < s.size() && s[pos] == ':') {
      if (!parse_digits(s, pos + 1, 2, sec)) return std::nullopt;
      pos += 3;
      if (pos < s.size() && s[pos] == '.') {
        ++pos;
        std::int64_t scale = 100'000;
        std::size_t digits = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
          frac_us += (s[pos] - '0') * scale;
          scale /= 10;
          ++pos;
          ++digits;
        }
        if (digits == 0) return std::nullopt;
      }
    }
  }
  std::int64_t offset_s = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z' && pos + 1 == s.size()) {
      pos += 1;
    } else if (s[pos] == '+' || s[pos] == '-') {
      int oh = 0;
      int om = 0;
      if (!parse_digits(s, pos + 1, 2, oh)) return std::nullopt;
      std::size_t p = pos + 3;
      if (p < s.size() && s[p] == ':') ++p;
      if (!parse_digits(s, p, 2, om) || p + 2 != s.size()) return std::nullopt;
      offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
      pos = s.size();
    } else {
      return std::nullopt;
    }
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  const std::time_t t = timegm(&tm);
  return (static_cast<std::int64_t>(t) - offset_s) * 1'000'000 + frac_us;
}

}  // namespace pgmoat::audit
