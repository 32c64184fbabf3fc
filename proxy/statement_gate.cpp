#include "proxy/statement_gate.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <random>

#include <spdlog/spdlog.h>

#include "audit/audit_log.h"
#include "parser/classify.h"
#include "policy/token.h"
#include "proxy/audit_bridge.h"
#include "proxy/gate_services.h"
#include "proxy/wire/protocol.h"

namespace pgmoat::proxy {

namespace asio = boost::asio;
using parser::StatementClass;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kMarkerWord = "pgmoat_refused_";
constexpr std::string_view kApprovalSetting = "pgmoat.approval";

// Classes that change data, schema, roles or server state are audited write-ahead. Reads,
// transaction control and plain SETs are not (unless statements = "all").
constexpr parser::ClassSet kReadOnly = parser::kReadOnlyClasses;

std::int64_t unix_now() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

// Plain reads and DML: none of them can end a transaction.
constexpr parser::ClassSet kWithinTransaction =
    parser::bit(StatementClass::select) | parser::bit(StatementClass::insert) |
    parser::bit(StatementClass::update) | parser::bit(StatementClass::update_without_where) |
    parser::bit(StatementClass::delete_) | parser::bit(StatementClass::delete_without_where) |
    parser::bit(StatementClass::merge);

bool may_end_a_transaction(const parser::Classification& c) {
  return !c.ok || (c.all_classes() & ~kWithinTransaction) != 0;
}

std::string random_hex(std::size_t n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string out;
  while (out.size() < n) {
    std::uint64_t v = rng();
    for (int i = 0; i < 16 && out.size() < n; ++i, v >>= 4) out.push_back(hex[v & 0xf]);
  }
  return out;
}

std::vector<std::string> class_names(parser::ClassSet s) {
  std::vector<std::string> out;
  for (int i = 0; i < static_cast<int>(StatementClass::kCount); ++i) {
    auto c = static_cast<StatementClass>(i);
    if (parser::has(s, c)) out.emplace_back(parser::class_name(c));
  }
  return out;
}

// Removes `-c pgmoat.approval=TOKEN` (and the `--pgmoat.approval=TOKEN` spelling) from a
// libpq options string; returns the token, or "" when there was none.
std::string take_approval_option(std::string& options) {
  std::vector<std::string> words;
  std::string cur;
  bool escape = false;
  for (char ch : options) {
    if (escape) {
      cur.push_back('\\');
      cur.push_back(ch);
      escape = false;
    } else if (ch == '\\') {
      escape = true;
    } else if (ch == ' ' || ch == '\t') {
      if (!cur.empty()) words.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(ch);
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  std::string token;
  std::vector<std::string> kept;
  const std::string assign = std::string(kApprovalSetting) + "=";
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w == "-c" && i + 1 < words.size() && words[i + 1].starts_with(assign)) {
      token = words[i + 1].substr(assign.size());
      ++i;
    } else if (w.starts_with("-c" + assign)) {
      token = w.substr(2 + assign.size());
    } else if (w.starts_with("--" + assign)) {
      token = w.substr(2 + assign.size());
    } else {
      kept.push_back(w);
    }
  }
  if (token.empty()) return token;
  std::string rebuilt;
  for (const auto& w : kept) {
    if (!rebuilt.empty()) rebuilt.push_back(' ');
    rebuilt += w;
  }
  options = rebuilt;
  return token;
}

// Case-insensitive: does `text` begin with `word` (lower-case)?
bool starts_with_word(std::string_view text, std::string_view word) {
  if (text.size() < word.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != word[i]) return false;
  }
  return true;
}

// Case-insensitive: does `text` contain `word` (lower-case) anywhere?
bool contains_word(std::string_view text, std::string_view word) {
  for (std::size_t i = 0; i + word.size() <= text.size(); ++i) {
    if (starts_with_word(text.substr(i), word)) return true;
  }
  return false;
}

const char* kApprovalHint =
    "Ask an approver for a token (pgmoat token issue ...), then run "
    "SET pgmoat.approval = '<token>' or connect with options=-c pgmoat.approval=<token>.";

}  // namespace

StatementGate::StatementGate(GateServices* services, SessionInfo& info)
    : services_(services), info_(info), marker_prefix_(std::string(kMarkerWord) + random_hex(12)) {}

bool StatementGate::pipelinable(const parser::Classification& c) const {
  constexpr parser::ClassSet kDml =
      parser::bit(StatementClass::insert) | parser::bit(StatementClass::update) |
      parser::bit(StatementClass::delete_) | parser::bit(StatementClass::merge) |
      parser::bit(StatementClass::select) | parser::bit(StatementClass::update_without_where) |
      parser::bit(StatementClass::delete_without_where);
  if (info_.transaction_status != 'T' || !c.ok) return false;
  for (const auto& st : c.statements) {
    if ((st.classes & ~kDml) != 0 || st.opaque) return false;
  }
  return true;
}

bool StatementGate::commits(const parser::Classification& c) {
  for (const auto& st : c.statements) {
    if (parser::has(st.classes, StatementClass::transaction) &&
        (st.command == "COMMIT" || st.command == "PREPARE TRANSACTION" ||
         st.command == "COMMIT PREPARED")) {
      return true;
    }
  }
  return false;
}

void StatementGate::append_pipelined(std::vector<std::string> records) {
  for (auto& rec : records) {
    const std::uint64_t ticket = services_->audit->append_deferred(std::move(rec));
    if (flight_.since == 0) flight_.since = ticket;
    flight_.through = ticket;
  }
}

asio::awaitable<bool> StatementGate::drain() {
  if (flight_.since != 0) {
    // Not `if (!co_await ...)`: GCC 12 miscompiled that form here (SIGILL on resume).
    const bool ok = co_await sync_records(services_->audit.get(), flight_.since, flight_.through);
    if (!ok) flight_.failed = true;
    flight_.since = flight_.through = 0;
  }
  co_return !flight_.failed;
}

StatementGate::Verdict StatementGate::refuse_unrecorded(const wire::ParseMsg* parse,
                                                        bool extended) {
  return refuse({"58030", "pgmoat: the audit trail cannot be written; write refused",
                 "pgmoat records every write before forwarding it and failed to do so.",
                 "Check the disk and permissions of the audit path; reads still work."},
                parse, extended);
}

StatementGate::Verdict StatementGate::refuse_unparsed(const ExecutePlan& plan) {
  const std::string& portal = plan.unknown->portal;
  const std::string& statement = plan.unknown->statement;
  const std::string& changed = plan.unknown->changed;
  if (plan.unanswered) {
    return refuse({"55000",
                   fmt::format("pgmoat: statement \"{}\" was parsed again and the server has not "
                               "answered yet; Execute of portal \"{}\" refused",
                               statement, portal),
                   "The name already stood for a statement, so the server may refuse the new "
                   "Parse and keep the old one: pgmoat cannot tell which one this would run.",
                   "Read the Parse's answer before executing, or Close the statement before "
                   "parsing it again."},
                  nullptr, true);
  }
  if (plan.unknown->uncertain) {
    return refuse({"55000",
                   fmt::format("pgmoat: portal \"{}\" may still be an earlier one: its Bind (of "
                               "statement \"{}\") was in a Sync group that failed; Execute "
                               "refused",
                               portal, statement),
                   "After an error the server skips or refuses a Bind, and ROLLBACK TO SAVEPOINT "
                   "keeps the portals made before the savepoint: pgmoat cannot tell which "
                   "statement the portal runs.",
                   "Bind the portal again before executing it."},
                  nullptr, true);
  }
  if (!changed.empty()) {
    return refuse({"55000",
                   fmt::format("pgmoat: prepared statement \"{}\" changed since statement \"{}\", "
                               "which runs it, was parsed; Execute of portal \"{}\" refused",
                               changed, statement, portal),
                   fmt::format("pgmoat judged \"{}\" at its Parse, as what \"{}\" stood for then.",
                               statement, changed),
                   fmt::format("Parse \"{}\" again.", statement)},
                  nullptr, true);
  }
  const bool sql = sql_prepared_.find(statement) != sql_prepared_.end();
  return refuse(
      {"0A000",
       fmt::format("pgmoat: portal \"{}\" is bound to statement \"{}\", which no Parse of "
                   "this session prepared; Execute refused",
                   portal, statement),
       sql ? "It was prepared with SQL PREPARE: pgmoat judges such a statement when it runs "
             "through EXECUTE, not through a protocol Bind."
           : "pgmoat cannot tell what it would run.",
       fmt::format("Run EXECUTE {} instead, or prepare the statement with Parse.", statement)},
      nullptr, true);
}

StatementGate::Verdict StatementGate::refuse_commit(const wire::ParseMsg* parse, bool extended) {
  return refuse({"58030",
                 "pgmoat: the audit trail could not record this transaction's writes; "
                 "COMMIT refused",
                 "pgmoat records every write before it can commit and failed to do so.",
                 "ROLLBACK and retry once the audit path is writable again."},
                parse, extended);
}

// ---- Session lifecycle ---------------------------------------------------------------------

std::optional<std::string> StatementGate::on_startup(wire::StartupPacket& startup) {
  for (auto it = startup.params.begin(); it != startup.params.end(); ++it) {
    if (it->first != "options") continue;
    std::string token = take_approval_option(it->second);
    if (token.empty()) break;
    if (it->second.empty()) startup.params.erase(it);
    if (services_ == nullptr) return "pgmoat: approval tokens are not configured";
    auto keys = services_->approvers.load();
    auto result = policy::verify_token(token, *keys, unix_now(), services_->revocations.get());
    if (!result.ok())
      return "pgmoat: approval token in connection options refused: " + result.message;
    approvals_ = {policy::to_approval(*result.claims)};
    approval_max_uses_ = result.claims->max_uses;
    spdlog::info("approval token {} (approver {}) presented at connect by {}@{}", result.claims->id,
                 result.claims->approver, info_.user, info_.database);
    break;
  }
  return std::nullopt;
}

void StatementGate::on_accepted() {
  if (services_ == nullptr || !services_->audit) return;
  identity_ = make_identity(info_);
  audit::Event e;
  e.type = audit::EventType::kConnectionAccepted;
  audit_async(std::move(e));
}

void StatementGate::on_login_failed(const std::string& reason) {
  if (services_ == nullptr || !services_->audit) return;
  identity_ = make_identity(info_);
  audit::Event e;
  e.type = audit::EventType::kAuthFailed;
  e.detail = reason;
  audit_async(std::move(e));
}

void StatementGate::on_login_complete() {
  identity_ = make_identity(info_);
  if (services_ == nullptr || !services_->audit) return;
  audit::Event e;
  e.type = audit::EventType::kAuthenticated;
  if (!approvals_.empty()) {
    e.token_id = approvals_.front().id;
    e.approver = approvals_.front().approver;
    e.reason = approvals_.front().reason;
  }
  audit_async(std::move(e));
}

void StatementGate::on_session_end() {
  if (services_ == nullptr || !services_->audit || identity_.user.empty()) return;
  audit::Event e;
  e.type = audit::EventType::kConnectionClosed;
  audit_async(std::move(e));
}

// ---- Client side ---------------------------------------------------------------------------

void StatementGate::drop_approval() {
  approvals_.clear();
  approval_max_uses_.reset();
  approval_local_ = false;
  approval_in_transaction_ = false;
}

void StatementGate::recheck_revocation() {
  if (approvals_.empty() || !services_->revocations) return;
  const std::string& id = approvals_.front().id;
  if (!services_->revocations->is_revoked(id)) return;
  spdlog::warn("session {}: approval token {} was revoked; dropping it", info_.id, id);
  revoked_note_ = "approval token " + id + " was revoked";
  drop_approval();
}

const policy::SessionContext& StatementGate::context() {
  if (context_.user.empty()) {  // built once: the identity does not change in a session
    context_.user = info_.user;
    context_.database = info_.database;
    context_.application_name = info_.application_name;
    context_.client_addr = info_.client_addr;
    context_.tls_subject = info_.tls_subject;
    context_.approvals = &approvals_;
  }
  context_.now = unix_now();
  return context_;
}

StatementGate::Verdict StatementGate::refuse(Refusal r, const wire::ParseMsg* parse,
                                             bool extended) {
  std::string marker = marker_prefix_ + std::to_string(next_marker_++);
  spdlog::warn("session {} {}@{} app={} client={}: {} ({})", info_.id, info_.user, info_.database,
               info_.application_name, info_.client_addr, r.message, r.detail);
  refusals_.emplace(marker, std::move(r));
  Verdict v;
  v.replace = true;
  v.refused = true;
  if (parse != nullptr) {
    v.bytes = wire::build_parse(parse->name, marker, parse->param_types);
  } else if (extended) {
    // In place of an Execute: a Parse of a throwaway name keeps the extended-protocol
    // flow (error, then nothing until Sync) and leaves the client's statements alone.
    static constexpr std::uint8_t kNoParams[2] = {0, 0};
    v.bytes = wire::build_parse(marker, marker, wire::Bytes(kNoParams, 2));
    parses_in_flight_.push_back(ParseInFlight{true, {}, nullptr, nullptr, boundaries_});
  } else {
    v.bytes = wire::build_query(marker);
  }
  return v;
}

std::optional<StatementGate::Verdict> StatementGate::refuse_reserved(std::string_view name,
                                                                     const wire::ParseMsg* parse,
                                                                     bool extended) {
  if (!name.starts_with(RowGuard::kNamePrefix)) return std::nullopt;
  return refuse({"42939",
                 fmt::format("pgmoat: prepared statement and portal names starting with \"{}\" "
                             "are reserved for pgmoat's row guard",
                             RowGuard::kNamePrefix),
                 fmt::format("\"{}\" is one of them.", name), "Choose another name."},
                parse, extended);
}

std::optional<StatementGate::Verdict> StatementGate::handle_approval(
    const parser::Classification& c, const wire::ParseMsg* parse) {
  const parser::Statement* set = nullptr;
  for (const auto& st : c.statements) {
    if (st.set_name == kApprovalSetting) set = &st;
    if ((st.is_reset && st.set_name == "all") || starts_with_word(st.text, "discard")) {
      drop_approval();  // the server-side pgmoat.approval_id goes with it
    }
    if (starts_with_word(st.text, "discard") || starts_with_word(st.text, "deallocate")) {
      ++discards_;
    }
    // set_config('pgmoat.approval', ...) would carry the token to the server and its logs.
    for (const auto& f : st.functions) {
      if (f != "set_config") continue;
      if (contains_word(st.text, kApprovalSetting)) {
        return refuse(
            {"42501", "pgmoat: set_config cannot carry an approval token; use SET pgmoat.approval",
             "set_config would send the token to the server and its logs.",
             "Send SET pgmoat.approval = '<token>' as a statement of its own."},
            parse);
      }
    }
  }
  if (set == nullptr) return std::nullopt;
  if (c.statements.size() != 1) {
    return refuse({"42501", "pgmoat: SET pgmoat.approval must be sent as a statement of its own",
                   "The token would otherwise reach the server with the other statements.",
                   "Send SET pgmoat.approval = '<token>' by itself, then the statements."},
                  parse);
  }
  auto forward = [&](const std::string& sql) {
    Verdict v;
    v.replace = true;
    v.bytes = parse != nullptr ? wire::build_parse(parse->name, sql, parse->param_types)
                               : wire::build_query(sql);
    return v;
  };
  if (set->is_reset || set->set_value.empty()) {
    drop_approval();
    return forward("RESET pgmoat.approval_id");
  }
  auto keys = services_->approvers.load();
  auto result =
      policy::verify_token(set->set_value, *keys, unix_now(), services_->revocations.get());
  if (!result.ok()) {
    return refuse({"42501", "pgmoat: approval token refused: " + result.message,
                   result.claims ? "token " + result.claims->id + " by " + result.claims->approver
                                 : std::string("the token could not be verified"),
                   kApprovalHint},
                  parse);
  }
  approvals_ = {policy::to_approval(*result.claims)};
  approval_max_uses_ = result.claims->max_uses;
  approval_local_ = set->set_local;
  approval_in_transaction_ = info_.transaction_status != 'I';
  revoked_note_.clear();
  audit::Event e;
  e.type = audit::EventType::kApprovalUse;
  e.decision = "presented";
  e.token_id = result.claims->id;
  e.approver = result.claims->approver;
  e.reason = result.claims->reason;
  audit_async(std::move(e));
  spdlog::info("session {}: approval token {} by {} active ({})", info_.id, result.claims->id,
               result.claims->approver, result.claims->reason);
  // The id is harmless to show the server; the token itself never reaches it.
  return forward(std::string(set->set_local ? "SET LOCAL" : "SET") + " pgmoat.approval_id = '" +
                 result.claims->id + "'");
}

namespace {

// A statement that runs the prepared statement it names: EXECUTE, EXPLAIN ANALYZE EXECUTE,
// CREATE TABLE AS EXECUTE. (A function whose body names one runs it only when called, and its
// CREATE is marked opaque.)
bool runs_prepared(const parser::Statement& st) {
  return !st.prepared_name.empty() && (st.command == "EXECUTE" || st.command == "EXPLAIN ANALYZE" ||
                                       st.command == "CREATE TABLE AS");
}

// What the statements before `end` in `c` do to `name`: it is prepared (true), dropped
// (false), or neither (nullopt). The last of them that names it (or drops every name) decides.
std::optional<bool> named_before(const parser::Classification& c, std::size_t end,
                                 std::string_view name) {
  for (std::size_t i = end; i-- > 0;) {
    const auto& st = c.statements[i];
    if (st.discard_all) return false;
    if (st.command == "PREPARE" && st.prepared_name == name) return true;
    if (st.command == "DEALLOCATE" && (st.prepared_name.empty() || st.prepared_name == name)) {
      return false;
    }
  }
  return std::nullopt;
}

// Adds what `body` does (a Statement, or a SQL PREPARE's SqlPrepared) to `into` (either).
template <class Into, class Body>
void add_body(Into& into, const Body& body) {
  into.classes |= body.classes;
  into.tables.insert(into.tables.end(), body.tables.begin(), body.tables.end());
  into.functions.insert(into.functions.end(), body.functions.begin(), body.functions.end());
  if (!body.target.empty()) into.target = body.target;
}

}  // namespace

std::shared_ptr<const parser::Classification> StatementGate::resolve_execute(
    const parser::Classification& c, std::string& chained) {
  std::shared_ptr<parser::Classification> copy;
  for (std::size_t i = 0; i < c.statements.size(); ++i) {
    const auto& st = c.statements[i];
    if (!runs_prepared(st)) continue;
    // The server has one namespace for both kinds: a name in both maps is one pgmoat cannot
    // tell apart (a PREPARE that failed on a taken name), so it is judged as both.
    auto sql = sql_prepared_.find(st.prepared_name);
    auto parsed = statements_.find(st.prepared_name);
    const bool have_parsed = parsed != statements_.end() && parsed->second != nullptr &&
                             parsed->second->classification != nullptr;
    if (sql == sql_prepared_.end() && !have_parsed) continue;
    if (!copy) copy = std::make_shared<parser::Classification>(c);
    auto& x = copy->statements[i];
    // A Parse of the name still unanswered may be refused: the server then keeps what the name
    // stood for before.
    auto add_parsed = [&](const parser::Classification& body) {
      if (!body.ok && copy->ok) {
        copy->ok = false;
        copy->error = fmt::format("prepared statement \"{}\" could not be parsed: {}",
                                  st.prepared_name, body.error);
        copy->error_position = 0;
      }
      for (const auto& b : body.statements) {
        // Only a Parse can prepare an EXECUTE (SQL PREPARE's grammar has none).
        if (runs_prepared(b) && chained.empty()) {
          chained = fmt::format("prepared statement \"{}\" runs prepared statement \"{}\"",
                                st.prepared_name, b.prepared_name);
        }
        add_body(x, b);
      }
    };
    if (have_parsed) add_parsed(*parsed->second->classification);
    if (sql != sql_prepared_.end()) add_body(x, sql->second);
    for (const auto& f : parses_in_flight_) {
      if (f.marker || f.name != st.prepared_name || f.previous == nullptr ||
          f.previous->classification == nullptr) {
        continue;
      }
      add_parsed(*f.previous->classification);
    }
  }
  return copy;
}

const parser::Statement* StatementGate::executes_unknown(const parser::Classification& c) const {
  for (std::size_t i = 0; i < c.statements.size(); ++i) {
    const auto& st = c.statements[i];
    if (!runs_prepared(st)) continue;
    const std::optional<bool> before = named_before(c, i, st.prepared_name);
    if (before) {
      if (*before) continue;
      return &st;
    }
    if (!sql_prepared_.contains(st.prepared_name) && !statements_.contains(st.prepared_name)) {
      return &st;
    }
  }
  return nullptr;
}

void StatementGate::follow_names(const parser::Classification& c, std::uint64_t before) {
  const std::size_t first_drop = pending_drops_.size();
  for (const auto& st : c.statements) {  // in order: DEALLOCATE x; PREPARE x AS ... keeps x
    if (st.discard_all || st.command == "DEALLOCATE") {
      const bool all = st.discard_all || st.prepared_name.empty();
      pending_drops_.push_back(PendingDrop{
          before, errors_, versions_, all ? std::string() : st.prepared_name, all, false, {}});
      continue;
    }
    if (st.command != "PREPARE" || st.prepared_name.empty()) continue;
    remember_prepare(st);
    // After a drop of the name in this same text: once the drop has taken effect, the name is
    // this body alone.
    for (std::size_t i = pending_drops_.size(); i-- > first_drop;) {
      PendingDrop& d = pending_drops_[i];
      if (!d.all && d.name != st.prepared_name) continue;
      SqlPrepared body;
      add_body(body, st);
      d.replacements.emplace_back(st.prepared_name, std::move(body));
      break;
    }
  }
}

void StatementGate::apply_drop(const PendingDrop& d) {
  if (d.portal) {
    auto it = portals_.find(d.name);
    if (it == portals_.end() || it->second.version > d.version) return;  // bound again since
    if (auto v = portal_values_.find(d.name); v != portal_values_.end()) portal_values_.erase(v);
    portals_.erase(it);
    return;
  }
  for (const auto& [name, body] : d.replacements) {
    SqlPrepared& p = sql_prepared_[name];
    p = body;
    p.version = ++versions_;  // newer than the drop: it stays
  }
  // What was prepared after the drop was sent stays.
  auto older_parsed = [&](const auto& entry) {
    return entry.second == nullptr || entry.second->version <= d.version;
  };
  auto older_sql = [&](const auto& entry) { return entry.second.version <= d.version; };
  if (d.all) {
    std::erase_if(statements_, older_parsed);
    std::erase_if(sql_prepared_, older_sql);
    return;
  }
  if (auto it = statements_.find(d.name); it != statements_.end() && older_parsed(*it)) {
    statements_.erase(it);
  }
  if (auto it = sql_prepared_.find(d.name); it != sql_prepared_.end() && older_sql(*it)) {
    sql_prepared_.erase(it);
  }
}

void StatementGate::remember_prepares(const parser::Classification& c) {
  for (const auto& st : c.statements) remember_prepare(st);
}

void StatementGate::remember_prepare(const parser::Statement& st) {
  if (st.command != "PREPARE" || st.prepared_name.empty()) return;
  // A name still known: judged as both bodies (see the declaration).
  SqlPrepared& p = sql_prepared_[st.prepared_name];
  add_body(p, st);
  p.version = ++versions_;
}

StatementGate::Prepared::Runs StatementGate::runs_now(const std::string& name) const {
  Prepared::Runs r{name, 0, 0};
  if (auto it = statements_.find(name); it != statements_.end() && it->second != nullptr) {
    r.parsed = it->second->version;
  }
  if (auto it = sql_prepared_.find(name); it != sql_prepared_.end()) r.sql = it->second.version;
  return r;
}

bool StatementGate::is_audited(const parser::Statement& st) const {
  if (services_->audit_settings.statements == audit::Settings::Statements::kAll) return true;
  return (st.classes & ~kReadOnly) != 0;
}

audit::Event StatementGate::statement_event(const parser::Statement& st, audit::EventType type) {
  audit::Event e;
  e.type = type;
  e.statement = services_->audit_settings.text == audit::Settings::Text::kNormalized
                    ? parser::normalize(st.text)
                    : st.text;
  e.fingerprint = parser::fingerprint(st);
  e.classes = class_names(st.classes);
  for (const auto& t : st.tables) {
    (t.access == parser::Access::read ? e.tables_read : e.tables_written).push_back(t.name);
  }
  return e;
}

std::string StatementGate::encode(const audit::Event& e) {
  return audit::encode(identity_, e);
}

void StatementGate::audit_async(audit::Event e) {
  if (services_ == nullptr || !services_->audit) return;
  append_async(services_->audit.get(), encode(e));
}

const PolicySnapshot& StatementGate::current_policy() {
  const auto generation = services_->policy_generation.load(std::memory_order_acquire);
  if (!policy_ || generation != policy_generation_) {
    policy_ = services_->policy.load();
    policy_generation_ = generation;
  }
  return *policy_;
}

std::optional<StatementGate::Verdict> StatementGate::decide_now(
    std::shared_ptr<const parser::Classification>& c, std::string_view sql,
    const wire::ParseMsg* parse) {
  decided_.clear();
  // PREPARE / EXECUTE / DEALLOCATE of a row-guard statement. A text that did not parse
  // (allowed unparsed with on_parse_error = "allow") is not read: refused if it names one.
  for (const auto& st : c->statements) {
    if (auto v = refuse_reserved(st.prepared_name, parse, false)) return v;
  }
  if (!c->ok && contains_word(sql, RowGuard::kNamePrefix)) {
    return refuse_reserved(RowGuard::kNamePrefix, parse, false);
  }
  if (const parser::Statement* st = c->names_prepared ? executes_unknown(*c) : nullptr) {
    return refuse(
        {"26000",
         fmt::format("pgmoat: prepared statement \"{}\" is not known to pgmoat; {} refused",
                     st->prepared_name, st->command),
         "No PREPARE or Parse of that name passed through pgmoat in this session (or "
         "it was deallocated since), so pgmoat cannot tell what it would run.",
         "Prepare the statement in this session, through pgmoat."},
        parse);
  }
  if (auto v = handle_approval(*c, parse)) return v;
  // EXECUTE of a statement prepared earlier (perhaps under an approval since ended) is judged
  // by what it runs, not as a harmless `other`.
  if (c->names_prepared) {
    std::string chained;
    if (auto resolved = resolve_execute(*c, chained)) c = std::move(resolved);
    if (!chained.empty()) {
      return refuse({"0A000",
                     fmt::format("pgmoat: {}; pgmoat does not follow prepared statements that "
                                 "run other prepared statements",
                                 chained),
                     "pgmoat judges EXECUTE by what the prepared statement runs. A statement "
                     "prepared from the text EXECUTE runs whatever the other name stands for "
                     "when it runs, which pgmoat does not follow.",
                     "Execute the other prepared statement directly."},
                    parse);
    }
  }
  // A COMMIT first waits for the records of its transaction's writes (decide_rest()).
  if (must_drain(*c)) return std::nullopt;
  if (allowed_without_record(*c)) return Verdict{};
  return std::nullopt;
}

bool StatementGate::must_drain(const parser::Classification& c) const {
  return (flight_.since != 0 || flight_.failed) && commits(c);
}

bool StatementGate::allowed_without_record(const parser::Classification& c) {
  // No rule can apply and nothing needs a record: skips building a Decision.
  if (!current_policy().trivially_allowed(c)) return false;
  if (!services_->audit) return true;
  for (const auto& st : c.statements) {
    if (is_audited(st)) return false;
  }
  return true;
}

asio::awaitable<StatementGate::Verdict> StatementGate::decide_rest(
    std::shared_ptr<const parser::Classification> c, std::string_view own_statement,
    std::string_view sql, const wire::ParseMsg* parse) {
  // Before anything else, the fast path included: COMMIT waits for the records of its
  // transaction's writes, and is refused if one could not be written.
  if (must_drain(*c)) {
    const bool drained = co_await drain();
    if (!drained) co_return refuse_commit(parse);
    if (allowed_without_record(*c)) co_return Verdict{};
  }

  const PolicySnapshot& snapshot = current_policy();
  const policy::Policy& pol = snapshot.policy;
  const bool audit_on = static_cast<bool>(services_->audit);
  const bool trivial = snapshot.trivially_allowed(*c);
  // From here the statement's text may be shown or recorded: its own, not a template's.
  if (c->shared_template) c = parser::with_own_text({std::move(c), own_statement});
  recheck_revocation();
  // Use counts come from the shared store, so every instance sees the same number.
  if (!approvals_.empty() && approval_max_uses_) {
    std::int64_t used = *approval_max_uses_;  // unreadable store: no uses left (fail closed)
    if (services_->approval_store) {
      try {
        used = services_->approval_store->uses(approvals_.front().id);
      } catch (const std::exception& e) {
        spdlog::error("approval use counts unreadable: {}", e.what());
      }
    }
    approvals_.front().uses_left = *approval_max_uses_ - used;
  }
  policy::Decision d;
  if (trivial) {
    d.statements.resize(c->statements.size());  // allowed, no rule: what evaluate() would say
  } else {
    d = policy::evaluate(*c, context(), pol);
  }
  if (!d.allowed) {
    if (audit_on) {
      std::vector<std::string> records;
      for (std::size_t i = 0; i < c->statements.size() && i < d.statements.size(); ++i) {
        if (d.statements[i].allowed) continue;
        auto e = statement_event(c->statements[i], audit::EventType::kRefusal);
        e.decision = std::string(policy::action_name(d.statements[i].action));
        e.rule = d.statements[i].rule;
        e.detail = d.statements[i].message;
        records.push_back(encode(e));
      }
      if (c->statements.empty() || !c->ok) {
        audit::Event e;
        e.type = audit::EventType::kRefusal;
        e.statement = std::string(sql);
        e.decision = c->ok ? "refused" : "parse_error";
        e.detail = d.message;
        records.push_back(encode(e));
      }
      for (auto& r : records) append_async(services_->audit.get(), std::move(r));
    }
    std::string detail = d.detail;
    if (!revoked_note_.empty()) detail += (detail.empty() ? "" : "; ") + revoked_note_;
    co_return refuse({"42501", d.message, detail, d.hint}, parse);
  }

  auto guard = guard_for(c, d);
  if (guard && parse == nullptr && block_change_at_ && *block_change_at_ + 1 >= boundaries_) {
    // An Execute after the last boundary before this Query (no Sync since) may have begun or
    // ended a transaction block that no ReadyForQuery will report before the guard starts,
    // and the block decides how the guard runs.
    co_return refuse({"0A000",
                      "pgmoat: a statement under a row limit (rule \"" + guard->rule +
                          "\") cannot be sent as a simple Query before the Sync of the "
                          "extended-protocol statement sent before it",
                      "pgmoat runs such a statement in a transaction of its own unless the "
                      "session is in a transaction block. The statement executed before it "
                      "with no Sync since may have begun or ended one, and the server has not "
                      "said so yet.",
                      "Send Sync before the Query."},
                     nullptr);
  }
  if (guard && c->statements.size() > 1) {
    // The guard wraps the whole query string in its own transaction (or counts around it):
    // transaction control or COPY inside it would end or interrupt that transaction.
    constexpr parser::ClassSet kCannotWrap =
        parser::bit(StatementClass::transaction) | parser::bit(StatementClass::copy_from) |
        parser::bit(StatementClass::copy_to) | parser::bit(StatementClass::copy_program);
    for (const auto& st : c->statements) {
      if ((st.classes & kCannotWrap) == 0) continue;
      co_return refuse({"42501",
                        "pgmoat: a statement under a row limit (rule \"" + guard->rule +
                            "\") cannot share a query string with " +
                            (st.command.empty() ? std::string("this statement") : st.command),
                        "pgmoat counts the rows such a statement touches inside a transaction "
                        "of its own; transaction control and COPY in the same query string "
                        "would end or interrupt it.",
                        "Send the " + (st.command.empty() ? std::string("statement") : st.command) +
                            " as a query of its own (psql -f and most drivers do so)."},
                       parse);
    }
  }

  // Count approval uses before anything runs; a use that cannot be recorded refuses.
  for (std::size_t k = 0; k < d.approvals_used.size(); ++k) {
    const std::string& id = d.approvals_used[k];
    const policy::Approval* a = nullptr;
    for (const auto& x : approvals_) {
      if (x.id == id) a = &x;
    }
    if (a == nullptr) continue;
    if (approval_max_uses_ && !services_->approval_store) {
      co_return refuse({"42501",
                        "pgmoat: approval token " + id +
                            " limits its uses, but "
                            "approvals.state_dir is not configured to count them",
                        "token " + id, "Set [approvals] state_dir in the pgmoat config."},
                       parse);
    }
    if (!services_->approval_store) continue;
    // One use per statement the token allowed; try_consume compares with the token's total.
    const std::int64_t uses =
        k < d.approval_uses.size() ? std::max<std::int64_t>(1, d.approval_uses[k]) : 1;
    for (std::int64_t u = 0; u < uses; ++u) {
      std::string err;
      if (!services_->approval_store->try_consume(id, approval_max_uses_, &err)) {
        co_return refuse(
            {"42501",
             err.empty() ? "pgmoat: approval token " + id + " has no uses left"
                         : "pgmoat: approval token " + id + " use not recorded: " + err,
             "token " + id + " by " + a->approver, kApprovalHint},
            parse);
      }
    }
  }

  if (audit_on) {
    std::vector<std::string> records;
    bool must_wait = false;
    for (std::size_t i = 0; i < c->statements.size() && i < d.statements.size(); ++i) {
      const auto& st = c->statements[i];
      const auto& v = d.statements[i];
      if (v.would_refuse) {
        auto e = statement_event(st, audit::EventType::kWouldRefuse);
        e.decision = "would_refuse";
        e.rule = v.rule;
        e.detail = v.message;
        records.push_back(encode(e));
      }
      if (!v.approval_id.empty()) last_approval_id_ = v.approval_id;
      // Over the extended protocol each Execute writes the record, not the Parse.
      if (parse != nullptr || (!is_audited(st) && v.approval_id.empty())) continue;
      auto e = statement_event(st, audit::EventType::kStatement);
      if (decided_.size() < c->statements.size()) decided_.resize(c->statements.size());
      decided_[i] = std::make_shared<const audit::Event>(e);  // the outcome repeats it
      e.statement_id = next_statement_id_ + i;
      e.decision = v.approval_id.empty() ? "allow" : "approved";
      e.rule = v.rule;
      if (!v.approval_id.empty()) {
        for (const auto& a : approvals_) {
          if (a.id != v.approval_id) continue;
          e.token_id = a.id;
          e.approver = a.approver;
          e.reason = a.reason;
        }
      }
      records.push_back(encode(e));
      must_wait = true;
    }
    if (!c->ok && parse == nullptr) {
      audit::Event e;
      e.type = audit::EventType::kStatement;
      e.statement = std::string(sql);
      e.decision = "allow_unparsed";
      e.detail = c->error;
      records.push_back(encode(e));
      must_wait = true;
    }
    if (must_wait && pipelinable(*c)) {
      append_pipelined(std::move(records));
    } else if (must_wait) {
      // Write-ahead: the record is on disk before the statement reaches the server.
      if (!co_await append_durably(services_->audit.get(), std::move(records))) {
        co_return refuse_unrecorded(parse);
      }
    } else {
      for (auto& r : records) append_async(services_->audit.get(), std::move(r));
    }
  }
  last_guard_ = guard;
  Verdict v;
  v.guard = std::move(guard);
  co_return v;
}

std::shared_ptr<const GuardSpec> StatementGate::guard_for(
    const std::shared_ptr<const parser::Classification>& c, const policy::Decision& d) {
  const policy::RowLimit* tightest = nullptr;
  std::size_t index = 0;
  for (std::size_t i = 0; i < d.statements.size(); ++i) {
    const auto& limit = d.statements[i].row_limit;
    if (!limit) continue;
    if (tightest == nullptr || limit->max_rows < tightest->max_rows ||
        (limit->max_rows == tightest->max_rows && limit->enforce && !tightest->enforce)) {
      tightest = &*limit;
      index = i;
    }
  }
  if (tightest == nullptr) return nullptr;
  auto spec = std::make_shared<GuardSpec>();
  spec->max_rows = tightest->max_rows;
  spec->enforce = tightest->enforce;
  spec->single_statement = c->statements.size() == 1;
  spec->rule = tightest->rule;
  spec->message = tightest->message;
  spec->hint = tightest->hint;
  spec->classification = c;
  spec->statement = index;
  return spec;
}

std::string StatementGate::refuse_guarded(const RowGuard& g, RowGuard::Result r, bool in_place) {
  const GuardSpec& spec = g.spec();
  const bool extended = g.mode() == RowGuard::Mode::extended;
  Refusal ref;
  std::string rows_text;
  if (r == RowGuard::Result::over) {
    ref.sqlstate = "42501";
    ref.message = spec.message;
    ref.detail = "It touched " + std::to_string(g.rows()) + " rows; the limit is " +
                 std::to_string(spec.max_rows) + ".";
    if (std::string b = g.breakdown(); !b.empty()) ref.detail += " Rows by table: " + b + ".";
    ref.hint = spec.hint;
  } else if (r == RowGuard::Result::too_large) {
    ref.sqlstate = "54000";
    ref.message = "pgmoat: the results of a statement under a row limit (rule \"" + spec.rule +
                  "\") are too large to hold while its rows are counted";
    ref.detail = "pgmoat holds at most " + std::to_string(RowGuard::kMaxHeldBytes >> 20) +
                 " MiB of results until it knows how many rows the statement touched.";
    ref.hint = "Send the statement without RETURNING or as a query of its own.";
  } else {
    ref.sqlstate = "58000";
    ref.message = "pgmoat: could not count the rows a statement under a row limit (rule \"" +
                  spec.rule + "\") touched; refused";
    ref.detail = g.count_error();
    ref.hint = "pgmoat refuses what it cannot count. Check the server log.";
  }
  ref.detail += g.mode() == RowGuard::Mode::simple_idle
                    ? " Nothing was changed: pgmoat rolled the statement back before it "
                      "could commit."
                    : " Nothing it did can commit: the transaction it ran in is aborted.";
  if (auto e = guard_event(spec, audit::EventType::kRefusal)) {
    e->decision = r == RowGuard::Result::over ? "row_limit" : "row_limit_uncounted";
    if (r == RowGuard::Result::over) e->would_have_affected_rows = g.rows();
    e->detail = ref.message + ". " + ref.detail;
    append_async(services_->audit.get(), encode(*e));
  }
  if (in_place) {
    spdlog::warn("session {} {}@{}: {} ({})", info_.id, info_.user, info_.database, ref.message,
                 ref.detail);
    return wire::error_response("ERROR", ref.sqlstate, ref.message, ref.detail, ref.hint);
  }
  return refuse(std::move(ref), nullptr, extended).bytes;
}

void StatementGate::record_unenforced_over(const RowGuard& g) {
  const GuardSpec& spec = g.spec();
  spdlog::warn("session {} {}@{}: {} (not enforced: {} rows, limit {}{})", info_.id, info_.user,
               info_.database, spec.message, g.rows(), spec.max_rows,
               g.count_error().empty() ? std::string() : "; not counted: " + g.count_error());
  auto e = guard_event(spec, audit::EventType::kWouldRefuse);
  if (!e) return;
  if (!g.count_error().empty()) {
    e->decision = "would_refuse_uncounted";
    e->detail = "not counted (" + g.count_error() + "); limit " + std::to_string(spec.max_rows);
  } else {
    e->decision = "would_refuse";
    e->would_have_affected_rows = g.rows();
    e->detail = spec.message + " (" + std::to_string(g.rows()) + " rows, limit " +
                std::to_string(spec.max_rows) + "): " + g.breakdown();
  }
  append_async(services_->audit.get(), encode(*e));
}

std::optional<audit::Event> StatementGate::guard_event(const GuardSpec& spec,
                                                       audit::EventType type) {
  if (services_ == nullptr || !services_->audit || !spec.classification ||
      spec.statement >= spec.classification->statements.size()) {
    return std::nullopt;
  }
  auto e = statement_event(spec.classification->statements[spec.statement], type);
  e.rule = spec.rule;
  return e;
}

std::optional<StatementGate::Verdict> StatementGate::query_now(std::string_view sql) {
  if (services_ == nullptr) return Verdict{};
  std::optional<TextReading::Reading> reading = read_as_server(sql);
  parser::Cached found =
      reading ? parser::Cached{reading->classification, {}} : services_->cache.find(sql);
  // Shared by every text of its template when it is one: nothing here reads its text.
  std::shared_ptr<const parser::Classification> judged = found.classification;
  if (may_end_a_transaction(*judged)) ++may_end_transaction_;  // a Parse: at its Execute
  ++boundaries_;
  const std::uint64_t group = next_group_++;
  groups_.push_back(group);
  // One expression, so that the verdict is built in place (no copy of a Verdict per Query).
  std::optional<Verdict> v =
      reading && reading->refusal
          ? std::optional<Verdict>(refuse(std::move(*reading->refusal), nullptr))
          : decide_now(judged, sql, nullptr);
  if (!v) {
    query_later_ = LaterQuery{std::move(found), std::move(judged), group};
    return std::nullopt;
  }
  after_query(*found.classification, *judged, *v, group);
  return v;
}

asio::awaitable<StatementGate::Verdict> StatementGate::query_later(std::string_view sql) {
  if (!query_later_) {
    // Not after a query_now() that left it: that step first.
    std::optional<Verdict> now = query_now(sql);
    if (now) co_return std::move(*now);
  }
  LaterQuery q = std::move(*query_later_);
  query_later_.reset();
  const std::shared_ptr<const parser::Classification> judged = q.judged;
  Verdict v = co_await decide_rest(std::move(q.judged), q.found.own_statement, sql, nullptr);
  after_query(*q.found.classification, *judged, v, q.group);
  co_return v;
}

void StatementGate::after_query(const parser::Classification& c,
                                const parser::Classification& judged, const Verdict& v,
                                std::uint64_t group) {
  if (v.refused) return;
  if (c.names_prepared) follow_names(c, boundaries_ - 1);  // this Query is the last boundary
  if (!v.guard) ++may_change_counts_;
  for (std::size_t i = 0; i < c.statements.size(); ++i) {
    // An EXECUTE is audited as what it runs (judged has c's statements, resolved).
    const bool audited =
        is_audited(c.statements[i]) ||
        (&judged != &c && i < judged.statements.size() && is_audited(judged.statements[i]));
    Running r{next_statement_id_++, group, audited, {}, nullptr};
    if (r.audited) r.started = Clock::now();  // only audited outcomes report a duration
    if (r.audited && i < decided_.size()) r.intent = decided_[i];
    running_.push_back(std::move(r));
  }
}

asio::awaitable<StatementGate::Verdict> StatementGate::on_parse(const wire::ParseMsg& parse) {
  if (services_ == nullptr) co_return Verdict{};
  // In place of the Parse: a throwaway name, so that the refusal marker never names (or
  // collides with) the row guard's statement.
  if (auto v = refuse_reserved(parse.name, nullptr, true)) co_return std::move(*v);
  // Kept with the statement, whose Execute records it: with the text's own statement.
  std::optional<TextReading::Reading> reading = read_as_server(parse.query);
  auto c = reading ? reading->classification : services_->cache.get(parse.query);
  last_approval_id_.clear();
  last_guard_.reset();
  std::shared_ptr<const parser::Classification> judged = c;
  std::optional<Verdict> now =
      reading && reading->refusal
          ? std::optional<Verdict>(refuse(std::move(*reading->refusal), &parse))
          : decide_now(judged, parse.query, &parse);
  // A Parse of EXECUTE name is judged, and each Execute of it recorded, as what name runs.
  std::shared_ptr<const parser::Classification> resolved;
  if (judged != c) resolved = judged;
  Verdict v;
  // Not a conditional expression around co_await: GCC 12 miscompiles those.
  if (now) {
    v = std::move(*now);
  } else {
    Verdict later = co_await decide_rest(std::move(judged), {}, parse.query, &parse);
    v = std::move(later);
  }
  if (!v.refused && c->names_prepared) remember_prepares(*c);
  Prepared p;
  p.classification = c;
  p.approval_id = last_approval_id_;
  p.text = std::string(parse.query);
  // The limit applies to each Execute of the statement, not to the Parse.
  if (!v.refused) p.guard = std::move(last_guard_);
  v.guard.reset();
  p.version = ++versions_;
  // A refused Parse never creates the statement: executing it runs nothing to audit.
  for (const auto& st : c->statements) {
    p.audited = p.audited || is_audited(st);
    if (c->names_prepared && runs_prepared(st)) p.runs.push_back(runs_now(st.prepared_name));
  }
  if (resolved) {
    for (const auto& st : resolved->statements) p.audited = p.audited || is_audited(st);
    p.audited = p.audited || !resolved->ok;
    p.judged = std::move(resolved);
  }
  p.audited = !v.refused && (p.audited || !c->ok || !p.approval_id.empty());
  // The name stands for the new statement from now on: a Bind in the same Sync group runs it,
  // or is skipped with it. If the server refuses or skips the Parse (a named statement cannot
  // be parsed again before it is closed) it keeps what it had, and so does the gate once the
  // answer is in (on_parse_outcome); an Execute bound after a Sync waits for that answer.
  auto& slot = statements_[std::string(parse.name)];
  ParseInFlight f{false, std::string(parse.name), std::make_shared<Prepared>(std::move(p)),
                  std::move(slot), boundaries_};
  slot = f.installed;
  parses_in_flight_.push_back(std::move(f));
  co_return v;
}

StatementGate::ExecutePlan StatementGate::plan_execute(wire::Bytes message) {
  ExecutePlan plan;
  if (services_ == nullptr) return plan;
  auto portal = wire::parse_execute_portal(message);
  if (extended_group_ == 0) extended_group_ = next_group_++;
  Running& r = plan.running;
  r = Running{next_statement_id_++, extended_group_, false, {}, nullptr};
  auto pit = portal ? portals_.find(*portal) : portals_.end();
  if (pit == portals_.end()) {
    ++may_end_transaction_;  // unknown
    block_change_at_ = boundaries_;
    ++may_change_counts_;
    return plan;
  }
  if (pit->second.uncertain) {
    plan.unknown = ExecutePlan::Unknown{std::string(*portal), pit->second.statement, {}, true};
    return plan;
  }
  if (pit->second.prepared == nullptr) {
    // Bound to a statement no Parse made. Either it does not exist (the server refuses the
    // Bind, and skips this Execute) or SQL PREPARE made it: its body was judged as the
    // body of a later EXECUTE, which this is not. Fail closed.
    plan.unknown = ExecutePlan::Unknown{std::string(*portal), pit->second.statement, {}};
    return plan;
  }
  if (const ParseInFlight* f = contested(pit->second.prepared.get());
      f != nullptr && f->boundary != boundaries_) {
    // A Sync came between: whichever statement the server has runs, not skipped with the
    // Parse. pgmoat cannot tell which yet. Fail closed.
    plan.unknown = ExecutePlan::Unknown{std::string(*portal), pit->second.statement, {}};
    plan.unanswered = true;
    return plan;
  }
  Prepared& prep = *pit->second.prepared;
  if (prep.classification->names_prepared) {
    for (const auto& was : prep.runs) {
      // Judged at its Parse as what the name stood for then.
      const Prepared::Runs now = runs_now(was.name);
      if (now.parsed != was.parsed || now.sql != was.sql) {
        plan.unknown = ExecutePlan::Unknown{std::string(*portal), pit->second.statement, was.name};
        return plan;
      }
    }
    // Its PREPAREs count from now (judged with whatever the name stood for); its DEALLOCATE or
    // DISCARD ALL once the server has answered it without an error (PendingDrop).
    follow_names(*prep.classification, boundaries_);
  }
  plan.guard = prep.guard;  // the limit of the statement as it was at Bind
  if (may_end_a_transaction(*prep.classification)) {
    ++may_end_transaction_;
    block_change_at_ = boundaries_;
  }
  if (!plan.guard) ++may_change_counts_;
  plan.drain = (flight_.since != 0 || flight_.failed) && commits(*prep.classification);
  if (!prep.audited || !services_->audit) return plan;
  // Each execution of a writing prepared statement is its own audited write.
  r.audited = true;
  r.started = Clock::now();
  if (!prep.base_event) {
    audit::Event base;
    const parser::Classification& judged = prep.judged ? *prep.judged : *prep.classification;
    if (!judged.statements.empty()) {
      base = statement_event(judged.statements.front(), audit::EventType::kStatement);
    } else {
      base.type = audit::EventType::kStatement;
      base.statement = prep.text;  // allowed unparsed (on_parse_error = "allow")
    }
    prep.base_event = std::make_shared<const audit::Event>(std::move(base));
  }
  r.intent = prep.base_event;
  audit::Event e = *prep.base_event;
  e.statement_id = r.statement_id;
  e.decision = prep.approval_id.empty() ? "allow" : "approved";
  e.token_id = prep.approval_id;
  if (auto vit = portal_values_.find(*portal); vit != portal_values_.end()) {
    e.parameters = vit->second;
  }
  for (const auto& a : approvals_) {
    if (a.id != prep.approval_id) continue;
    e.approver = a.approver;
    e.reason = a.reason;
  }
  e.detail = "extended protocol: statement \"" + pit->second.statement + "\" portal \"" +
             std::string(*portal) + "\"";
  if (const auto& judged = prep.judged ? *prep.judged : *prep.classification; !judged.ok) {
    // Allowed unparsed (on_parse_error = "allow"), or runs a statement that was.
    e.decision = "allow_unparsed";
    e.detail += "; " + judged.error;
  }
  plan.records.push_back(encode(e));
  plan.pipelined = pipelinable(*prep.classification);
  return plan;
}

StatementGate::Verdict StatementGate::finish_execute_now(ExecutePlan plan) {
  if (services_ == nullptr) return {};
  if (plan.unknown) return refuse_unparsed(plan);
  if (!plan.records.empty()) append_pipelined(std::move(plan.records));
  running_.push_back(std::move(plan.running));
  Verdict v;
  v.guard = std::move(plan.guard);
  return v;
}

asio::awaitable<StatementGate::Verdict> StatementGate::finish_execute(ExecutePlan plan) {
  if (plan.unknown) co_return refuse_unparsed(plan);
  if (plan.drain) {
    const bool ok = co_await drain();
    if (!ok) co_return refuse_commit(nullptr, true);
  }
  if (!plan.records.empty() && !plan.pipelined) {
    const bool ok = co_await append_durably(services_->audit.get(), std::move(plan.records));
    if (!ok) co_return refuse_unrecorded(nullptr, true);
    plan.records.clear();
  }
  co_return finish_execute_now(std::move(plan));
}

StatementGate::Verdict StatementGate::on_close(wire::Bytes message) {
  auto t = wire::parse_target(message);
  if (services_ == nullptr || !t) return {};
  if (auto v = refuse_reserved(t->second, nullptr, true)) return std::move(*v);
  // The group failed already: the server skips this Close.
  if (group_failed()) return {};
  // A statement is closed whichever way it was prepared (Postgres has one namespace).
  pending_drops_.push_back(PendingDrop{
      boundaries_, errors_, versions_, std::string(t->second), false, t->first != 'S', {}});
  return {};
}

void StatementGate::on_parse_outcome(bool ok) {
  if (parses_in_flight_.empty()) return;  // not one of the gate's (cannot happen)
  ParseInFlight f = std::move(parses_in_flight_.front());
  parses_in_flight_.pop_front();
  if (ok || f.marker) return;
  // The server kept what it had: give the name, and the portals bound to it since, back.
  for (auto& entry : portals_) {
    if (entry.second.prepared == f.installed) entry.second.prepared = f.previous;
  }
  auto it = statements_.find(f.name);
  if (it != statements_.end() && it->second == f.installed) {
    if (f.previous) {
      it->second = std::move(f.previous);
    } else {
      statements_.erase(it);
    }
    return;
  }
  // Parsed again (or closed) since: a later Parse in flight that replaced this one replaced
  // what the server kept.
  for (auto& later : parses_in_flight_) {
    if (!later.marker && later.previous == f.installed) later.previous = f.previous;
  }
}

const StatementGate::ParseInFlight* StatementGate::contested(const Prepared* p) const {
  if (p == nullptr || parses_in_flight_.empty()) return nullptr;
  for (const auto& f : parses_in_flight_) {
    if (f.installed.get() == p) return f.previous ? &f : nullptr;
  }
  return nullptr;
}

void StatementGate::on_client_message(wire::Bytes message) {
  if (services_ == nullptr || message.empty()) return;
  switch (static_cast<char>(message[0])) {
    case wire::fe::kBind:
      if (auto b = wire::parse_bind_names(message)) {
        // Every Bind of every prepared-statement client comes here: no temporary strings.
        auto pit = portals_.find(b->portal);
        if (pit == portals_.end()) pit = portals_.emplace(b->portal, Portal{}).first;
        if (pit->second.statement != b->statement) pit->second.statement.assign(b->statement);
        pit->second.bound = boundaries_;
        pit->second.version = ++versions_;
        if (extended_group_ == 0) extended_group_ = next_group_++;
        pit->second.group = extended_group_;
        // In a group that failed already the server skips this Bind: the portal may still
        // be an earlier one of its name (kept by ROLLBACK TO SAVEPOINT).
        pit->second.uncertain = group_failed();
        auto sit = statements_.find(b->statement);
        // A name SQL PREPARE took may run its body, which is judged only through EXECUTE: the
        // portal's Execute is refused (refuse_unparsed).
        const bool sql = !sql_prepared_.empty() && sql_prepared_.contains(b->statement);
        pit->second.prepared = sit != statements_.end() && !sql ? sit->second : nullptr;
        if (services_->audit_settings.parameters) {
          auto values = wire::parse_bind_values(message);
          // A Bind too large to hold whole arrives in pieces: say so rather than guess.
          portal_values_[std::string(b->portal)] =
              values ? std::move(*values)
                     : std::vector<std::optional<std::string>>{
                           std::string("(parameters not recorded: Bind message streamed)")};
        }
      }
      break;
    case wire::fe::kSync:
      ++boundaries_;
      if (extended_group_ == 0) extended_group_ = next_group_++;
      groups_.push_back(extended_group_);
      extended_group_ = 0;
      break;
    case wire::fe::kFunctionCall:
      ++boundaries_;
      ++may_change_counts_;
      groups_.push_back(next_group_++);
      break;
    default:
      break;
  }
}

// ---- Server side ---------------------------------------------------------------------------

void StatementGate::note_error() {
  ++errors_;
  // The error belongs to the oldest group not answered yet (on_unanswered() keeps groups_ in
  // step with the server), or to the one still open.
  const std::uint64_t failed = groups_.empty() ? extended_group_ : groups_.front();
  if (failed == 0) return;
  failed_group_ = failed;
  for (auto& [name, portal] : portals_) {
    if (portal.group == failed) portal.uncertain = true;
  }
}

void StatementGate::on_unanswered(std::uint32_t n) {
  for (; n > 0 && !groups_.empty(); --n) {
    const std::uint64_t g = groups_.front();
    groups_.pop_front();
    ++readies_;
    std::erase_if(running_, [g](const Running& r) { return r.group == g; });
  }
}

std::optional<std::string> StatementGate::on_error(const wire::ErrorFields* fields) {
  note_error();
  if (fields == nullptr) return std::nullopt;
  if (!refusals_.empty()) {
    std::string msg = fields->message();
    auto at = msg.find(kMarkerWord);
    if (at != std::string::npos) {
      auto end = msg.find('"', at);
      std::string marker = msg.substr(at, end == std::string::npos ? end : end - at);
      auto it = refusals_.find(marker);
      if (it != refusals_.end()) {
        Refusal r = std::move(it->second);
        refusals_.erase(it);
        return wire::error_response("ERROR", r.sqlstate, r.message, r.detail, r.hint);
      }
    }
  }
  if (!running_.empty()) {
    Running r = std::move(running_.front());
    running_.pop_front();
    if (r.audited) {
      audit_outcome(r, audit::Outcome{{}, std::nullopt, fields->sqlstate(), fields->message()});
    }
    // The rest of that Query (or Sync epoch) will not run.
    while (!running_.empty() && running_.front().group == r.group) running_.pop_front();
  }
  return std::nullopt;
}

void StatementGate::on_command_complete(wire::Bytes message) {
  if (approval_in_transaction_) {
    // A session-level SET made inside a transaction block is undone by its rollback.
    auto cc = wire::parse_command_complete(message);
    if (cc && cc->tag == "ROLLBACK") drop_approval();
  }
  if (running_.empty()) return;
  Running r = std::move(running_.front());
  running_.pop_front();
  if (!r.audited) return;
  auto cc = wire::parse_command_complete(message);
  if (!cc) return;
  std::optional<std::int64_t> rows;
  if (cc->rows) rows = static_cast<std::int64_t>(*cc->rows);
  audit_outcome(r, audit::Outcome{std::string(cc->tag), rows, {}, {}});
}

void StatementGate::audit_outcome(const Running& r, audit::Outcome outcome) {
  if (services_ == nullptr || !services_->audit) return;
  audit::Event e = r.intent ? *r.intent : audit::Event{};
  e.type = audit::EventType::kOutcome;
  e.statement_id = r.statement_id;
  e.outcome = std::move(outcome);
  e.duration_us =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - r.started).count();
  audit_async(std::move(e));
}

void StatementGate::on_portal_suspended() {
  if (!running_.empty()) running_.pop_front();
}

void StatementGate::on_parameter_status(wire::Bytes message) {
  if (auto p = wire::parse_parameter_status(message))
    reading_.on_parameter_status(p->first, p->second);
}

void StatementGate::on_ready(char status) {
  info_.transaction_status = status;
  if (status == 'I') {
    if (approval_local_) drop_approval();  // SET LOCAL ends with its transaction
    approval_in_transaction_ = false;
    // The transaction is over: its pipelined records were synced at COMMIT, or it rolled
    // back and nothing they describe happened.
    flight_ = AuditFlight{};
  }
  if (groups_.empty()) return;
  std::uint64_t g = groups_.front();
  groups_.pop_front();
  ++readies_;
  while (!running_.empty() && running_.front().group <= g) running_.pop_front();
  while (!pending_drops_.empty() && pending_drops_.front().before < readies_) {
    if (pending_drops_.front().errors == errors_) apply_drop(pending_drops_.front());
    pending_drops_.pop_front();
  }
  // No transaction is open: every portal bound before this answer's Query or Sync is gone.
  if (status == 'I' && has_named_portals()) drop_portals_bound_before(readies_);
}

void StatementGate::drop_portals_bound_before(std::uint64_t boundary) {
  for (auto it = portals_.begin(); it != portals_.end();) {
    // bound: how many boundaries were sent before its Bind
    if (it->first.empty() || it->second.bound >= boundary) {
      ++it;
      continue;
    }
    if (auto v = portal_values_.find(it->first); v != portal_values_.end()) portal_values_.erase(v);
    it = portals_.erase(it);
  }
}

}  // namespace pgmoat::proxy
