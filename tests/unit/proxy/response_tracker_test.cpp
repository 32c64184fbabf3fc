// Which client or pgmoat message each server message answers, on tags alone.
#include "proxy/response_tracker.h"

#include <gtest/gtest.h>

#include <string>

#include "proxy/wire/messages.h"

namespace pgmoat::proxy {
namespace {

// The senders of `tags`, one letter each: c client, g guarded, i injected; '-' when the
// message ends nothing, upper case when it ends its answer.
std::string attribute(ResponseTracker& t, std::string_view tags) {
  std::string out;
  for (char tag : tags) {
    auto a = t.on_server(tag);
    char c = a.sender == Sender::client ? 'c' : a.sender == Sender::guarded ? 'g' : 'i';
    out.push_back(a.ends ? static_cast<char>(c - 'a' + 'A') : c);
  }
  return out;
}

TEST(ResponseTracker, SimpleQueryIsAnsweredUpToReadyForQuery) {
  ResponseTracker t;
  t.sent('Q');
  t.sent('Q', Sender::injected, 1);
  EXPECT_EQ(t.guard_pending(), 1u);
  // RowDescription, DataRows, CommandComplete, an error: all the first Query's until Z.
  EXPECT_EQ(attribute(t, "TDDCEZ"), "cccccC");
  EXPECT_EQ(attribute(t, "CZ"), "iI");
  EXPECT_TRUE(t.idle());
  EXPECT_EQ(t.guard_pending(), 0u);
}

// The pump reads a client's DataRows as one run only while next_sender() says they are the
// client's: a guard count queued behind the client's Execute is never swallowed by a run.
TEST(ResponseTracker, NextSenderFollowsTheAnswerInProgress) {
  ResponseTracker t;
  EXPECT_EQ(t.next_sender(), Sender::client);  // nothing pending: notices and the like
  t.sent('E');
  t.sent('E', Sender::injected, 1);
  EXPECT_EQ(t.next_sender(), Sender::client);
  EXPECT_EQ(attribute(t, "DDC"), "ccC");
  EXPECT_EQ(t.next_sender(), Sender::injected);
  EXPECT_EQ(attribute(t, "DC"), "iI");
  EXPECT_EQ(t.next_sender(), Sender::client);
}

TEST(ResponseTracker, ReadyPendingUntilEveryQuerySyncAndFunctionCallIsAnswered) {
  ResponseTracker t;
  EXPECT_FALSE(t.ready_pending());
  t.sent('P');
  t.sent('B');
  t.sent('E');
  EXPECT_FALSE(t.ready_pending());  // extended messages end without a ReadyForQuery
  t.sent('S');
  EXPECT_TRUE(t.ready_pending());
  attribute(t, "12C");
  EXPECT_TRUE(t.ready_pending());
  attribute(t, "Z");
  EXPECT_FALSE(t.ready_pending());
  t.sent('Q');
  EXPECT_TRUE(t.ready_pending());
  attribute(t, "CZ");
  t.sent('F');
  EXPECT_TRUE(t.ready_pending());
  attribute(t, "VZ");
  EXPECT_FALSE(t.ready_pending());
}

TEST(ResponseTracker, ExtendedMessagesEachEndWithTheirOwnAnswer) {
  ResponseTracker t;
  for (char c : std::string("PBDES")) t.sent(c);
  // ParseComplete, BindComplete, RowDescription (Describe), DataRow, CommandComplete, Z.
  EXPECT_EQ(attribute(t, "12TDCZ"), "CCCcCC");
  EXPECT_TRUE(t.idle());
}

TEST(ResponseTracker, DescribeStatementEndsAtRowDescriptionNotParameterDescription) {
  ResponseTracker t;
  t.sent('D');
  t.sent('E', Sender::guarded);
  EXPECT_EQ(attribute(t, "tn"), "cC");
  EXPECT_EQ(attribute(t, "DDs"), "ggG");  // PortalSuspended ends an Execute
}

TEST(ResponseTracker, ErrorInExtendedSkipsEverythingUpToSync) {
  ResponseTracker t;
  t.sent('B');
  t.sent('E');
  t.sent('P', Sender::injected, 2);
  t.sent('E', Sender::guarded);
  t.sent('Q');  // the server skips a Query too until Sync
  t.sent('S');
  EXPECT_EQ(t.guard_pending(), 2u);
  EXPECT_EQ(t.take_unanswered_boundaries(), 0u);
  EXPECT_EQ(attribute(t, "E"), "C");  // the Bind failed
  EXPECT_EQ(t.guard_pending(), 0u);   // the guard's messages will never be answered
  EXPECT_FALSE(t.skipping());         // a Sync is on its way
  // The client's Query gets no ReadyForQuery of its own: the gate must know (groups).
  EXPECT_EQ(t.take_unanswered_boundaries(), 1u);
  EXPECT_EQ(t.take_unanswered_boundaries(), 0u);
  EXPECT_EQ(attribute(t, "Z"), "C");
  EXPECT_TRUE(t.idle());
}

TEST(ResponseTracker, MessagesSentWhileTheServerSkipsAreNeverAwaited) {
  ResponseTracker t;
  t.sent('E');
  EXPECT_EQ(attribute(t, "E"), "C");
  EXPECT_TRUE(t.skipping());
  t.sent('P', Sender::injected, 2);
  t.sent('E', Sender::guarded);
  t.sent('Q');
  t.sent('Q', Sender::injected, 3);
  EXPECT_TRUE(t.idle());
  EXPECT_EQ(t.guard_pending(), 0u);
  EXPECT_EQ(t.take_unanswered_boundaries(), 1u);  // the client's Query, skipped
  t.sent('S');
  EXPECT_FALSE(t.skipping());
  EXPECT_EQ(attribute(t, "Z"), "C");
}

// The outcomes of the client's Parses so far, in order: '+' succeeded, '-' failed or skipped.
std::string parse_outcomes(ResponseTracker& t) {
  std::string out;
  while (t.has_parse_outcome()) out.push_back(t.take_parse_outcome() ? '+' : '-');
  return out;
}

TEST(ResponseTracker, EachClientParseEndsWithItsOutcome) {
  ResponseTracker t;
  t.sent('P');
  t.sent('P', Sender::injected, 2);  // the guard's own Parses are not reported
  t.sent('B');
  t.sent('P');  // skipped: the Bind fails
  t.sent('S');
  EXPECT_EQ(attribute(t, "1"), "C");
  EXPECT_EQ(parse_outcomes(t), "+");
  EXPECT_EQ(attribute(t, "1E"), "IC");
  EXPECT_EQ(parse_outcomes(t), "-");  // skipped with everything up to the Sync
  EXPECT_EQ(attribute(t, "Z"), "C");
  t.sent('P');
  t.sent('S');
  EXPECT_EQ(attribute(t, "E"), "C");  // e.g. 42P05: the name is taken
  EXPECT_EQ(parse_outcomes(t), "-");
  EXPECT_EQ(attribute(t, "Z"), "C");
  t.sent('E');
  EXPECT_EQ(attribute(t, "E"), "C");
  EXPECT_TRUE(t.skipping());
  t.sent('P');  // sent while the server skips: it is never answered, its outcome is known now
  EXPECT_EQ(parse_outcomes(t), "-");
  EXPECT_TRUE(t.idle());
}

TEST(ResponseTracker, AsynchronousMessagesEndNothing) {
  ResponseTracker t;
  t.sent('E', Sender::guarded);
  EXPECT_EQ(attribute(t, "NSADC"), "ggggG");
  // With nothing pending: a notice or a FATAL is the client's.
  EXPECT_EQ(attribute(t, "NE"), "cc");
}

TEST(ResponseTracker, ErrorInsideAQueryDoesNotEndIt) {
  ResponseTracker t;
  t.sent('Q', Sender::guarded);
  t.sent('Q', Sender::injected, 3);
  EXPECT_EQ(attribute(t, "EZ"), "gG");
  EXPECT_EQ(attribute(t, "EZ"), "iI");
}

TEST(ResponseTracker, CopyInsideAQueryAndAnExecute) {
  ResponseTracker t;
  t.sent('Q');
  t.sent('d');  // CopyData / CopyDone from the client are not answered on their own
  t.sent('c');
  EXPECT_EQ(attribute(t, "GCZ"), "ccC");
  t.sent('E');
  t.sent('S');
  EXPECT_EQ(attribute(t, "HddcCZ"), "ccccCC");
}

TEST(ResponseTracker, SentAllWalksBackToBackMessages) {
  ResponseTracker t;
  std::string bytes = wire::build_close('S', "g") + wire::build_parse("g", "SELECT 1", {}) +
                      wire::build_bind("g", "g") + wire::build_execute("g") +
                      wire::build_close('P', "g");
  t.sent_all(bytes, Sender::injected, 7);
  EXPECT_EQ(t.guard_pending(), 5u);
  auto a = t.on_server('3');
  EXPECT_EQ(a.step, 7u);
  EXPECT_TRUE(a.ends);
  EXPECT_EQ(attribute(t, "12DC3"), "IIiII");
  EXPECT_TRUE(t.idle());
}

TEST(ResponseTracker, ExtendedCopyFromStdinIgnoresTheSyncsSentDuringIt) {
  // libpq: Parse Bind Describe Execute Sync, then (after CopyInResponse) CopyData, CopyDone
  // and a second Sync. The server ignores Syncs during copy-in: one ReadyForQuery in all.
  ResponseTracker t;
  for (char c : std::string("PBDES")) t.sent(c);
  EXPECT_EQ(attribute(t, "12nG"), "CCCc");
  EXPECT_EQ(t.take_unanswered_boundaries(), 1u);  // the first Sync
  t.sent('d');
  t.sent('S');  // would also be ignored if sent before CopyDone
  EXPECT_EQ(t.take_unanswered_boundaries(), 1u);
  t.sent('c');
  t.sent('S');
  EXPECT_EQ(t.take_unanswered_boundaries(), 0u);
  EXPECT_EQ(attribute(t, "CZ"), "CC");
  EXPECT_TRUE(t.idle());
  t.sent('Q', Sender::injected, 2);
  EXPECT_EQ(attribute(t, "CZ"), "iI");  // the next answer is not mistaken for the client's
}

TEST(ResponseTracker, PipelinedExtendedCopyAnswersTheSyncAfterCopyDone) {
  // Everything in one write, before CopyInResponse: Parse Bind Execute Sync, the data,
  // CopyDone and a second Sync. The server ignores the first Sync (it arrives during the
  // copy) and answers the second; an injected query after it must get its own answer.
  ResponseTracker t;
  for (char c : std::string("PBESdcS")) t.sent(c);
  t.sent('Q', Sender::injected, 4);
  EXPECT_EQ(attribute(t, "12G"), "CCc");
  EXPECT_EQ(t.take_unanswered_boundaries(), 1u);  // only the first Sync
  EXPECT_EQ(attribute(t, "CZ"), "CC");
  EXPECT_EQ(attribute(t, "TDCZ"), "iiiI");
  EXPECT_TRUE(t.idle());
}

TEST(ResponseTracker, TwoPipelinedCopiesEachIgnoreOnlyTheirOwnSync) {
  ResponseTracker t;
  for (char c : std::string("BESdcSBESdfS")) t.sent(c);  // the second copy ends in CopyFail
  EXPECT_EQ(attribute(t, "2GCZ"), "CcCC");
  EXPECT_EQ(attribute(t, "2GEZ"), "CcCC");  // CopyFail: an error, then the Sync's answer
  EXPECT_EQ(t.take_unanswered_boundaries(), 2u);
  EXPECT_TRUE(t.idle());
}

TEST(ResponseTracker, ACopyEndSentWhenNoExecuteIsACopyChangesNothing) {
  // The Execute failed before any CopyInResponse (a missing table): the server skips to the
  // first Sync and ignores the copy messages sent after it, outside copy mode. Both Syncs
  // are answered.
  ResponseTracker t;
  for (char c : std::string("BESdcS")) t.sent(c);
  t.sent('Q', Sender::injected, 5);
  EXPECT_EQ(attribute(t, "2EZ"), "CCC");
  EXPECT_EQ(attribute(t, "Z"), "C");
  EXPECT_EQ(attribute(t, "CZ"), "iI");
  EXPECT_TRUE(t.idle());
  EXPECT_EQ(t.take_unanswered_boundaries(), 0u);
  // A simple-query COPY: CopyDone with nothing extended pending leaves no mark.
  t.sent('Q');
  t.sent('d');
  t.sent('c');
  EXPECT_EQ(attribute(t, "GCZ"), "ccC");
  EXPECT_TRUE(t.idle());
}

TEST(ResponseTracker, ReadyForQueryOutOfStepResynchronises) {
  ResponseTracker t;
  t.sent('P');
  t.sent('S');
  t.sent('Q');
  EXPECT_EQ(attribute(t, "Z"), "C");  // ParseComplete never came: both P and S are done
  EXPECT_EQ(attribute(t, "Z"), "C");
  EXPECT_TRUE(t.idle());
}

}  // namespace
}  // namespace pgmoat::proxy
