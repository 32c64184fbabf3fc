#include "audit/search.h"

#include <arpa/inet.h>
#include <fnmatch.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <rapidjson/document.h>

#include "audit/files.h"
#include "audit/record.h"
#include "common/toml_reader.h"

namespace pgmoat::audit {
namespace {

std::string_view str(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

bool glob(const std::string& pattern, std::string_view value) {
  return ::fnmatch(pattern.c_str(), std::string(value).c_str(), 0) == 0;
}

bool any_in_array(const rapidjson::Value& obj, const char* key,
                  const std::function<bool(std::string_view)>& pred) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsArray()) return false;
  for (const auto& v : it->value.GetArray()) {
    if (v.IsString() && pred({v.GetString(), v.GetStringLength()})) return true;
  }
  return false;
}

bool table_matches(const std::string& pattern, std::string_view name) {
  if (glob(pattern, name)) return true;
  const std::size_t dot = name.rfind('.');
  return dot != std::string_view::npos && glob(pattern, name.substr(dot + 1));
}

std::optional<std::int64_t> int_member(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return std::nullopt;
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsInt64()) return std::nullopt;
  return it->value.GetInt64();
}

bool matches(const rapidjson::Document& d, const SearchFilter& f) {
  if (f.since_us || f.until_us) {
    auto ts = parse_timestamp(str(d, "ts"));
    if (!ts) return false;
    if (f.since_us && *ts < *f.since_us) return false;
    if (f.until_us && *ts > *f.until_us) return false;
  }
  if (!f.type.empty() && !glob(f.type, str(d, "type"))) return false;
  if (!f.user.empty() && !glob(f.user, str(d, "user"))) return false;
  if (!f.database.empty() && !glob(f.database, str(d, "database"))) return false;
  if (!f.application_name.empty() && !glob(f.application_name, str(d, "application_name"))) {
    return false;
  }
  if (f.client && !cidr_contains(*f.client, str(d, "client_addr"))) return false;
  if (!f.decision.empty() && !glob(f.decision, str(d, "decision"))) return false;
  if (!f.rule.empty() && !glob(f.rule, str(d, "rule"))) return false;
  if (!f.token.empty()) {
    auto it = d.FindMember("approval");
    if (it == d.MemberEnd() || !glob(f.token, str(it->value, "token_id"))) return false;
  }
  if (!f.klass.empty() &&
      !any_in_array(d, "classes", [&](std::string_view c) { return glob(f.klass, c); })) {
    return false;
  }
  if (!f.table.empty()) {
    auto pred = [&](std::string_view t) { return table_matches(f.table, t); };
    if (!any_in_array(d, "tables_written", pred) && !any_in_array(d, "tables_read", pred)) {
      return false;
    }
  }
  return true;
}

Row make_row(const rapidjson::Document& d) {
  Row r;
  std::string_view ts = str(d, "ts");
  // "2024-05-01T12:34:56.123456Z" -> "2024-05-01 12:34:56"
  r.time = ts.size() >= 19 ? std::string(ts.substr(0, 10)) + " " + std::string(ts.substr(11, 8))
                           : std::string(ts);
  r.user_db = std::string(str(d, "user")) + "@" + std::string(str(d, "database"));
  if (r.user_db == "@") r.user_db.clear();
  r.app = str(d, "application_name");
  std::string_view addr = str(d, "client_addr");
  if (!addr.empty()) {
    r.client = addr.find(':') != std::string_view::npos ? "[" + std::string(addr) + "]"
                                                        : std::string(addr);
    if (auto port = int_member(d, "client_port"); port && *port != 0) {
      r.client += ":" + std::to_string(*port);
    }
  }
  r.type = str(d, "type");
  r.decision = str(d, "decision");
  auto cls = d.FindMember("classes");
  if (cls != d.MemberEnd() && cls->value.IsArray()) {
    for (const auto& c : cls->value.GetArray()) {
      if (!c.IsString()) continue;
      if (!r.classes.empty()) r.classes += ',';
      r.classes += c.GetString();
    }
  }
  auto out = d.FindMember("outcome");
  if (out != d.MemberEnd() && out->value.IsObject()) {
    if (auto rows = int_member(out->value, "rows")) {
      r.rows = std::to_string(*rows);
    } else if (auto state = str(out->value, "sqlstate"); !state.empty()) {
      r.rows = "E" + std::string(state);
    }
  } else if (auto would = int_member(d, "would_have_affected_rows")) {
    r.rows = "~" + std::to_string(*would);
  }
  std::string_view text = str(d, "statement");
  if (text.empty()) text = str(d, "detail");
  r.statement.reserve(text.size());
  bool space = false;
  for (char c : text) {  // one line per record: fold whitespace runs
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = true;
      continue;
    }
    if (space && !r.statement.empty()) r.statement += ' ';
    space = false;
    r.statement += c;
  }
  return r;
}

// Display width of UTF-8 text (code points; good enough for a terminal table).
std::size_t width(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string cut(const std::string& s, std::size_t max) {
  if (width(s) <= max) return s;
  std::size_t cps = 0;
  std::size_t i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (cps == max - 1) break;
      ++cps;
    }
  }
  return s.substr(0, i) + "\xE2\x80\xA6";  // "…"
}

}  // namespace

std::optional<Cidr> parse_cidr(std::string_view text) {
  Cidr c;
  std::string addr(text);
  int bits = -1;
  if (auto slash = addr.find('/'); slash != std::string::npos) {
    const std::string b = addr.substr(slash + 1);
    if (b.empty() || b.size() > 3 || !std::all_of(b.begin(), b.end(), ::isdigit)) {
      return std::nullopt;
    }
    bits = std::stoi(b);
    addr.resize(slash);
  }
  if (::inet_pton(AF_INET, addr.c_str(), c.bytes.data()) == 1) {
    c.family = AF_INET;
    c.bits = bits < 0 ? 32 : bits;
    if (c.bits > 32) return std::nullopt;
  } else if (::inet_pton(AF_INET6, addr.c_str(), c.bytes.data()) == 1) {
    c.family = AF_INET6;
    c.bits = bits < 0 ? 128 : bits;
    if (c.bits > 128) return std::nullopt;
  } else {
    return std::nullopt;
  }
  return c;
}

bool cidr_contains(const Cidr& cidr, std::string_view address) {
  std::array<unsigned char, 16> b{};
  const std::string a(address);
  if (::inet_pton(cidr.family, a.c_str(), b.data()) != 1) return false;
  const int full = cidr.bits / 8;
  for (int i = 0; i < full; ++i) {
    if (b[static_cast<std::size_t>(i)] != cidr.bytes[static_cast<std::size_t>(i)]) return false;
  }
  const int rest = cidr.bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xFF << (8 - rest));
  const auto i = static_cast<std::size_t>(full);
  return (b[i] & mask) == (cidr.bytes[i] & mask);
}

std::optional<std::int64_t> parse_time_arg(std::string_view text, std::int64_t now) {
  if (auto ts = parse_timestamp(text)) return ts;
  std::string t(text);
  if (t.size() > 1 && t.back() == 'd') {  // days are common for audits
    const std::string n = t.substr(0, t.size() - 1);
    if (std::all_of(n.begin(), n.end(), ::isdigit) && n.size() < 7) {
      return now - std::stoll(n) * 86'400'000'000LL;
    }
  }
  if (auto ms = cfg::parse_duration_ms(text)) return now - *ms * 1000;
  return std::nullopt;
}

std::uint64_t search_files(const std::vector<std::string>& files, const SearchFilter& filter,
                           const std::function<void(std::string_view, const Row&)>& on_match,
                           std::ostream& warnings) {
  std::uint64_t n = 0;
  for (const auto& file : files) {
    std::ifstream plain;
    std::istringstream unpacked;
    if (file.ends_with(".gz")) {
      unpacked.str(read_file(file));
    } else {
      plain.open(file, std::ios::binary);
      if (!plain) throw std::runtime_error(file + ": cannot read");
    }
    std::istream& in = file.ends_with(".gz") ? static_cast<std::istream&>(unpacked) : plain;
    std::string line;
    std::uint64_t lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      rapidjson::Document d;
      d.Parse(line.data(), line.size());
      if (d.HasParseError() || !d.IsObject()) {
        warnings << file << ":" << lineno << ": skipped: not a JSON record"
                 << (in.eof() ? " (torn last line)" : "") << "\n";
        continue;
      }
      if (!matches(d, filter)) continue;
      ++n;
      on_match(line, make_row(d));
    }
  }
  return n;
}

void print_table(std::ostream& out, const std::vector<Row>& rows, std::size_t statement_width) {
  const Row header{"TIME (UTC)", "USER@DB", "APP",  "CLIENT",   "TYPE",
                   "DECISION",   "CLASSES", "ROWS", "STATEMENT"};
  constexpr std::size_t kCols = 8;  // statement is last and not padded
  auto cells = [](const Row& r) {
    return std::array<const std::string*, kCols + 1>{&r.time,    &r.user_db, &r.app,
                                                     &r.client,  &r.type,    &r.decision,
                                                     &r.classes, &r.rows,    &r.statement};
  };
  std::array<std::size_t, kCols> w{};
  std::array<std::size_t, kCols> max{19, 32, 24, 46, 19, 14, 24, 10};
  for (const Row* r : {&header}) {
    auto c = cells(*r);
    for (std::size_t i = 0; i < kCols; ++i) w[i] = std::max(w[i], width(*c[i]));
  }
  for (const Row& r : rows) {
    auto c = cells(r);
    for (std::size_t i = 0; i < kCols; ++i) w[i] = std::min(max[i], std::max(w[i], width(*c[i])));
  }
  auto print = [&](const Row& r) {
    auto c = cells(r);
    for (std::size_t i = 0; i < kCols; ++i) {
      const std::string s = cut(*c[i], w[i]);
      out << s << std::string(w[i] - width(s) + 2, ' ');
    }
    out << cut(*c[kCols], statement_width) << '\n';
  };
  print(header);
  for (const Row& r : rows) print(r);
}

}  // namespace pgmoat::audit
