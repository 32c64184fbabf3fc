// Which message the server is answering. Every message forwarded to the server that it
// answers is recorded in order, with who sent it (the client, or pgmoat itself); every
// message the server sends is attributed to the oldest message not yet fully answered.
//
// The rules are the protocol's (https://www.postgresql.org/docs/15/protocol-flow.html):
//   Query, FunctionCall and Sync are answered up to and including ReadyForQuery;
//   Parse by ParseComplete, Bind by BindComplete, Close by CloseComplete, Describe by
//   RowDescription or NoData (after ParameterDescription), Execute by CommandComplete,
//   EmptyQueryResponse or PortalSuspended (after DataRows or a COPY).
//   An ErrorResponse to an extended-protocol message ends it, and the server then skips every
//   message up to the next Sync without answering it.
//   While an Execute is in COPY FROM STDIN the server ignores Sync (libpq sends one before
//   the data and another after CopyDone); a client may send the data, the CopyDone and the
//   second Sync before the CopyInResponse arrives, and that Sync is answered.
// Sans-io: no sockets here, so it is unit-tested on tags (tests/unit/wire).
#pragma once

#include <cstdint>
#include <deque>
#include <string_view>
#include <utility>

namespace pgmoat::proxy {

enum class Sender : std::uint8_t {
  client,    // the client's own message: its answers go to the client as they are
  guarded,   // the client's message, run under the row guard: its answers are held
  injected,  // a message pgmoat sent on its own: its answers never reach the client as such
};

class ResponseTracker {
 public:
  struct Answer {
    Sender sender = Sender::client;
    std::uint32_t step = 0;  // the caller's label for an injected message
    bool ends = false;       // this server message completes the answer
  };

  // Records one message (by its tag) as sent to the server.
  void sent(char tag, Sender sender = Sender::client, std::uint32_t step = 0);
  // Records every message in `bytes` (whole frontend messages back to back).
  void sent_all(std::string_view bytes, Sender sender, std::uint32_t step = 0);
  // Attributes one server message (by its tag) and updates the record.
  Answer on_server(char tag);

  bool idle() const { return pending_.empty(); }
  // Whose answer the next server message belongs to, unless it ends one (a DataRow never
  // does): the client's when nothing is pending (notices, parameter changes).
  Sender next_sender() const { return pending_.empty() ? Sender::client : pending_.front().sender; }
  // A Query, FunctionCall or Sync is not answered yet: a ReadyForQuery is still to come.
  bool ready_pending() const;
  // Messages of the guard (guarded or injected) not yet answered or skipped.
  std::size_t guard_pending() const { return guard_pending_; }
  // The server is skipping messages until the next Sync (after an extended-protocol error).
  bool skipping() const { return skipping_; }
  // How each client Parse ended, in the order they were sent: true for ParseComplete, false
  // for an error or a skip (the server then keeps what it had under the name).
  bool has_parse_outcome() const { return !parse_outcomes_.empty(); }
  // Client Query, FunctionCall and Sync messages the server will never answer (skipped after
  // an error before the next Sync; a Sync during COPY IN) since the last call.
  std::uint32_t take_unanswered_boundaries() { return std::exchange(unanswered_boundaries_, 0); }
  bool take_parse_outcome() {
    const bool ok = parse_outcomes_.front();
    parse_outcomes_.pop_front();
    return ok;
  }

 private:
  enum class Kind : std::uint8_t {
    query,
    function_call,
    sync,
    parse,
    bind,
    close,
    describe,
    execute,
    // Not a message the server answers: where a CopyDone / CopyFail was sent while an Execute
    // that may be a COPY FROM STDIN was still unanswered (a pipelined copy). Dropped when it
    // reaches the front, or by that Execute's CopyInResponse.
    copy_end
  };
  struct Entry {
    Kind kind;
    Sender sender;
    std::uint32_t step;
  };
  // `parse_ok`: the front entry, if a client Parse, succeeded.
  void pop_front(bool parse_ok = false);
  // After an ErrorResponse to an extended message: drop what the server will skip.
  void skip_to_sync();
  // A CopyDone or CopyFail was sent (rare: kept out of sent()).
  [[gnu::noinline]] void copy_ended();

  std::deque<Entry> pending_;
  std::deque<bool> parse_outcomes_;
  std::size_t guard_pending_ = 0;
  bool skipping_ = false;
  // An Execute is in COPY FROM STDIN: the server ignores Sync until CopyDone / CopyFail.
  bool copy_in_ = false;
  std::uint32_t copy_ends_ = 0;  // copy_end marks in pending_
  std::uint32_t unanswered_boundaries_ = 0;
};

}  // namespace pgmoat::proxy
