// The blast-radius guard: runs a DELETE / UPDATE / MERGE under a row limit for real, counts
// every row it touched (ON DELETE CASCADE and trigger changes included), and only then lets
// it commit or refuses it. Sans-io: it builds the messages to send and reads the server's
// answers; proxy/session.cpp moves the bytes and proxy/response_tracker.h says which answer
// belongs to which message.
//
// How a statement is run, by what the session is doing when it arrives:
//   simple Query, no transaction open   BEGIN, <count>, <client query>, <count>  then COMMIT, or
//                                       ROLLBACK and the refusal: nothing is ever visible.
//   simple Query in a transaction block <count>, <client query>, <count>  then the results,
//                                       or the refusal, which aborts the block as any
//                                       refused statement does.
//   Execute (extended protocol)         <count> Execute <count>, all before the client's
//                                       Sync is forwarded: the implicit transaction (or the
//                                       client's block) cannot commit before the verdict; a
//                                       refusal is an error, which rolls it back.
// <count> executes a statement prepared once per session that reads the counters behind
// pg_stat_xact_user_tables: the rows this backend deleted and updated per table since it last
// reported its statistics (the current transaction included). The difference between the two counts
// is what the statement touched; the statement's own CommandComplete row count (and RETURNING rows)
// are a floor under it.
//
// Reading every user table's counters costs about 1 us per table. Once the catalog is large
// (pg_class >= kLockedCountFromCatalogBytes), the after count reads only the tables this backend
// holds a lock on: every table a statement changes (directly, by cascade, by trigger) stays
// locked until the transaction ends. The before count needs every table, because the counters
// also hold earlier transactions' rows not yet reported; it is taken in full once and kept as
// the baseline. Later statements of the same transaction read the locked tables and take the
// rest from the baseline (a table that was not locked was not changed since). Postgres reports
// (and zeroes) the counters only when idle outside a transaction, so the baseline holds until a
// ReadyForQuery other than 'T' (on_ready), or a statement that may end the transaction without
// one (forget_baseline: transaction control, VACUUM in a pipeline, CALL ...; PREPARE
// TRANSACTION even drops counters). Each count also reports its transaction's start time:
// counts of different transactions are never compared (the statement is refused instead).
//
// Counts chain: when a guarded statement passed, its after count (a full one) stands for the
// next guarded statement's before count if the client sent nothing in between
// (forget_chain: the StatementGate counts every other Query, Execute and FunctionCall, plain
// SELECTs included, since a view or an operator can run a TRUNCATE, which lowers the counters)
// and the transaction cannot have ended (the baseline's conditions). Consecutive UPDATEs then
// need one count each after the first. A count that fell during a statement (a TRUNCATE in
// it) cannot be read: the statement is refused. The
// client's answers are held until the verdict: at most max_rows RETURNING rows for a single
// statement, and at most kMaxHeldBytes for a query string.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parser/classification.h"
#include "proxy/response_tracker.h"

namespace pgmoat::proxy {

// What the policy decided for a guarded message (built by the StatementGate).
struct GuardSpec {
  std::int64_t max_rows = 0;
  bool enforce = true;           // false: over the limit is recorded, not refused
  bool single_statement = true;  // RETURNING rows of the held answer belong to the statement
  std::string rule;
  std::string message;  // refusal message without the counts
  std::string hint;
  // The statement the limit came from, for the audit record of a refusal.
  std::shared_ptr<const parser::Classification> classification;
  std::size_t statement = 0;
};

class RowGuard {
 public:
  enum class Mode : std::uint8_t { simple_idle, simple_block, extended };
  // Labels of the messages the guard sends (ResponseTracker steps).
  enum Step : std::uint32_t { kBegin = 1, kBefore, kAfter, kFinal, kDiscard };
  enum class Result : std::uint8_t {
    pass,           // within the limit (or not enforced): deliver the held answer
    over,           // over the limit, enforced: refuse
    client_failed,  // the statement failed on its own: deliver its error
    before_failed,  // extended: the first count failed, so the statement did not run
    count_failed,   // the statement ran but could not be counted: refuse (fail closed)
    too_large,      // the held answer outgrew kMaxHeldBytes: refuse (fail closed)
    skipped,        // the server skipped everything (an earlier error): nothing to do
  };
  struct Send {
    std::string bytes;
    Sender sender;
    std::uint32_t step;
  };
  static constexpr std::size_t kMaxHeldBytes = 64u << 20;
  // Every name the guard gives its statements and portals starts with this. Clients may not
  // use such names (StatementGate refuses them): a client that closed a count statement and
  // prepared a same-named one answering zeros would hide every row a statement touched
  // beyond its own row count (cascades, triggers).
  static constexpr std::string_view kNamePrefix = "pgmoat_guard";
  // From this size of pg_class on (about 200 tables with an index each), counting only the
  // locked tables (about 0.12 ms) is cheaper than reading every table (bench/RESULTS.md).
  static constexpr std::int64_t kLockedCountFromCatalogBytes = 160 * 1024;

  // The SQL that reads the per-table counters: of every user table, or of those this backend
  // holds a lock on (schema-qualified throughout, so a client's search_path cannot change
  // what it computes).
  static std::string_view count_sql();
  static std::string_view locked_count_sql();

  // `name`: unique to the session, the prepared statements and portals of the counts.
  explicit RowGuard(std::string name = std::string(kNamePrefix))
      : name_(std::move(name)), locked_name_(name_ + "_locked") {}

  // Begins guarding `client_message` (a whole Query or Execute). `ready_pending`: a Query,
  // Sync or FunctionCall sent earlier is not answered yet (its ReadyForQuery may end the
  // transaction the baseline belongs to).
  std::vector<Send> start(Mode mode, std::shared_ptr<const GuardSpec> spec,
                          std::string_view client_message, bool ready_pending = true);
  // The client may have removed the count statements (DISCARD ALL, DEALLOCATE ALL): prepare
  // them again before the next count.
  void forget_statement() { full_ready_ = locked_ready_ = false; }
  // Every ReadyForQuery from the server, whoever it answers.
  void on_ready(char status) {
    if (status != 'T') baseline_valid_ = chain_valid_ = false;
  }
  // The client sent a statement that may end the transaction (StatementGate::
  // may_end_transaction).
  void forget_baseline() { baseline_valid_ = chain_valid_ = false; }
  // The client sent a statement other than a guarded one since the last count (StatementGate::
  // may_change_counts): the next statement counts before it runs.
  void forget_chain() { chain_valid_ = false; }
  // The last start() took its before count from the previous statement's after count.
  bool chained() const { return before_chained_; }
  // The next statement's after count reads only locked tables (the catalog is large).
  bool counts_locked_tables() const { return large_catalog_; }
  // True from start() until decide().
  bool counting() const { return state_ == State::counting; }
  // True until finished() (S_I waits for its COMMIT / ROLLBACK).
  bool active() const { return state_ != State::idle; }
  Mode mode() const { return mode_; }
  const GuardSpec& spec() const { return *spec_; }

  // One whole server message answering a guarded or injected message. Returns the bytes to
  // deliver to the client right away (a FATAL error; ParameterStatus and notifications of
  // injected messages), usually nothing.
  std::optional<std::string> on_message(Sender sender, std::uint32_t step, std::string_view msg);

  // A guarded answer message too large to hold arrived (it was not kept).
  void note_oversized() { too_large_ = true; }

  // Every message of start() has been answered or skipped.
  Result decide();
  std::int64_t rows() const { return rows_; }
  // "public.station 7 deleted, public.measurement 20000 deleted" (largest first).
  std::string breakdown() const;
  // The server's message when a count failed, or "track_counts is off".
  const std::string& count_error() const { return count_error_; }
  // A count failed with an error from the server (its transaction is aborted).
  bool count_errored() const { return error_step_.has_value(); }
  // before_failed: the server's ErrorResponse, to deliver in place of the statement's answer.
  const std::string& error_message() const { return error_bytes_; }

  // The held answer, in order (for pass / client_failed in the block and extended modes).
  std::vector<std::string> take_held();
  // simple_idle: what to send to end the transaction. COMMIT when `commit`, else ROLLBACK;
  // its ReadyForQuery releases the held answer (see on_final_ready()).
  Send finish_idle(bool commit);
  // A ROLLBACK whose answer is discarded (before a refusal in simple_idle mode).
  static Send discarded_rollback();
  // simple_idle: the final ReadyForQuery arrived. Returns what to deliver: the held answer
  // without its own ReadyForQuery, the COMMIT's error if it failed, then `ready`.
  std::vector<std::string> on_final_ready(std::string_view ready);
  void reset();

 private:
  enum class State : std::uint8_t { idle, counting, finishing };
  using Counts = std::map<std::string, std::pair<std::int64_t, std::int64_t>>;  // del, upd
  void read_counts(std::string_view msg, Counts& into, std::string& transaction);
  // Bind, Execute and Close of a count statement (Parse first when needed), then Sync.
  std::string count_messages(bool sync, bool locked);
  Result judge();

  std::string name_;         // the full count's statement and portal
  std::string locked_name_;  // the locked tables' count's
  bool full_ready_ = false;  // prepared on the server
  bool locked_ready_ = false;
  bool large_catalog_ = false;  // from the last count: pg_class is large
  bool before_locked_ = false;  // this statement's counts read locked tables only
  bool after_locked_ = false;
  bool before_chained_ = false;  // this statement's before count is chain_
  // The after count of the last statement that passed, while it can stand for the next
  // statement's before count.
  Counts chain_;
  std::string chain_transaction_;
  bool chain_valid_ = false;
  Counts baseline_;  // every table's counters, from a full before count in this transaction
  bool baseline_valid_ = false;
  // Which transaction each count ran in (its start time, from the count's first row).
  std::string baseline_transaction_;
  std::string before_transaction_;
  std::string after_transaction_;
  State state_ = State::idle;
  Mode mode_ = Mode::simple_idle;
  std::shared_ptr<const GuardSpec> spec_;
  std::vector<std::string> held_;
  std::size_t held_bytes_ = 0;
  bool too_large_ = false;
  bool client_error_ = false;
  bool answered_ = false;  // any answer to the guarded message arrived
  std::int64_t returned_rows_ = 0;
  std::int64_t tag_rows_ = 0;  // largest DELETE / UPDATE / MERGE row count in the answer
  Counts before_;
  Counts after_;
  bool before_read_ = false;
  bool after_read_ = false;
  bool track_counts_off_ = false;
  std::optional<std::uint32_t> error_step_;
  std::string error_bytes_;
  std::string count_error_;
  std::string final_error_;  // the COMMIT's ErrorResponse
  std::int64_t rows_ = 0;
  Counts delta_;
};

}  // namespace pgmoat::proxy
