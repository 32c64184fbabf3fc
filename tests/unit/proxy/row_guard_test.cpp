// The row guard's verdict from the server's answers, fed as protocol bytes.
#include "proxy/row_guard.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/wire/messages.h"
#include "proxy/wire/protocol.h"

namespace pgmoat::proxy {
namespace {

using Result = RowGuard::Result;

std::string data_row(const std::vector<std::optional<std::string>>& cols) {
  std::string out;
  std::size_t at = wire::begin_message(out, wire::be::kDataRow);
  wire::put_u16(out, static_cast<std::uint16_t>(cols.size()));
  for (const auto& c : cols) {
    if (!c) {
      wire::put_u32(out, 0xFFFFFFFFu);
      continue;
    }
    wire::put_u32(out, static_cast<std::uint32_t>(c->size()));
    out += *c;
  }
  wire::finish_message(out, at);
  return out;
}

std::string complete(std::string_view tag) {
  std::string out;
  std::size_t at = wire::begin_message(out, wire::be::kCommandComplete);
  wire::put_cstr(out, tag);
  wire::finish_message(out, at);
  return out;
}

constexpr const char* kTransaction = "1764480000.123456";  // the transaction's start time

std::string settings_row(std::string_view track_counts = "on",
                         std::optional<std::string> catalog_bytes = std::nullopt,
                         std::string transaction = kTransaction) {
  return data_row(
      {std::string(track_counts), std::move(transaction), std::move(catalog_bytes), std::nullopt});
}
std::string table_row(std::string name, std::int64_t del, std::int64_t upd) {
  return data_row({std::nullopt, std::move(name), std::to_string(del), std::to_string(upd)});
}

std::shared_ptr<GuardSpec> spec(std::int64_t max_rows, bool enforce = true) {
  auto s = std::make_shared<GuardSpec>();
  s->max_rows = max_rows;
  s->enforce = enforce;
  s->rule = "row-limit";
  return s;
}

using Tables = std::vector<std::tuple<std::string, std::int64_t, std::int64_t>>;

// Feeds one count query's answer (after the settings row, one row per table).
void count(RowGuard& g, RowGuard::Step step, const Tables& tables,
           std::optional<std::string> catalog_bytes = std::nullopt,
           std::string transaction = kTransaction) {
  g.on_message(Sender::injected, step,
               settings_row("on", std::move(catalog_bytes), std::move(transaction)));
  for (const auto& [name, del, upd] : tables)
    g.on_message(Sender::injected, step, table_row(name, del, upd));
  g.on_message(Sender::injected, step, complete("SELECT 1"));
  g.on_message(Sender::injected, step, wire::ready_for_query('T'));
}

TEST(RowGuard, SimpleIdleSendsBeginCountsAroundTheQuery) {
  RowGuard g;
  auto sends = g.start(RowGuard::Mode::simple_idle, spec(10), wire::build_query("DELETE FROM t"));
  ASSERT_EQ(sends.size(), 4u);
  EXPECT_EQ(sends[0].bytes, wire::build_query("BEGIN"));
  EXPECT_EQ(sends[1].step, RowGuard::kBefore);
  EXPECT_EQ(sends[2].sender, Sender::guarded);
  EXPECT_EQ(sends[2].bytes, wire::build_query("DELETE FROM t"));
  EXPECT_EQ(sends[3].step, RowGuard::kAfter);
  EXPECT_TRUE(g.counting());
}

TEST(RowGuard, TheCountStatementIsPreparedOnceAndAgainAfterAFailure) {
  RowGuard g("guard_x");
  auto has_parse = [&](const RowGuard::Send& s) {
    return s.bytes.find(std::string(RowGuard::count_sql())) != std::string::npos;
  };
  auto sends = g.start(RowGuard::Mode::extended, spec(5), wire::build_execute(""));
  ASSERT_EQ(sends.size(), 3u);
  EXPECT_TRUE(has_parse(sends[0]));
  EXPECT_FALSE(has_parse(sends[2]));
  // extended: no Sync of pgmoat's own inside the client's batch
  EXPECT_EQ(sends[2].bytes.find(wire::build_sync()), std::string::npos);
  sends = g.start(RowGuard::Mode::simple_block, spec(5), wire::build_query("..."));
  EXPECT_FALSE(has_parse(sends[0]));
  EXPECT_TRUE(sends[0].bytes.ends_with(wire::build_sync()));  // simple: counts end with Sync
  g.on_message(Sender::injected, RowGuard::kBefore,
               wire::error_response("ERROR", "26000", "prepared statement does not exist"));
  sends = g.start(RowGuard::Mode::simple_block, spec(5), wire::build_query("..."));
  EXPECT_TRUE(has_parse(sends[0]));
  g.forget_statement();
  sends = g.start(RowGuard::Mode::simple_block, spec(5), wire::build_query("..."));
  EXPECT_TRUE(has_parse(sends[0]));
  EXPECT_TRUE(sends[0].bytes.starts_with(wire::build_close('S', "guard_x")));
}

TEST(RowGuard, CascadedRowsCountAndRefuseOverTheLimit) {
  RowGuard g;
  g.start(RowGuard::Mode::simple_block, spec(1000), wire::build_query("DELETE ..."));
  // Earlier in the transaction: 5 rows of public.other were deleted.
  count(g, RowGuard::kBefore, {{"public.other", 5, 0}});
  g.on_message(Sender::guarded, 0, complete("DELETE 7"));
  g.on_message(Sender::guarded, 0, wire::ready_for_query('T'));
  count(g, RowGuard::kAfter,
        {{"public.other", 5, 0}, {"public.station", 7, 0}, {"public.measurement", 20000, 0}});
  EXPECT_EQ(g.decide(), Result::over);
  EXPECT_EQ(g.rows(), 20007);
  EXPECT_EQ(g.breakdown(), "public.measurement 20000 deleted, public.station 7 deleted");
  EXPECT_FALSE(g.active());
}

TEST(RowGuard, WithinTheLimitPassesAndHoldsTheAnswerInOrder) {
  RowGuard g;
  g.start(RowGuard::Mode::simple_block, spec(10), wire::build_query("UPDATE ..."));
  count(g, RowGuard::kBefore, {});
  std::vector<std::string> answer = {data_row({std::string("1")}), data_row({std::string("2")}),
                                     complete("UPDATE 2"), wire::ready_for_query('T')};
  for (const auto& m : answer) g.on_message(Sender::guarded, 0, m);
  count(g, RowGuard::kAfter, {{"public.t", 0, 2}});
  EXPECT_EQ(g.decide(), Result::pass);
  EXPECT_EQ(g.rows(), 2);
  EXPECT_EQ(g.take_held(), answer);
}

TEST(RowGuard, CommandCompleteRowsAreAFloorUnderTheCounters) {
  // A foreign table's rows are not in pg_stat_xact_user_tables; the tag still counts.
  RowGuard g;
  g.start(RowGuard::Mode::extended, spec(3), wire::build_execute(""));
  count(g, RowGuard::kBefore, {});
  g.on_message(Sender::guarded, 0, complete("DELETE 4"));
  count(g, RowGuard::kAfter, {});
  EXPECT_EQ(g.decide(), Result::over);
  EXPECT_EQ(g.rows(), 4);
}

TEST(RowGuard, InsertTagsDoNotCount) {
  RowGuard g;
  g.start(RowGuard::Mode::simple_block, spec(3), wire::build_query("..."));
  count(g, RowGuard::kBefore, {});
  g.on_message(Sender::guarded, 0, complete("INSERT 0 500"));
  g.on_message(Sender::guarded, 0, complete("DELETE 1"));
  count(g, RowGuard::kAfter, {{"public.t", 1, 0}});
  EXPECT_EQ(g.decide(), Result::pass);
  EXPECT_EQ(g.rows(), 1);
}

TEST(RowGuard, ReturningRowsOverTheLimitAreNotHeld) {
  RowGuard g;
  g.start(RowGuard::Mode::extended, spec(2), wire::build_execute(""));
  count(g, RowGuard::kBefore, {});
  for (int i = 0; i < 5; ++i) g.on_message(Sender::guarded, 0, data_row({std::to_string(i)}));
  g.on_message(Sender::guarded, 0, complete("DELETE 5"));
  count(g, RowGuard::kAfter, {{"public.t", 5, 0}});
  EXPECT_EQ(g.decide(), Result::over);
  // Two rows held at most, plus the CommandComplete.
  EXPECT_EQ(g.take_held().size(), 3u);
}

TEST(RowGuard, NotEnforcedOverTheLimitPasses) {
  RowGuard g;
  g.start(RowGuard::Mode::simple_block, spec(1, false), wire::build_query("..."));
  count(g, RowGuard::kBefore, {});
  g.on_message(Sender::guarded, 0, complete("DELETE 3"));
  count(g, RowGuard::kAfter, {{"public.t", 3, 0}});
  EXPECT_EQ(g.decide(), Result::pass);
  EXPECT_EQ(g.rows(), 3);
}

TEST(RowGuard, TheStatementsOwnErrorIsPassedOn) {
  RowGuard g;
  g.start(RowGuard::Mode::simple_idle, spec(1), wire::build_query("..."));
  count(g, RowGuard::kBefore, {});
  auto err = wire::error_response("ERROR", "23503", "violates foreign key");
  g.on_message(Sender::guarded, 0, err);
  g.on_message(Sender::guarded, 0, wire::ready_for_query('E'));
  g.on_message(Sender::injected, RowGuard::kAfter,
               wire::error_response("ERROR", "25P02", "current transaction is aborted"));
  EXPECT_EQ(g.decide(), Result::client_failed);
  EXPECT_TRUE(g.active());  // simple_idle still owes the ROLLBACK
  auto fin = g.finish_idle(false);
  EXPECT_EQ(fin.bytes, wire::build_query("ROLLBACK"));
  g.on_message(Sender::injected, RowGuard::kFinal, complete("ROLLBACK"));
  auto out = g.on_final_ready(wire::ready_for_query('I'));
  ASSERT_EQ(out.size(), 2u);  // the error, then the ROLLBACK's ReadyForQuery, not the held 'E'
  EXPECT_EQ(out[0], err);
  EXPECT_EQ(out[1], wire::ready_for_query('I'));
  EXPECT_FALSE(g.active());
}

TEST(RowGuard, ACommitErrorFollowsTheHeldAnswer) {
  RowGuard g;
  g.start(RowGuard::Mode::simple_idle, spec(5), wire::build_query("..."));
  count(g, RowGuard::kBefore, {});
  g.on_message(Sender::guarded, 0, complete("DELETE 1"));
  g.on_message(Sender::guarded, 0, wire::ready_for_query('T'));
  count(g, RowGuard::kAfter, {{"public.t", 1, 0}});
  EXPECT_EQ(g.decide(), Result::pass);
  auto err = wire::error_response("ERROR", "23503", "deferred constraint");
  g.on_message(Sender::injected, RowGuard::kFinal, err);
  auto out = g.on_final_ready(wire::ready_for_query('I'));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], complete("DELETE 1"));
  EXPECT_EQ(out[1], err);
  EXPECT_EQ(out[2], wire::ready_for_query('I'));
}

TEST(RowGuard, SelectRowsOfAnotherStatementDoNotCount) {
  auto s = spec(3);
  s->single_statement = false;  // SELECT * FROM big; UPDATE t ... WHERE id = 1
  RowGuard g;
  g.start(RowGuard::Mode::simple_block, s, wire::build_query("..."));
  count(g, RowGuard::kBefore, {});
  for (int i = 0; i < 10; ++i) g.on_message(Sender::guarded, 0, data_row({std::to_string(i)}));
  g.on_message(Sender::guarded, 0, complete("SELECT 10"));
  g.on_message(Sender::guarded, 0, complete("UPDATE 1"));
  count(g, RowGuard::kAfter, {{"public.t", 0, 1}});
  EXPECT_EQ(g.decide(), Result::pass);
  EXPECT_EQ(g.rows(), 1);
  EXPECT_EQ(g.take_held().size(), 12u);
}

TEST(RowGuard, TooLargeWinsOverTheStatementsOwnError) {
  // An answer over kMaxHeldBytes followed by an error: the client must get the refusal, not
  // an empty answer.
  RowGuard g;
  g.start(RowGuard::Mode::simple_block, spec(5), wire::build_query("..."));
  count(g, RowGuard::kBefore, {});
  g.note_oversized();
  g.on_message(Sender::guarded, 0, wire::error_response("ERROR", "22012", "division by zero"));
  EXPECT_EQ(g.decide(), Result::too_large);
}

TEST(RowGuard, AFailedFirstCountBetweenSimpleQueriesIsACountFailure) {
  RowGuard g;
  g.start(RowGuard::Mode::simple_block, spec(5), wire::build_query("..."));
  g.on_message(Sender::injected, RowGuard::kBefore,
               wire::error_response("ERROR", "26000", "prepared statement does not exist"));
  // the client's statement then failed only because the transaction was aborted
  g.on_message(Sender::guarded, 0, wire::error_response("ERROR", "25P02", "aborted"));
  EXPECT_EQ(g.decide(), Result::count_failed);
  EXPECT_TRUE(g.count_errored());
}

TEST(RowGuard, FatalInTheHeldAnswerIsDeliveredAtOnce) {
  RowGuard g;
  g.start(RowGuard::Mode::simple_block, spec(5), wire::build_query("..."));
  auto fatal = wire::error_response("FATAL", "57P01", "terminating connection");
  EXPECT_EQ(g.on_message(Sender::guarded, 0, fatal), fatal);
}

TEST(RowGuard, AFailedCountRefuses) {
  RowGuard g;
  g.start(RowGuard::Mode::simple_block, spec(5), wire::build_query("..."));
  count(g, RowGuard::kBefore, {});
  g.on_message(Sender::guarded, 0, complete("DELETE 1"));
  g.on_message(
      Sender::injected, RowGuard::kAfter,
      wire::error_response("ERROR", "57014", "canceling statement due to statement timeout"));
  EXPECT_EQ(g.decide(), Result::count_failed);
  EXPECT_NE(g.count_error().find("57014"), std::string::npos);
}

TEST(RowGuard, TrackCountsOffRefuses) {
  RowGuard g;
  g.start(RowGuard::Mode::simple_block, spec(5), wire::build_query("..."));
  g.on_message(Sender::injected, RowGuard::kBefore, settings_row("off"));
  g.on_message(Sender::injected, RowGuard::kBefore, complete("SELECT 1"));
  g.on_message(Sender::guarded, 0, complete("DELETE 1"));
  g.on_message(Sender::injected, RowGuard::kAfter, settings_row("off"));
  g.on_message(Sender::injected, RowGuard::kAfter, complete("SELECT 1"));
  EXPECT_EQ(g.decide(), Result::count_failed);
  EXPECT_NE(g.count_error().find("track_counts"), std::string::npos);
}

TEST(RowGuard, ExtendedFirstCountFailureStandsForTheStatement) {
  RowGuard g;
  g.start(RowGuard::Mode::extended, spec(5), wire::build_execute(""));
  auto err = wire::error_response("ERROR", "25P02", "current transaction is aborted");
  g.on_message(Sender::injected, RowGuard::kBefore, err);
  EXPECT_EQ(g.decide(), Result::before_failed);
  EXPECT_EQ(g.error_message(), err);
}

TEST(RowGuard, NothingAnsweredIsSkipped) {
  RowGuard g;
  auto sends = g.start(RowGuard::Mode::extended, spec(5), wire::build_execute(""));
  EXPECT_NE(sends[0].bytes.find(std::string(RowGuard::count_sql())), std::string::npos);
  EXPECT_EQ(g.decide(), Result::skipped);
  EXPECT_FALSE(g.active());
  // The skipped batch held the Parse of the count statement: it is sent again.
  sends = g.start(RowGuard::Mode::extended, spec(5), wire::build_execute(""));
  EXPECT_NE(sends[0].bytes.find(std::string(RowGuard::count_sql())), std::string::npos);
}

TEST(RowGuard, ParameterStatusAndFatalFromInjectedMessagesReachTheClient) {
  RowGuard g;
  g.start(RowGuard::Mode::simple_block, spec(5), wire::build_query("..."));
  std::string ps;
  std::size_t at = wire::begin_message(ps, wire::be::kParameterStatus);
  wire::put_cstr(ps, "TimeZone");
  wire::put_cstr(ps, "UTC");
  wire::finish_message(ps, at);
  EXPECT_EQ(g.on_message(Sender::injected, RowGuard::kBefore, ps), ps);
  auto fatal = wire::error_response("FATAL", "57P01", "terminating connection");
  EXPECT_EQ(g.on_message(Sender::injected, RowGuard::kBefore, fatal), fatal);
  EXPECT_FALSE(g.on_message(Sender::injected, RowGuard::kBefore, settings_row()).has_value());
}

// Which count statement a send executes: the full one ("g") or the locked tables' ("g_locked").
bool runs_locked(const RowGuard::Send& s) {
  return s.bytes.find(wire::build_bind("g_locked", "g_locked")) != std::string::npos;
}
bool runs_full(const RowGuard::Send& s) {
  return s.bytes.find(wire::build_bind("g", "g")) != std::string::npos;
}
constexpr const char* kLargeCatalog = "1179648";  // pg_class with 3,000 user tables
constexpr const char* kSmallCatalog = "114688";   // pgbench's 4

// One whole guarded UPDATE in a transaction block: counts, the statement's answer, verdict.
Result run_update(RowGuard& g, const Tables& before, const Tables& after, std::int64_t tag_rows,
                  const char* catalog = kLargeCatalog, const char* transaction = kTransaction) {
  count(g, RowGuard::kBefore, before, catalog, transaction);
  g.on_message(Sender::guarded, 0, complete("UPDATE " + std::to_string(tag_rows)));
  g.on_message(Sender::guarded, 0, wire::ready_for_query('T'));
  count(g, RowGuard::kAfter, after, catalog, transaction);
  return g.decide();
}

// A guarded UPDATE whose before count is the previous statement's after count.
Result run_chained_update(RowGuard& g, const Tables& after, std::int64_t tag_rows,
                          const char* transaction = kTransaction) {
  g.on_message(Sender::guarded, 0, complete("UPDATE " + std::to_string(tag_rows)));
  g.on_message(Sender::guarded, 0, wire::ready_for_query('T'));
  count(g, RowGuard::kAfter, after, kSmallCatalog, transaction);
  return g.decide();
}

TEST(RowGuard, ASmallCatalogIsCountedInFullBeforeAndAfter) {
  RowGuard g("g");
  for (int i = 0; i < 3; ++i) {
    g.forget_chain();  // something else ran in between
    auto sends =
        g.start(RowGuard::Mode::simple_block, spec(10), wire::build_query("UPDATE"), false);
    ASSERT_EQ(sends.size(), 3u);
    EXPECT_TRUE(runs_full(sends[0]) && runs_full(sends[2]));
    EXPECT_FALSE(runs_locked(sends[0]) || runs_locked(sends[2]));
    EXPECT_EQ(run_update(g, {}, {{"public.t", 0, 1}}, 1, kSmallCatalog), Result::pass);
  }
  EXPECT_FALSE(g.counts_locked_tables());
}

TEST(RowGuard, ConsecutiveStatementsChainTheirCounts) {
  RowGuard g("g");
  // public.old holds 50 unreported updates of earlier transactions.
  auto sends = g.start(RowGuard::Mode::simple_block, spec(10), wire::build_query("U1"), false);
  ASSERT_EQ(sends.size(), 3u);
  EXPECT_FALSE(g.chained());
  ASSERT_EQ(run_update(g, {{"public.old", 0, 50}}, {{"public.old", 0, 50}, {"public.a", 0, 1}}, 1,
                       kSmallCatalog),
            Result::pass);
  // The next statement sends only itself and its after count: U1's after count stands before.
  sends = g.start(RowGuard::Mode::simple_block, spec(10), wire::build_query("U2"), false);
  ASSERT_EQ(sends.size(), 2u);
  EXPECT_TRUE(g.chained());
  EXPECT_EQ(sends[0].sender, Sender::guarded);
  EXPECT_TRUE(runs_full(sends[1]));
  EXPECT_EQ(
      run_chained_update(g, {{"public.old", 0, 50}, {"public.a", 0, 1}, {"public.b", 0, 3}}, 3),
      Result::pass);
  EXPECT_EQ(g.rows(), 3);
  EXPECT_EQ(g.breakdown(), "public.b 3 updated");
  // A cascade the statement's own row count does not show is still seen through the chain.
  sends = g.start(RowGuard::Mode::extended, spec(10), wire::build_execute(""), false);
  ASSERT_EQ(sends.size(), 2u);
  EXPECT_EQ(
      run_chained_update(
          g, {{"public.old", 0, 50}, {"public.a", 0, 1}, {"public.b", 0, 3}, {"public.c", 40, 0}},
          1),
      Result::over);
  EXPECT_EQ(g.rows(), 40);
  // A refused statement aborts the transaction: the next one counts before it runs.
  sends = g.start(RowGuard::Mode::simple_block, spec(10), wire::build_query("U4"), false);
  EXPECT_EQ(sends.size(), 3u);
  EXPECT_FALSE(g.chained());
}

TEST(RowGuard, TheChainBreaksWhereCountersMayHaveChangedOrTheTransactionEnded) {
  RowGuard g("g");
  auto pass = [&] {
    g.start(RowGuard::Mode::simple_block, spec(10), wire::build_query("U"), false);
    if (g.chained()) return run_chained_update(g, {{"public.t", 0, 1}}, 1);
    return run_update(g, {}, {{"public.t", 0, 1}}, 1, kSmallCatalog);
  };
  auto next_is_chained = [&](bool ready_pending = false) {
    g.start(RowGuard::Mode::simple_block, spec(10), wire::build_query("U"), ready_pending);
    const bool chained = g.chained();
    if (chained) {
      EXPECT_EQ(run_chained_update(g, {{"public.t", 0, 1}}, 1), Result::pass);
    } else {
      EXPECT_EQ(run_update(g, {}, {{"public.t", 0, 1}}, 1, kSmallCatalog), Result::pass);
    }
    return chained;
  };
  ASSERT_EQ(pass(), Result::pass);
  EXPECT_TRUE(next_is_chained());
  g.on_ready('T');
  EXPECT_TRUE(next_is_chained());
  g.forget_chain();  // an INSERT, a SELECT calling a function, COPY, ... ran in between
  EXPECT_FALSE(next_is_chained());
  g.on_ready('I');
  EXPECT_FALSE(next_is_chained());
  g.on_ready('E');
  EXPECT_FALSE(next_is_chained());
  g.forget_baseline();  // transaction control
  EXPECT_FALSE(next_is_chained());
  EXPECT_FALSE(next_is_chained(true));  // a ReadyForQuery is still on its way
  EXPECT_TRUE(next_is_chained());
  // A statement whose own error ends it, or whose count failed, leaves no chain.
  g.start(RowGuard::Mode::simple_block, spec(10), wire::build_query("U"), false);
  ASSERT_TRUE(g.chained());
  g.on_message(Sender::guarded, 0, wire::error_response("ERROR", "23505", "duplicate"));
  g.on_message(Sender::guarded, 0, wire::ready_for_query('E'));
  g.on_message(Sender::injected, RowGuard::kAfter,
               wire::error_response("ERROR", "25P02", "aborted"));
  EXPECT_EQ(g.decide(), Result::client_failed);
  EXPECT_FALSE(next_is_chained());
  // pgmoat's own BEGIN ... COMMIT never chains, and leaves no chain.
  auto sends = g.start(RowGuard::Mode::simple_idle, spec(10), wire::build_query("U"), false);
  EXPECT_EQ(sends.size(), 4u);
  EXPECT_FALSE(g.chained());
}

TEST(RowGuard, CountersThatFellDuringTheStatementRefuse) {
  // "TRUNCATE items; DELETE FROM orders ..." as one string: the TRUNCATE reset items'
  // counters, so the cascade into items cannot be told from the rows counted before.
  RowGuard g("g");
  g.start(RowGuard::Mode::simple_block, spec(1000), wire::build_query("T; D"), false);
  EXPECT_EQ(run_update(g, {{"public.items", 900, 0}},
                       {{"public.items", 300, 0}, {"public.orders", 1, 0}}, 1, kSmallCatalog),
            Result::count_failed);
  EXPECT_NE(g.count_error().find("public.items fell during the statement"), std::string::npos);
  // Reset to zero, the table drops out of the full after count.
  g.start(RowGuard::Mode::simple_block, spec(1000), wire::build_query("T; D"), false);
  EXPECT_EQ(run_update(g, {{"public.items", 900, 0}}, {{"public.orders", 1, 0}}, 1, kSmallCatalog),
            Result::count_failed);
  EXPECT_NE(g.count_error().find("public.items fell during the statement"), std::string::npos);
}

TEST(RowGuard, AChainOfAnotherTransactionIsRefused) {
  RowGuard g("g");
  g.start(RowGuard::Mode::extended, spec(10), wire::build_execute(""), false);
  ASSERT_EQ(run_update(g, {}, {{"public.t", 0, 1}}, 1, kSmallCatalog, "1.0"), Result::pass);
  g.start(RowGuard::Mode::extended, spec(10), wire::build_execute(""), false);
  ASSERT_TRUE(g.chained());
  EXPECT_EQ(run_chained_update(g, {{"public.t", 0, 1}}, 1, "2.0"), Result::count_failed);
  EXPECT_EQ(g.count_error(), "the transaction changed between the row counts");
}

TEST(RowGuard, ALargeCatalogCountsLockedTablesOnTopOfTheTransactionsBaseline) {
  RowGuard g("g");
  // First statement: nothing known yet, both counts in full. The catalog turns out large.
  // public.busy holds 1500 updates of earlier transactions not yet reported by the server.
  auto sends = g.start(RowGuard::Mode::simple_block, spec(1000), wire::build_query("U1"), false);
  EXPECT_TRUE(runs_full(sends[0]) && runs_full(sends[2]));
  EXPECT_EQ(
      run_update(g, {{"public.busy", 0, 1500}}, {{"public.busy", 0, 1500}, {"public.a", 0, 1}}, 1),
      Result::pass);
  EXPECT_TRUE(g.counts_locked_tables());
  // Second statement, same transaction: both counts read locked tables only. public.busy was
  // not locked before it (missing from the before count), so its baseline 1500 stands in.
  sends = g.start(RowGuard::Mode::simple_block, spec(1000), wire::build_query("U2"), false);
  EXPECT_TRUE(runs_locked(sends[0]) && runs_locked(sends[2]));
  EXPECT_EQ(run_update(g, {{"public.a", 0, 1}}, {{"public.a", 0, 1}, {"public.busy", 0, 1501}}, 1),
            Result::pass);
  EXPECT_EQ(g.rows(), 1);
  // Third: a cascade into a table neither the baseline nor the before count has.
  sends = g.start(RowGuard::Mode::simple_block, spec(1000), wire::build_query("D"), false);
  EXPECT_EQ(run_update(g, {{"public.a", 0, 1}, {"public.busy", 0, 1501}},
                       {{"public.a", 0, 1},
                        {"public.busy", 0, 1501},
                        {"public.parent", 2, 0},
                        {"public.child", 4000, 0}},
                       2),
            Result::over);
  EXPECT_EQ(g.rows(), 4002);
  EXPECT_EQ(g.breakdown(), "public.child 4000 deleted, public.parent 2 deleted");
}

TEST(RowGuard, TheBaselineEndsWhereTheServerMayReportItsCounters) {
  RowGuard g("g");
  auto establish = [&] {
    g.start(RowGuard::Mode::simple_block, spec(10), wire::build_query("U"), false);
    ASSERT_EQ(run_update(g, {}, {{"public.t", 0, 1}}, 1), Result::pass);
  };
  auto before_is_full = [&](bool ready_pending) {
    auto sends =
        g.start(RowGuard::Mode::simple_block, spec(10), wire::build_query("U"), ready_pending);
    const bool full = runs_full(sends[0]) && !runs_locked(sends[0]);
    EXPECT_TRUE(runs_locked(sends[2]));  // the after count stays restricted
    EXPECT_EQ(run_update(g, {}, {{"public.t", 0, 1}}, 1), Result::pass);
    return full;
  };
  establish();
  EXPECT_FALSE(before_is_full(false));
  g.on_ready('T');  // still in the transaction
  EXPECT_FALSE(before_is_full(false));
  g.on_ready('I');  // idle: the server may have reported and zeroed its counters
  EXPECT_TRUE(before_is_full(false));
  g.on_ready('E');
  EXPECT_TRUE(before_is_full(false));
  g.forget_baseline();  // COMMIT, ROLLBACK TO, PREPARE TRANSACTION ...
  EXPECT_TRUE(before_is_full(false));
  EXPECT_TRUE(before_is_full(true));  // a ReadyForQuery is still on its way
  EXPECT_FALSE(before_is_full(false));
  // pgmoat's own BEGIN ... COMMIT: always a full before count.
  auto sends = g.start(RowGuard::Mode::simple_idle, spec(10), wire::build_query("U"), false);
  EXPECT_TRUE(runs_full(sends[1]) && runs_locked(sends[3]));
}

TEST(RowGuard, CountsOfDifferentTransactionsAreNeverCompared) {
  RowGuard g("g");
  g.start(RowGuard::Mode::extended, spec(1000), wire::build_execute(""), false);
  count(g, RowGuard::kBefore, {{"public.t", 0, 5000}}, kSmallCatalog, "1.000001");
  g.on_message(Sender::guarded, 0, complete("UPDATE 1"));
  count(g, RowGuard::kAfter, {{"public.t", 0, 1}}, kSmallCatalog, "2.000002");
  EXPECT_EQ(g.decide(), Result::count_failed);
  EXPECT_EQ(g.count_error(), "the transaction changed between the row counts");
}

TEST(RowGuard, ABaselineOfAnotherTransactionIsNeverUsed) {
  RowGuard g("g");
  // The baseline, in transaction A: public.log holds 5000 unreported updates.
  g.start(RowGuard::Mode::extended, spec(100), wire::build_execute(""), false);
  ASSERT_EQ(run_update(g, {{"public.log", 0, 5000}}, {{"public.log", 0, 5000}, {"public.o", 0, 1}},
                       1, kLargeCatalog, "1.0"),
            Result::pass);
  // A transaction ended unseen (VACUUM in a pipeline) and the server reported its counters:
  // in transaction B the trigger's 1000 updates of public.log would hide behind the baseline.
  auto sends = g.start(RowGuard::Mode::extended, spec(100), wire::build_execute(""), false);
  ASSERT_TRUE(runs_locked(sends[0]));
  EXPECT_EQ(
      run_update(g, {}, {{"public.t", 0, 1}, {"public.log", 0, 1000}}, 1, kLargeCatalog, "2.0"),
      Result::count_failed);
  // The next statement counts in full again.
  sends = g.start(RowGuard::Mode::extended, spec(100), wire::build_execute(""), false);
  EXPECT_TRUE(runs_full(sends[0]));
  EXPECT_EQ(
      run_update(g, {}, {{"public.t", 0, 1}, {"public.log", 0, 1000}}, 1, kLargeCatalog, "2.0"),
      Result::over);
  EXPECT_EQ(g.rows(), 1001);
}

TEST(RowGuard, CountSqlIsSchemaQualified) {
  // A client's search_path must not be able to replace what the counts call.
  for (std::string_view sql : {RowGuard::count_sql(), RowGuard::locked_count_sql()}) {
    EXPECT_NE(sql.find("pg_catalog.pg_stat_get_xact_tuples_deleted"), std::string::npos);
    EXPECT_NE(sql.find("pg_catalog.pg_stat_get_xact_tuples_updated"), std::string::npos);
    EXPECT_NE(sql.find("pg_catalog.pg_class"), std::string::npos);
    EXPECT_EQ(sql.find(" = "), std::string::npos);
    EXPECT_EQ(sql.find(" >= "), std::string::npos);
    EXPECT_EQ(sql.find(" <> "), std::string::npos);
  }
  EXPECT_NE(RowGuard::count_sql().find("OPERATOR(pg_catalog.<>)"), std::string::npos);
  EXPECT_NE(RowGuard::locked_count_sql().find("pg_catalog.pg_locks"), std::string::npos);
  EXPECT_NE(RowGuard::locked_count_sql().find("pg_catalog.pg_backend_pid()"), std::string::npos);
}

}  // namespace
}  // namespace pgmoat::proxy
