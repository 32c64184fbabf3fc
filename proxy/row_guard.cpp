#include "proxy/row_guard.h"

#include <algorithm>
#include <charconv>

#include "proxy/wire/messages.h"
#include "proxy/wire/protocol.h"

namespace pgmoat::proxy {

namespace {

wire::Bytes bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::int64_t to_int(std::optional<std::string_view> v) {
  std::int64_t out = 0;
  if (v) std::from_chars(v->data(), v->data() + v->size(), out);
  return out;
}

// Row counts of the statements the guard limits; other tags (INSERT, SELECT) do not count.
std::int64_t limited_tag_rows(std::string_view msg) {
  auto cc = wire::parse_command_complete(bytes_of(msg));
  if (!cc || !cc->rows) return 0;
  if (cc->tag.starts_with("DELETE") || cc->tag.starts_with("UPDATE") ||
      cc->tag.starts_with("MERGE")) {
    return static_cast<std::int64_t>(*cc->rows);
  }
  return 0;
}

// Why a statement whose counters fell cannot be judged.
std::string counters_fell(const std::string& table) {
  return "the row counters of " + table +
         " fell during the statement (a TRUNCATE reset them), so its rows cannot be counted";
}

// Both counts: the first row carries track_counts, the transaction's start time (which
// transaction the counts belong to) and the size of pg_class (how large the catalog is, for
// choosing between them), then one row per user table, keyed by name.
constexpr std::string_view kCountHead =
    "SELECT pg_catalog.current_setting('track_counts'), "
    "EXTRACT(epoch FROM pg_catalog.now())::pg_catalog.text, "
    "pg_catalog.pg_relation_size('pg_catalog.pg_class'::pg_catalog.regclass), "
    "NULL::pg_catalog.int8 "
    "UNION ALL "
    "SELECT NULL, pg_catalog.concat(n.nspname, '.', c.relname), "
    "pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid), "
    "pg_catalog.pg_stat_get_xact_tuples_updated(c.oid) "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
    "ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
    "WHERE c.relkind OPERATOR(pg_catalog.=) 'r' AND ";
// pg_stat_xact_user_tables would do, but it aggregates over pg_index for every table (about
// 0.57 ms per execution on a small database, bench/RESULTS.md); this reads only the counters
// of user tables, whose OIDs are all at or above FirstNormalObjectId (16384), and only the
// nonzero ones come back.
constexpr std::string_view kFullWhere =
    "c.oid OPERATOR(pg_catalog.>=) 16384 "
    "AND (pg_catalog.pg_stat_get_xact_tuples_deleted(c.oid) OPERATOR(pg_catalog.<>) 0 "
    "OR pg_catalog.pg_stat_get_xact_tuples_updated(c.oid) OPERATOR(pg_catalog.<>) 0)";
// Only the tables this backend holds a lock on, zeros included: a table the statement
// changed stays locked until the transaction ends. Costs the same whatever the catalog size.
constexpr std::string_view kLockedWhere =
    "c.oid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT l.relation FROM pg_catalog.pg_locks l "
    "WHERE l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() "
    "AND l.locktype OPERATOR(pg_catalog.=) 'relation' "
    "AND l.relation OPERATOR(pg_catalog.>=) 16384))";

}  // namespace

std::string_view RowGuard::count_sql() {
  static const std::string sql = std::string(kCountHead) + std::string(kFullWhere);
  return sql;
}

std::string_view RowGuard::locked_count_sql() {
  static const std::string sql = std::string(kCountHead) + std::string(kLockedWhere);
  return sql;
}

std::string RowGuard::count_messages(bool sync, bool locked) {
  static constexpr std::uint8_t kNoParams[2] = {0, 0};
  const std::string& name = locked ? locked_name_ : name_;
  bool& ready = locked ? locked_ready_ : full_ready_;
  std::string out;
  if (!ready) {
    // Close first: the statement may be left over from a count that failed after its Parse
    // (closing a statement that does not exist is not an error).
    out = wire::build_close('S', name) +
          wire::build_parse(name, locked ? locked_count_sql() : count_sql(),
                            wire::Bytes(kNoParams, 2));
    ready = true;
  }
  out += wire::build_bind(name, name) + wire::build_execute(name) + wire::build_close('P', name);
  if (sync) out += wire::build_sync();
  return out;
}

std::vector<RowGuard::Send> RowGuard::start(Mode mode, std::shared_ptr<const GuardSpec> spec,
                                            std::string_view client_message, bool ready_pending) {
  reset();
  state_ = State::counting;
  mode_ = mode;
  spec_ = std::move(spec);
  // A ReadyForQuery still to come may mark an idle point where the server reports (and so
  // zeroes) its counters: the baseline cannot be trusted past it.
  if (ready_pending) baseline_valid_ = chain_valid_ = false;
  after_locked_ = large_catalog_;
  // pgmoat's own BEGIN starts a new transaction: never chained.
  before_chained_ = chain_valid_ && !after_locked_ && mode != Mode::simple_idle;
  chain_valid_ = false;  // set again when this statement passes
  before_locked_ =
      !before_chained_ && large_catalog_ && baseline_valid_ && mode != Mode::simple_idle;
  // Between simple Queries the counts end with their own Sync (an error in one then cannot
  // make the server skip the client's query); inside the client's extended-protocol batch
  // they must not, or they would end its implicit transaction.
  const bool sync = mode != Mode::extended;
  std::vector<Send> out;
  if (mode == Mode::simple_idle) {
    // The counters are not per transaction, whatever the view's name says: a backend
    // reports them to the shared statistics at most once a second, and until then they
    // include earlier transactions. So count before as well as after.
    out.push_back({wire::build_query("BEGIN"), Sender::injected, kBegin});
  }
  if (before_chained_) {
    before_ = chain_;
    before_transaction_ = chain_transaction_;
    before_read_ = true;
  } else {
    out.push_back({count_messages(sync, before_locked_), Sender::injected, kBefore});
  }
  out.push_back({std::string(client_message), Sender::guarded, 0});
  std::string after = count_messages(sync, after_locked_);
  // Without a Sync the server keeps its answers buffered until a Flush; the client's own
  // Flush or Sync is held back until the verdict, so send one.
  if (!sync) after += wire::build_flush();
  out.push_back({std::move(after), Sender::injected, kAfter});
  return out;
}

void RowGuard::read_counts(std::string_view msg, Counts& into, std::string& transaction) {
  auto cols = wire::parse_data_row(bytes_of(msg));
  if (!cols || cols->size() != 4) {
    count_error_ = "unexpected answer to the row count query";
    return;
  }
  const auto& c = *cols;
  if (c[0]) {
    if (*c[0] != "on") track_counts_off_ = true;
    transaction = c[1] ? std::string(*c[1]) : std::string();
    // Decides how the next statements are counted (this one's counts are already sent).
    large_catalog_ = to_int(c[2]) >= kLockedCountFromCatalogBytes;
    return;
  }
  if (!c[1]) return;
  auto& slot = into[std::string(*c[1])];
  slot.first += to_int(c[2]);
  slot.second += to_int(c[3]);
}

std::optional<std::string> RowGuard::on_message(Sender sender, std::uint32_t step,
                                                std::string_view msg) {
  if (msg.empty()) return std::nullopt;
  const char tag = msg[0];
  // A FATAL error: the server is about to close the connection; the client must see why.
  if (tag == wire::be::kErrorResponse) {
    if (auto fields = wire::parse_error(bytes_of(msg)); fields && fields->fatal()) {
      return std::string(msg);
    }
  }
  if (sender == Sender::guarded) {
    answered_ = true;
    if (tag == wire::be::kErrorResponse) client_error_ = true;
    if (tag == wire::be::kCommandComplete) tag_rows_ = std::max(tag_rows_, limited_tag_rows(msg));
    if (tag == wire::be::kDataRow) {
      ++returned_rows_;
      // Over the limit already: the rows will never be delivered, so stop holding them.
      if (spec_->single_statement && spec_->enforce && returned_rows_ > spec_->max_rows) {
        return std::nullopt;
      }
    }
    if (held_bytes_ + msg.size() > kMaxHeldBytes) {
      too_large_ = true;
      held_.clear();
      return std::nullopt;
    }
    if (too_large_) return std::nullopt;
    held_bytes_ += msg.size();
    held_.emplace_back(msg);
    return std::nullopt;
  }
  // Injected: settings changes and notifications still belong to the client.
  if (tag == wire::be::kParameterStatus || tag == wire::be::kNotificationResponse) {
    return std::string(msg);
  }

  switch (step) {
    case kBefore:
    case kAfter:
      if (tag == wire::be::kDataRow) {
        if (step == kBefore) {
          read_counts(msg, before_, before_transaction_);
        } else {
          read_counts(msg, after_, after_transaction_);
        }
      } else if (tag == wire::be::kCommandComplete) {
        (step == kBefore ? before_read_ : after_read_) = true;
        if (step == kBefore && !before_locked_ && !track_counts_off_ && count_error_.empty()) {
          // Every table's counter as of now, in this transaction: the baseline for counts
          // restricted to locked tables, until the next ReadyForQuery that is not 'T' (see
          // on_ready) or transaction control (forget_baseline).
          baseline_ = before_;
          baseline_transaction_ = before_transaction_;
          baseline_valid_ = true;
        }
      } else if (tag == wire::be::kErrorResponse && !error_step_) {
        full_ready_ = locked_ready_ = false;  // perhaps gone: prepare them again next time
        error_step_ = step;
        error_bytes_ = std::string(msg);
        auto fields = wire::parse_error(bytes_of(msg));
        count_error_ = fields ? fields->sqlstate() + " " + fields->message()
                              : std::string("malformed error from the server");
      }
      break;
    case kFinal:
      if (tag == wire::be::kErrorResponse) final_error_ = std::string(msg);
      break;
    default:
      break;  // kBegin, kDiscard: nothing to keep
  }
  return std::nullopt;
}

RowGuard::Result RowGuard::decide() {
  // The first count's Parse may have been skipped (an earlier error in the client's batch):
  // prepare the statement again next time rather than Bind a statement that does not exist.
  // The same for the second count (skipped after an error in the client's statement).
  if (!before_read_ || !after_read_) full_ready_ = locked_ready_ = false;
  const Result r = judge();
  // Only simple_idle has more to do: its COMMIT or ROLLBACK (a refusal resets the guard).
  state_ = mode_ == Mode::simple_idle && (r == Result::pass || r == Result::client_failed)
               ? State::finishing
               : State::idle;
  return r;
}

RowGuard::Result RowGuard::judge() {
  // Refusals pgmoat must make whatever the statement did: what it holds is incomplete, or its
  // own first count failed (between simple Queries that also aborts the client's statement).
  if (too_large_) return Result::too_large;
  if (mode_ != Mode::extended && error_step_ == kBefore) return Result::count_failed;
  if (client_error_) return Result::client_failed;
  if (!answered_) {
    if (mode_ == Mode::extended && error_step_ == kBefore) return Result::before_failed;
    return Result::skipped;
  }
  if (error_step_ || !count_error_.empty() || !before_read_ || !after_read_) {
    if (count_error_.empty()) count_error_ = "the row count query did not complete";
    return Result::count_failed;
  }
  if (track_counts_off_) {
    count_error_ = "the server's track_counts setting is off, so cascaded rows cannot be seen";
    return Result::count_failed;
  }
  // Counters are only comparable within one transaction: between two, the server may have
  // reported (zeroed) them. The statement cannot end a transaction, so this is a backstop.
  if (before_transaction_.empty() || before_transaction_ != after_transaction_) {
    count_error_ = "the transaction changed between the row counts";
    return Result::count_failed;
  }
  // A full after count lists every table with nonzero counters: one the before count had
  // that is missing was reset to zero (by a TRUNCATE).
  if (!after_locked_) {
    for (const auto& [table, before] : before_) {
      if ((before.first != 0 || before.second != 0) && !after_.contains(table)) {
        delta_.clear();
        count_error_ = counters_fell(table);
        return Result::count_failed;
      }
    }
  }
  std::int64_t total = 0;
  // Tables missing from the after count did not change (a restricted count lists every table
  // locked by the transaction, and a changed table stays locked). A table missing from a
  // restricted before count was not locked then, so not changed since the baseline: its
  // counter was the baseline's, if the baseline is of this transaction.
  for (const auto& [table, after] : after_) {
    std::pair<std::int64_t, std::int64_t> was{0, 0};
    if (auto it = before_.find(table); it != before_.end()) {
      was = it->second;
    } else if (before_locked_) {
      if (baseline_transaction_ != before_transaction_) {
        // A transaction ended without pgmoat seeing it: fail closed; count in full next time.
        baseline_valid_ = false;
        delta_.clear();
        count_error_ =
            "the transaction changed since the guard's baseline count; run the "
            "statement again";
        return Result::count_failed;
      }
      if (auto bt = baseline_.find(table); bt != baseline_.end()) was = bt->second;
    }
    std::pair<std::int64_t, std::int64_t> d{after.first - was.first, after.second - was.second};
    if (d.first < 0 || d.second < 0) {
      // Counters never fall within a transaction unless a TRUNCATE (in the query string, or
      // in a function it ran) reset them: what was touched since cannot be known.
      delta_.clear();
      count_error_ = counters_fell(table);
      return Result::count_failed;
    }
    if (d.first == 0 && d.second == 0) continue;
    delta_[table] = d;
    total += d.first + d.second;
  }
  // RETURNING rows are the statement's own only when the query string has one statement.
  rows_ = std::max({total, tag_rows_, spec_->single_statement ? returned_rows_ : 0});
  if (rows_ > spec_->max_rows && spec_->enforce) return Result::over;
  // A full after count in the client's transaction: the next statement's before count.
  if (mode_ != Mode::simple_idle && !after_locked_) {
    chain_ = after_;
    chain_transaction_ = after_transaction_;
    chain_valid_ = true;
  }
  return Result::pass;
}

std::string RowGuard::breakdown() const {
  std::vector<std::pair<std::int64_t, std::string>> parts;
  for (const auto& [table, d] : delta_) {
    std::string text = table;
    if (d.first > 0) text += " " + std::to_string(d.first) + " deleted";
    if (d.second > 0)
      text += std::string(d.first > 0 ? "," : "") + " " + std::to_string(d.second) + " updated";
    parts.emplace_back(d.first + d.second, std::move(text));
  }
  std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::string out;
  constexpr std::size_t kShown = 8;
  for (std::size_t i = 0; i < parts.size() && i < kShown; ++i) {
    if (!out.empty()) out += ", ";
    out += parts[i].second;
  }
  if (parts.size() > kShown)
    out += ", and " + std::to_string(parts.size() - kShown) + " more tables";
  return out;
}

std::vector<std::string> RowGuard::take_held() {
  std::vector<std::string> out = std::move(held_);
  held_.clear();
  held_bytes_ = 0;
  return out;
}

RowGuard::Send RowGuard::finish_idle(bool commit) {
  return {wire::build_query(commit ? "COMMIT" : "ROLLBACK"), Sender::injected, kFinal};
}

RowGuard::Send RowGuard::discarded_rollback() {
  return {wire::build_query("ROLLBACK"), Sender::injected, kDiscard};
}

std::vector<std::string> RowGuard::on_final_ready(std::string_view ready) {
  std::vector<std::string> out;
  for (auto& m : held_) {
    if (!m.empty() && m[0] == wire::be::kReadyForQuery) continue;
    out.push_back(std::move(m));
  }
  if (!final_error_.empty()) out.push_back(final_error_);
  out.emplace_back(ready);
  reset();
  return out;
}

void RowGuard::reset() {
  state_ = State::idle;
  spec_.reset();
  held_.clear();
  held_bytes_ = 0;
  too_large_ = client_error_ = answered_ = false;
  returned_rows_ = tag_rows_ = rows_ = 0;
  before_.clear();
  after_.clear();
  delta_.clear();
  before_read_ = after_read_ = track_counts_off_ = before_chained_ = false;
  before_transaction_.clear();
  after_transaction_.clear();
  error_step_.reset();
  error_bytes_.clear();
  count_error_.clear();
  final_error_.clear();
}

}  // namespace pgmoat::proxy
