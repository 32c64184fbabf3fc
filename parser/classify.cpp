#include "parser/classify.h"
#include "parser/literal_template.h"

#include <cstddef>
#include <cstring>

#include "parser/parse_json.h"
#include "parser/walker.h"

// libpg_query's copies of the server's settings (thread-local, like all its globals). Its
// scanner reads them when it starts on a text.
extern "C" {
extern __thread bool standard_conforming_strings;
extern __thread bool escape_string_warning;
}

namespace pgmoat::parser {
namespace detail {

StringsScope::StringsScope(bool standard)
    : saved_standard_(standard_conforming_strings), saved_warning_(escape_string_warning) {
  standard_conforming_strings = standard;
  escape_string_warning = false;  // the server warns its client; pgmoat has no one to tell
}

StringsScope::~StringsScope() {
  standard_conforming_strings = saved_standard_;
  escape_string_warning = saved_warning_;
}

bool StringsScope::standard() {
  return standard_conforming_strings;
}

namespace {
constexpr std::size_t kThreadBufferSize = 32 * 1024;
constexpr std::size_t kRecursiveParseMaxBytes = 8 * 1024;
thread_local bool t_buffer_busy = false;
// rapidjson puts its ChunkHeader at the start of this buffer: it must be pointer-aligned.
alignas(std::max_align_t) thread_local char t_buffer[kThreadBufferSize];
}  // namespace

ParsedSql::ParsedSql() {
  if (!t_buffer_busy) {
    t_buffer_busy = true;
    owns_thread_buffer_ = true;
    pool_.emplace(t_buffer, kThreadBufferSize);
  } else {
    pool_.emplace();
  }
  doc_.emplace(&*pool_);
}

ParsedSql::~ParsedSql() {
  doc_.reset();
  pool_.reset();
  if (owns_thread_buffer_) t_buffer_busy = false;
  if (have_result_) pg_query_free_parse_result(result_);
}

ParseOutcome ParsedSql::parse(std::string_view sql) {
  ParseOutcome out;
  if (sql.find('\0') != std::string_view::npos) {
    out.error = "statement contains a NUL byte";
    out.error_position = static_cast<int>(sql.find('\0')) + 1;
    return out;
  }
  if (have_result_) {
    pg_query_free_parse_result(result_);
    have_result_ = false;
  }
  const std::string buf(sql);
  result_ = pg_query_parse(buf.c_str());
  have_result_ = true;
  if (result_.error != nullptr) {
    out.error = result_.error->message ? result_.error->message : "syntax error";
    out.error_position = result_.error->cursorpos;
    return out;
  }
  if (result_.parse_tree == nullptr) {
    out.error = "libpg_query returned no parse tree";
    return out;
  }
  // The tree's buffer is ours until pg_query_free_parse_result: read it in place.
  // rapidjson's recursive parser is much faster than its iterative one but takes stack per
  // nesting level. Every level of libpg_query's JSON costs at least ~6 bytes of text, so a
  // short text cannot be deep: parse short trees recursively (a few hundred KiB of stack at
  // worst), long ones iteratively.
  if (std::strlen(result_.parse_tree) <= kRecursiveParseMaxBytes) {
    doc_->ParseInsitu(result_.parse_tree);
  } else {
    doc_->ParseInsitu<rapidjson::kParseIterativeFlag>(result_.parse_tree);
  }
  if (doc_->HasParseError() || !doc_->IsObject()) {
    out.error = "libpg_query parse tree unreadable";
    return out;
  }
  out.ok = true;
  return out;
}

const rapidjson::Value* ParsedSql::stmts() const {
  if (!doc_->IsObject()) return nullptr;
  const Json* s = member(*doc_, "stmts");
  static const rapidjson::Value kEmpty(rapidjson::kArrayType);
  if (s == nullptr) return &kEmpty;  // an empty query string has no "stmts"
  return s->IsArray() ? s : nullptr;
}

std::string_view statement_text(std::string_view sql, const rapidjson::Value& raw_stmt) {
  std::size_t loc = 0;
  std::size_t len = 0;
  if (const Json* l = member(raw_stmt, "stmt_location"); l != nullptr && l->IsInt()) {
    loc = static_cast<std::size_t>(std::max(0, l->GetInt()));
  }
  if (const Json* l = member(raw_stmt, "stmt_len"); l != nullptr && l->IsInt()) {
    len = static_cast<std::size_t>(std::max(0, l->GetInt()));
  }
  if (loc > sql.size()) return {};
  std::string_view text = sql.substr(loc, len == 0 ? std::string_view::npos : len);
  constexpr std::string_view kSpace = " \t\r\n\f\v";
  const auto b = text.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  const auto e = text.find_last_not_of(kSpace);
  return text.substr(b, e - b + 1);
}

}  // namespace detail

namespace {

void finish(Statement& st) {
  if (st.classes == 0) st.classes = bit(StatementClass::other);
  if (st.target.empty()) {
    for (const auto& t : st.tables) {
      if (t.access != Access::read) {
        st.target = t.name;
        break;
      }
    }
  }
  if (st.target.empty() && !st.tables.empty()) st.target = st.tables.front().name;
}

}  // namespace

namespace {

// classify(), or classify_template() when `numbers` is set (then `*numbers` reports whether
// numbers in place of the parameters could change the answer).
Classification classify_text(std::string_view sql, bool* numbers, Strings strings) {
  detail::StringsScope scope(strings == Strings::standard);
  Classification out;
  detail::ParsedSql parsed;
  const detail::ParseOutcome r = parsed.parse(sql);
  const rapidjson::Value* stmts = r.ok ? parsed.stmts() : nullptr;
  if (!r.ok || stmts == nullptr) {
    out.ok = false;
    out.error = r.ok ? "libpg_query parse tree unreadable" : r.error;
    out.error_position = r.error_position;
    return out;
  }
  out.statements.reserve(stmts->Size());
  for (const auto& raw : stmts->GetArray()) {
    const rapidjson::Value* node = detail::member(raw, "stmt");
    if (node == nullptr) continue;
    Statement& st = out.statements.emplace_back();
    st.text = std::string(detail::statement_text(sql, raw));
    detail::Walker w(st, sql, 0);
    w.statement(*node, st.text);
    // Only statements audited by default pay for their shape. The fingerprint cache keys on
    // shapes read with standard strings (fingerprint(text) parses so): none for the others.
    if ((st.classes & ~kReadOnlyClasses) != 0 && strings == Strings::standard) {
      st.shape = detail::shape_digest(*node, numbers != nullptr);
    }
    if (numbers != nullptr) *numbers = *numbers || w.where_depends_on_params();
    if (w.too_deep()) {
      // Fail closed: what we cannot walk we cannot judge.
      out.ok = false;
      out.error = "pgmoat: statement nested too deeply to classify";
      out.statements.clear();
      return out;
    }
    finish(st);
    out.names_prepared = out.names_prepared || !st.prepared_name.empty() || st.discard_all ||
                         st.command == "DEALLOCATE";
  }
  return out;
}

}  // namespace

Classification classify(std::string_view sql, Strings strings) {
  return classify_text(sql, nullptr, strings);
}

Classification classify_template(std::string_view template_text, bool& depends_on_numbers) {
  depends_on_numbers = false;
  return classify_text(template_text, &depends_on_numbers, Strings::standard);
}

std::string normalize(std::string_view sql) {
  if (sql.find('\0') != std::string_view::npos) return std::string(sql);
  const std::string buf(sql);
  PgQueryNormalizeResult r = pg_query_normalize(buf.c_str());
  std::string out = (r.error == nullptr && r.normalized_query != nullptr)
                        ? std::string(r.normalized_query)
                        : std::string(sql);
  pg_query_free_normalize_result(r);
  return out;
}

}  // namespace pgmoat::parser
