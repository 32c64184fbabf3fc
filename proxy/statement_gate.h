// The seam between the byte pumps and the policy. Every Query and Parse passes through here
// before it is forwarded; the server's answers come back so refusals can be rewritten and
// outcomes audited.
//
// Refusing without breaking protocol order: a refused Query or Parse is replaced by a bare
// identifier (`pgmoat_refused_<id>`) that fails in Postgres's own parser. Postgres answers it
// with a syntax error in exactly the right place, aborts an open transaction and skips to
// Sync, as for any error; on_error() recognises the marker and rewrites the error into the
// refusal. Postgres stays the single owner of ordering and transaction state.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "audit/record.h"
#include "parser/classification.h"
#include "parser/classify.h"
#include "policy/policy.h"
#include "proxy/refusal.h"
#include "proxy/row_guard.h"
#include "proxy/session_info.h"
#include "proxy/text_reading.h"
#include "proxy/wire/messages.h"

namespace pgmoat::proxy {

struct GateServices;
struct PolicySnapshot;

class StatementGate {
 public:
  StatementGate(GateServices* services, SessionInfo& info);

  struct Verdict {
    bool replace = false;  // forward `bytes` instead of the original message
    bool refused = false;  // `bytes` is a refusal marker
    std::string bytes;
    // Set when the message must run under the row guard (proxy/row_guard.h).
    std::shared_ptr<const GuardSpec> guard;
  };

  // One statement the server will answer, oldest first.
  struct Running {
    std::uint64_t statement_id = 0;
    std::uint64_t group = 0;  // the Query, or the Sync epoch, it belongs to
    bool audited = false;
    std::chrono::steady_clock::time_point started;  // audited statements only
    // For audited statements: what the outcome record repeats so that a search by table or
    // class finds the row count too.
    std::shared_ptr<const audit::Event> intent;
  };
  struct ExecutePlan {
    Running running;
    bool drain = false;                // a COMMIT: wait for the transaction's audit records
    std::vector<std::string> records;  // this execution's audit record, if it writes
    bool pipelined = false;            // ... written without a sync of its own
    std::shared_ptr<const GuardSpec> guard;
    // Set when the portal was bound to a statement pgmoat did not see parsed (refused), or,
    // with `unanswered`, to one parsed again under a taken name in an earlier Sync group and
    // not answered yet: the session waits for the server's answers and plans again (refused
    // if it still cannot tell).
    struct Unknown {
      std::string portal;
      std::string statement;
      // Set when the statement runs a prepared statement (a Parse of EXECUTE name) that was
      // prepared again or dropped since it was judged: its name.
      std::string changed;
      bool uncertain = false;  // Portal::uncertain
    };
    std::optional<Unknown> unknown;
    bool unanswered = false;
    bool waits() const { return drain || (!records.empty() && !pipelined); }
  };

  // Startup: strips an approval token from `options` (-c pgmoat.approval=...). Returns a
  // refusal message when the connection must not proceed.
  std::optional<std::string> on_startup(wire::StartupPacket& startup);
  void on_accepted();
  void on_login_complete();
  // The client gave a user name but the login did not complete (bad password, upstream down).
  void on_login_failed(const std::string& reason);
  void on_session_end();

  // A simple-protocol Query, in two steps so that the common case never suspends (nor
  // allocates a coroutine frame): query_now() settles it when nothing needs waiting for (an
  // allowed read, a refusal); when it returns nullopt, query_later() must be awaited next
  // for the same text (a write whose record goes to disk first, a COMMIT waiting for
  // records).
  std::optional<Verdict> query_now(std::string_view sql);
  boost::asio::awaitable<Verdict> query_later(std::string_view sql);
  boost::asio::awaitable<Verdict> on_parse(const wire::ParseMsg& parse);
  // Execute, in two steps so that the common case never suspends: plan_execute() does the
  // bookkeeping and builds the audit record; when the plan waits() (a COMMIT with audit
  // records in flight, or a write whose record must be on disk before it is forwarded),
  // finish_execute() waits for that, otherwise finish_execute_now() completes it.
  ExecutePlan plan_execute(wire::Bytes message);
  Verdict finish_execute_now(ExecutePlan plan);
  boost::asio::awaitable<Verdict> finish_execute(ExecutePlan plan);
  // Close: refused for the row guard's reserved names (RowGuard::kNamePrefix).
  Verdict on_close(wire::Bytes message);
  // Bind, Sync, FunctionCall: bookkeeping only.
  void on_client_message(wire::Bytes message);

  // Server side. Returns replacement bytes for an ErrorResponse that answers a refusal.
  // `fields` is null when the ErrorResponse could not be decoded.
  std::optional<std::string> on_error(const wire::ErrorFields* fields);
  // An ErrorResponse the client does not see as such (the row guard's count failed, or its
  // refusal stands in for the server's error): the server skips to the next Sync all the same.
  void note_error();
  void on_command_complete(wire::Bytes message);
  void on_portal_suspended();
  void on_ready(char status);
  // A ParameterStatus (at login too): standard_conforming_strings and client_encoding decide
  // how the server reads backslashes (TextReading).
  void on_parameter_status(wire::Bytes message);
  // The server's answer to each client Parse, in the order they were sent
  // (ResponseTracker::take_parse_outcome). A failed or skipped Parse leaves the server with
  // what it had under that name, so the gate goes back to it too.
  void on_parse_outcome(bool ok);
  // `n` Query, FunctionCall or Sync messages of the client, the oldest not answered yet, will
  // never be (ResponseTracker::take_unanswered_boundaries): they count as answered, so that
  // each later answer is matched to the group it belongs to.
  void on_unanswered(std::uint32_t n);

  // The row guard refuses (over the limit, or it could not count): records the refusal and
  // returns what stands for it: a marker Query (simple protocol) or Parse (extended) to send
  // to the server, or, when `in_place`, a finished ErrorResponse for the client (the server
  // is already skipping to Sync after a failed count).
  std::string refuse_guarded(const RowGuard& g, RowGuard::Result r, bool in_place);
  // How many DISCARD ALL / DEALLOCATE statements the client has sent: each may have removed
  // the row guard's prepared count statement.
  std::uint64_t statements_discarded() const { return discards_; }
  // How many statements other than plain reads and DML the client has sent (Executes of
  // prepared ones included, and anything unparsed): each may end the transaction the row
  // guard's baseline belongs to. Transaction control does; so do VACUUM, CREATE INDEX
  // CONCURRENTLY and the like in an extended-protocol pipeline, and CALL or DO with COMMIT.
  std::uint64_t may_end_transaction() const { return may_end_transaction_; }
  // How many statements other than guarded ones the client has sent (Queries, Executes,
  // FunctionCalls): each may have changed the row counters, so the row guard cannot chain
  // its counts across them. Plain SELECTs count too: a view, an RLS policy or a user-defined
  // operator can run a function that TRUNCATEs, which lowers the counters.
  std::uint64_t may_change_counts() const { return may_change_counts_; }
  // Over the limit but not enforced (log rule, monitor mode): recorded as would_refuse.
  void record_unenforced_over(const RowGuard& g);

 private:
  struct Prepared {
    std::shared_ptr<const parser::Classification> classification;
    // What it was judged as, when that differs: a Parse of EXECUTE name, as what name runs.
    // Its audit record says so.
    std::shared_ptr<const parser::Classification> judged;
    bool audited = false;
    std::string approval_id;  // the token that allowed it at Parse, for the Execute record
    std::string text;
    // Its statement record without the per-Execute fields, built on the first Execute: the
    // text, fingerprint (a second parse), classes and tables do not change between runs.
    std::shared_ptr<const audit::Event> base_event;
    std::shared_ptr<const GuardSpec> guard;  // row limit for each Execute
    std::uint64_t version = 0;               // from versions_: which Parse of the name this is
    // The prepared statements it runs (a Parse of EXECUTE name), as they were when it was
    // judged: an Execute after one of them changed is refused (plan_execute()).
    struct Runs {
      std::string name;
      std::uint64_t parsed = 0;  // the version of each kind then; 0: none
      std::uint64_t sql = 0;
    };
    std::vector<Runs> runs;
  };

  // Builds the marker replacement and remembers the refusal it stands for.
  // `extended`: the refusal replaces an Execute (no Parse of the client's to reuse).
  Verdict refuse(Refusal r, const wire::ParseMsg* parse, bool extended = false);
  // A refusal of a client's use of a name reserved for the row guard's statements and
  // portals (42939, as Postgres refuses reserved role names); nullopt when `name` is not one.
  std::optional<Verdict> refuse_reserved(std::string_view name, const wire::ParseMsg* parse,
                                         bool extended);
  void drop_approval();
  // Clears a held approval that was revoked since it was presented.
  void recheck_revocation();
  // SET/RESET pgmoat.approval: nullopt when `c` has no such statement.
  std::optional<Verdict> handle_approval(const parser::Classification& c,
                                         const wire::ParseMsg* parse);
  // Deciding a Query or Parse text classified as `c`. decide_now() takes the steps that
  // never wait and returns the verdict when they settle it: a reserved name refused, an
  // approval token handled, or allowed with nothing to record (the fast path). Otherwise
  // nullopt, with `c` resolved (an EXECUTE judged as what it runs), and decide_rest() goes
  // on: evaluates the policy, audits (write-ahead) and returns what to forward. A
  // template's shared classification gets the text's own statement (`own_statement`) only
  // there, where it may be shown or recorded.
  std::optional<Verdict> decide_now(std::shared_ptr<const parser::Classification>& c,
                                    std::string_view sql, const wire::ParseMsg* parse);
  boost::asio::awaitable<Verdict> decide_rest(std::shared_ptr<const parser::Classification> c,
                                              std::string_view own_statement, std::string_view sql,
                                              const wire::ParseMsg* parse);
  // A COMMIT (or an implicit one) with audit records of its transaction still in flight.
  bool must_drain(const parser::Classification& c) const;
  // No rule can apply to `c` and none of it needs a record.
  bool allowed_without_record(const parser::Classification& c);
  // A Query's bookkeeping once decided: its statements join running_.
  // `c` as classified, `judged` as decided (an EXECUTE resolved to what it runs): the names
  // follow `c`, the audit of each statement's outcome `judged`.
  void after_query(const parser::Classification& c, const parser::Classification& judged,
                   const Verdict& v, std::uint64_t group);
  const policy::SessionContext& context();
  // The policy now in force: this gate's own reference, renewed after a reload. Valid until
  // the next call.
  const PolicySnapshot& current_policy();
  bool is_audited(const parser::Statement& st) const;
  audit::Event statement_event(const parser::Statement& st, audit::EventType type);
  // The record of a row-guard verdict on the statement the limit came from; nullopt when the
  // audit trail is off.
  std::optional<audit::Event> guard_event(const GuardSpec& spec, audit::EventType type);
  std::string encode(const audit::Event& e);
  void audit_async(audit::Event e);
  void audit_outcome(const Running& r, audit::Outcome outcome);

  // Audit records of DML inside a transaction block are not waited for one by one: nothing
  // such a statement does can be seen, or outlive a crash, before COMMIT. They are written
  // without a sync of their own (AuditLog::append_deferred), and COMMIT waits until all of
  // them are on disk, usually covered by another session's sync already. If any could not
  // be written, COMMIT is refused and the transaction rolls back.
  struct AuditFlight {
    std::uint64_t since = 0;  // tickets of the records not yet synced; 0: none
    std::uint64_t through = 0;
    bool failed = false;  // one could not be written: COMMIT is refused
  };
  bool pipelinable(const parser::Classification& c) const;
  void append_pipelined(std::vector<std::string> records);
  // Waits for pipelined records; false when one of them could not be written.
  boost::asio::awaitable<bool> drain();
  static bool commits(const parser::Classification& c);
  Verdict refuse_commit(const wire::ParseMsg* parse, bool extended = false);
  // A write whose record could not be written (fail closed).
  Verdict refuse_unrecorded(const wire::ParseMsg* parse, bool extended = false);
  // An Execute of a portal bound to a statement no Parse of this session made (one prepared
  // with SQL PREPARE, which pgmoat judges only through EXECUTE).
  Verdict refuse_unparsed(const ExecutePlan& plan);

  GateServices* services_;
  std::shared_ptr<const PolicySnapshot> policy_;  // see current_policy()
  std::uint64_t policy_generation_ = 0;
  // What query_now() left for query_later(): the lookup, the classification to judge and
  // the statement group.
  struct LaterQuery {
    parser::Cached found;
    std::shared_ptr<const parser::Classification> judged;
    std::uint64_t group = 0;
  };
  std::optional<LaterQuery> query_later_;
  SessionInfo& info_;
  AuditFlight flight_;
  audit::Identity identity_;
  policy::SessionContext context_;
  std::vector<policy::Approval> approvals_;  // at most one: the last token presented
  std::optional<std::int64_t> approval_max_uses_;
  // The approval follows the server-side setting it replaced: SET LOCAL ends with the
  // transaction, a SET inside a transaction that rolls back is undone, DISCARD ALL and
  // RESET ALL clear it.
  bool approval_local_ = false;
  bool approval_in_transaction_ = false;
  std::string revoked_note_;      // set when a held token was revoked: said in the next refusal
  std::string last_approval_id_;  // set by decide(): the token that allowed the last statement
  std::shared_ptr<const GuardSpec> last_guard_;  // set by decide(), for on_parse
  // The row limit decide() found for its statement(s), or null.
  static std::shared_ptr<const GuardSpec> guard_for(
      const std::shared_ptr<const parser::Classification>& c, const policy::Decision& d);
  // decide()'s intent events, per statement (null when not audited), for the outcome records.
  std::vector<std::shared_ptr<const audit::Event>> decided_;
  std::uint64_t discards_ = 0;
  std::uint64_t may_end_transaction_ = 0;
  // boundaries_ when the last Execute that may begin or end a transaction block was sent.
  std::optional<std::uint64_t> block_change_at_;
  std::uint64_t may_change_counts_ = 0;
  std::string marker_prefix_;
  std::uint64_t next_marker_ = 1;
  std::unordered_map<std::string, Refusal> refusals_;
  std::uint64_t next_statement_id_ = 1;
  std::uint64_t next_group_ = 1;
  std::uint64_t extended_group_ = 0;  // 0: none open since the last Sync
  std::deque<Running> running_;
  std::deque<std::uint64_t> groups_;  // one per ReadyForQuery the server owes
  // ReadyForQuery messages that answered a Query, Sync or FunctionCall of the client: the
  // last one answered the readies_-th of them (boundaries_ counted it when it was sent).
  std::uint64_t readies_ = 0;
  // ErrorResponses from the server (and note_error()). A pending drop (below) takes effect
  // only if none came since it was sent, whichever group it belonged to.
  std::uint64_t errors_ = 0;
  // The last group an error was charged to (note_error()). While it is the open one, the
  // server skips the rest of it up to the Sync.
  std::uint64_t failed_group_ = 0;
  bool group_failed() const { return extended_group_ != 0 && extended_group_ == failed_group_; }
  std::map<std::string, std::shared_ptr<Prepared>, std::less<>> statements_;  // by name
  // Client Parses (and refusal markers sent as a Parse in place of another message) whose
  // answer is still out, oldest first. statements_ holds a Parse's statement from the start:
  // a Bind in the same Sync group runs it if the Parse succeeds, and is skipped if it fails.
  struct ParseInFlight {
    bool marker = false;  // a refusal marker: nothing to undo
    std::string name;
    std::shared_ptr<Prepared> installed;
    std::shared_ptr<Prepared> previous;  // what the name stood for before (null: nothing)
    std::uint64_t boundary = 0;          // boundaries_ when it was sent
  };
  std::deque<ParseInFlight> parses_in_flight_;
  std::uint64_t boundaries_ = 0;  // Query, Sync and FunctionCall messages the client sent
  TextReading reading_;
  // How the server will read a client's text now: nullopt for the cache's reading.
  std::optional<TextReading::Reading> read_as_server(std::string_view sql) const {
    return reading_.read(sql, groups_.empty() && extended_group_ == 0);
  }
  // The Parse in flight that installed `p` under a name that already stood for a statement,
  // or null. Until it is answered the server may still run the earlier one.
  const ParseInFlight* contested(const Prepared* p) const;
  // What a portal runs, and under which row limit, is the statement as it was at its Bind:
  // the unnamed statement may be parsed again (or a statement closed) before the portal is
  // executed.
  struct Portal {
    std::string statement;               // its name, for the audit record
    std::shared_ptr<Prepared> prepared;  // null: bound to a statement pgmoat does not know
    std::uint64_t bound = 0;             // boundaries_ at its Bind
    std::uint64_t version = 0;           // from versions_, at its Bind
    std::uint64_t group = 0;             // the Sync group of its Bind
    // That group failed: the server may have refused or skipped the Bind and kept an earlier
    // portal of the name, which ROLLBACK TO SAVEPOINT lets run. Its Execute is refused until it
    // is bound again.
    bool uncertain = false;
  };
  // By portal name. A named portal is dropped with its transaction (on_ready); the unnamed
  // one, rebound by nearly every Execute, stays (an Execute of it without a Bind fails).
  std::map<std::string, Portal, std::less<>> portals_;
  bool has_named_portals() const {
    return portals_.size() > (portals_.empty() || !portals_.begin()->first.empty() ? 0u : 1u);
  }
  // Drops the named portals bound before the `boundary`-th Query, Sync or FunctionCall.
  void drop_portals_bound_before(std::uint64_t boundary);
  // SQL-level PREPARE name AS ...: what the body does, so EXECUTE name is judged like it.
  struct SqlPrepared {
    parser::ClassSet classes = 0;
    std::vector<parser::TableRef> tables;
    std::vector<std::string> functions;
    std::string target;
    std::uint64_t version = 0;  // from versions_: which PREPARE of the name this is
  };
  std::map<std::string, SqlPrepared, std::less<>> sql_prepared_;
  std::uint64_t versions_ = 0;  // Parses and PREPAREs seen
  // A drop of prepared statement or portal names (DEALLOCATE [ALL], DISCARD ALL, Close) takes
  // effect once a ReadyForQuery answers a boundary sent after it, if no error came in between.
  // Until then, and for good if an error came (the drop may have failed or been skipped), the
  // names stand, as they do on the server: pgmoat judges them as whatever they may still run.
  struct PendingDrop {
    std::uint64_t before = 0;   // boundaries sent before it
    std::uint64_t errors = 0;   // errors_ when it was sent
    std::uint64_t version = 0;  // versions_ when it was sent: it drops what is older
    std::string name;           // empty with `all`
    bool all = false;           // DEALLOCATE ALL, DISCARD ALL
    bool portal = false;        // Close of a portal
    // PREPAREs after the drop in the same query string: what their names stand for once the
    // drop has taken effect (until then they add to the old bodies).
    std::vector<std::pair<std::string, SqlPrepared>> replacements;
  };
  std::deque<PendingDrop> pending_drops_;
  void apply_drop(const PendingDrop& d);
  // What `name` stands for now: the versions of its Parse'd and SQL-prepared statements.
  Prepared::Runs runs_now(const std::string& name) const;
  // A copy of `c` in which each statement that runs a prepared statement (EXECUTE, EXPLAIN
  // ANALYZE EXECUTE, CREATE TABLE AS EXECUTE) carries the classes and tables of whatever the
  // name may stand for: a SQL PREPARE's body, a protocol Parse's statement, or both when
  // pgmoat cannot tell which one the server kept. nullptr when `c` runs none. A Parse'd
  // statement that did not parse (allowed with on_parse_error = "allow") makes the copy not
  // ok, as if its text were the one that failed. `chained` gets a description when a Parse'd
  // statement it may run runs a prepared statement in turn (a Parse of `EXECUTE other`):
  // pgmoat does not follow such chains, and the caller refuses.
  std::shared_ptr<const parser::Classification> resolve_execute(const parser::Classification& c,
                                                                std::string& chained);
  // The first statement of `c` that runs a prepared statement pgmoat never saw prepared (or
  // saw dropped), or null: what it runs cannot be judged.
  const parser::Statement* executes_unknown(const parser::Classification& c) const;
  // The names `c` prepares (PREPARE: at once) and drops (DEALLOCATE [ALL], DISCARD ALL: see
  // PendingDrop). `before`: the boundaries sent before the message that carries `c`.
  void follow_names(const parser::Classification& c, std::uint64_t before);
  // Only the PREPAREs, at a Parse of a text: its names are judged through EXECUTE from then
  // on. The rest of follow_names() waits until the Parse's portal runs.
  void remember_prepares(const parser::Classification& c);
  // A PREPARE of a name pgmoat still knows fails on the server (the name is taken) unless the
  // name was dropped unseen: the name is judged as both bodies from then on.
  void remember_prepare(const parser::Statement& st);
  // With [audit] parameters = true: the values bound to each portal, for its Execute record.
  std::map<std::string, std::vector<std::optional<std::string>>, std::less<>> portal_values_;
};

}  // namespace pgmoat::proxy
