// Loading `[policy]` and `[[rules]]`: a full example, each error with its file:line:column, and
// the shipped config/pgmoat.toml.
#include <unistd.h>

#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "common/toml_reader.h"
#include "tests/unit/policy/test_support.h"

namespace pgmoat::policy::test {
namespace {

// Unique per process: ctest runs each case in its own process, possibly in parallel.
std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/pgmoat_policy_" + std::to_string(::getpid()) + "_" + name;
}

std::string write_file(const std::string& name, const std::string& text) {
  std::string path = temp_path(name);
  std::ofstream(path) << text;
  return path;
}

Policy load_text(const std::string& text, const std::string& name = "policy.toml") {
  std::string path = write_file(name, text);
  toml::table t = cfg::parse_file(path);
  cfg::Table root(t, path, "");
  return load_policy(root);
}

// The error's text, or "" when loading succeeded.
std::string load_error(const std::string& text) {
  try {
    load_text(text, "bad.toml");
  } catch (const cfg::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(LoadPolicy, FullExample) {
  Policy p = load_text(R"(
[listen]
port = 6432   # read by another owner; load_policy leaves it alone

[policy]
mode = "monitor"
on_parse_error = "allow"
dangerous_functions = ["PG_Terminate_Backend"]
extra_dangerous_functions = ["my_nuke"]

[[rules]]
name = "seed-no-mass-delete"
action = "require_approval"
classes = ["delete", "delete_without_where"]
tables = ["public.*", "users"]
message = "seed scripts may not mass-delete"
max_rows = 100
match = { user = "seed", database = ["shop", "shop_*"], application_name = "seed*", client_addr = ["10.0.0.0/8", "::1"], tls_subject = "CN=*" }

[[rules]]
name = "everything-else-logged"
action = "log"
classes = ["*"]

[[rules]]
name = "laptops"
action = "deny"
classes = "drop"
[rules.match]
client_addr = "192.168.0.0/16"
)");
  EXPECT_EQ(p.mode, Mode::monitor);
  EXPECT_EQ(p.on_parse_error, OnParseError::allow);
  EXPECT_EQ(p.dangerous_functions, (std::vector<std::string>{"pg_terminate_backend", "my_nuke"}));
  ASSERT_EQ(p.rules.size(), 3u);
  const Rule& r = p.rules[0];
  EXPECT_EQ(r.name, "seed-no-mass-delete");
  EXPECT_EQ(r.action, Action::require_approval);
  EXPECT_EQ(r.classes, classes({SC::delete_, SC::delete_without_where}));
  EXPECT_EQ(r.tables, (std::vector<std::string>{"public.*", "users"}));
  EXPECT_EQ(r.message, "seed scripts may not mass-delete");
  EXPECT_EQ(r.max_rows, 100);
  EXPECT_EQ(r.match.users, std::vector<std::string>{"seed"});
  EXPECT_EQ(r.match.databases, (std::vector<std::string>{"shop", "shop_*"}));
  EXPECT_EQ(r.match.application_names, std::vector<std::string>{"seed*"});
  ASSERT_EQ(r.match.client_addrs.size(), 2u);
  EXPECT_EQ(r.match.client_addrs[1].text, "::1");
  EXPECT_EQ(r.match.tls_subjects, std::vector<std::string>{"CN=*"});
  EXPECT_NE(r.source.find("policy.toml:"), std::string::npos) << r.source;
  for (auto i = 0u; i < static_cast<unsigned>(SC::kCount); ++i) {
    EXPECT_TRUE(parser::has(p.rules[1].classes, static_cast<SC>(i)));
  }
  EXPECT_EQ(p.rules[2].classes, classes({SC::drop}));
  ASSERT_EQ(p.rules[2].match.client_addrs.size(), 1u);
  EXPECT_EQ(p.rules[2].match.client_addrs[0].text, "192.168.0.0/16");
}

struct RowLimitLoadCase {
  const char* name;
  const char* action;
  const char* classes;
  std::int64_t max_rows;
};

void PrintTo(const RowLimitLoadCase& c, std::ostream* os) {
  *os << c.name;
}

class LoadRowLimitTest : public ::testing::TestWithParam<RowLimitLoadCase> {};

TEST_P(LoadRowLimitTest, Loads) {
  const RowLimitLoadCase& c = GetParam();
  Policy p =
      load_text(std::string("[[rules]]\nname = \"limit\"\naction = \"") + c.action +
                "\"\nclasses = " + c.classes + "\nmax_rows = " + std::to_string(c.max_rows) + "\n");
  ASSERT_EQ(p.rules.size(), 1u);
  EXPECT_EQ(p.rules[0].max_rows, c.max_rows);
  EXPECT_EQ(action_name(p.rules[0].action), c.action);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LoadRowLimitTest,
    ::testing::Values(RowLimitLoadCase{"require_approval", "require_approval",
                                       "[\"delete\", \"update\", \"merge\"]", 1000},
                      RowLimitLoadCase{"deny", "deny",
                                       "[\"delete_without_where\", \"update_without_where\"]", 5},
                      RowLimitLoadCase{"log", "log", "[\"update\"]", 100000},
                      RowLimitLoadCase{"zero", "require_approval", "[\"merge\"]", 0}),
    CaseName());

TEST(LoadPolicy, NoMaxRowsMeansNoLimit) {
  Policy p = load_text("[[rules]]\nname = \"r\"\naction = \"allow\"\nclasses = [\"delete\"]\n");
  ASSERT_EQ(p.rules.size(), 1u);
  EXPECT_FALSE(p.rules[0].max_rows.has_value());
}

TEST(LoadPolicy, EmptyFileGivesDefaults) {
  Policy p = load_text("");
  EXPECT_EQ(p.mode, Mode::enforce);
  EXPECT_EQ(p.on_parse_error, OnParseError::refuse);
  EXPECT_EQ(p.dangerous_functions, default_dangerous_functions());
  EXPECT_TRUE(p.rules.empty());
}

struct ErrorCase {
  const char* name;
  const char* toml;
  int line;              // expected line of the error position
  const char* contains;  // part of the message
};

void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << c.name;
}

class LoadPolicyErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(LoadPolicyErrorTest, ReportsPosition) {
  const ErrorCase& c = GetParam();
  std::string err = load_error(c.toml);
  ASSERT_FALSE(err.empty()) << c.name << ": loaded without error";
  std::string prefix = temp_path("bad.toml") + ":" + std::to_string(c.line) + ":";
  EXPECT_EQ(err.rfind(prefix, 0), 0u) << c.name << ": " << err;
  EXPECT_TRUE(std::regex_search(err, std::regex("^.+:[0-9]+:[0-9]+: "))) << err;
  EXPECT_NE(err.find(c.contains), std::string::npos) << c.name << ": " << err;
}

#define RULE_HEAD "[[rules]]\nname = \"r1\"\naction = \"deny\"\n"

INSTANTIATE_TEST_SUITE_P(
    Cases, LoadPolicyErrorTest,
    ::testing::Values(
        ErrorCase{"unknown key in rule", RULE_HEAD "classes = [\"drop\"]\nfoo = 1\n", 5,
                  "unknown key 'rules[0].foo'"},
        // toml++ asserted on this in builds without NDEBUG instead of reporting it.
        ErrorCase{"stray table brackets", RULE_HEAD "classes = [\"drop\"]\n[[[\n", 5,
                  "parsing key"},
        ErrorCase{"unknown key in match",
                  RULE_HEAD "classes = [\"drop\"]\nmatch = { user = \"a\", host = \"b\" }\n", 5,
                  "unknown key 'rules[0].match.host'"},
        ErrorCase{"unknown key in [policy]", "[policy]\nmode = \"enforce\"\nstrict = true\n", 3,
                  "unknown key 'policy.strict'"},
        ErrorCase{"wrong type for name", "[[rules]]\nname = 5\n", 2, "must be a string"},
        ErrorCase{"wrong type for classes", RULE_HEAD "classes = 3\n", 4,
                  "must be a string or a list of strings"},
        ErrorCase{"wrong type for max_rows",
                  RULE_HEAD "classes = [\"delete\"]\nmax_rows = \"10\"\n", 5, "must be an integer"},
        ErrorCase{"unknown class", RULE_HEAD "classes = [\"drop\", \"dropp\"]\n", 4,
                  "unknown statement class 'dropp'"},
        ErrorCase{"empty classes", RULE_HEAD "classes = []\n", 4, "must not be empty"},
        ErrorCase{"missing classes", RULE_HEAD "tables = [\"t\"]\n", 1, "needs 'classes'"},
        ErrorCase{"missing name", "[[rules]]\naction = \"deny\"\nclasses = [\"drop\"]\n", 1,
                  "needs a 'name'"},
        ErrorCase{"unknown action",
                  "[[rules]]\nname = \"r1\"\naction = \"block\"\nclasses = [\"drop\"]\n", 3,
                  "unknown action 'block'"},
        ErrorCase{"bad CIDR prefix",
                  RULE_HEAD
                  "classes = [\"drop\"]\n[rules.match]\nclient_addr = [\"10.0.0.0/33\"]\n",
                  6, "'10.0.0.0/33'"},
        ErrorCase{"bad CIDR address",
                  RULE_HEAD "classes = [\"drop\"]\nmatch = { client_addr = \"db.internal\" }\n", 5,
                  "'db.internal'"},
        ErrorCase{"CIDR with host bits",
                  RULE_HEAD "classes = [\"drop\"]\nmatch = { client_addr = \"10.0.0.1/8\" }\n", 5,
                  "'10.0.0.1/8'"},
        ErrorCase{"duplicate rule name",
                  RULE_HEAD "classes = [\"drop\"]\n\n" RULE_HEAD "classes = [\"truncate\"]\n", 7,
                  "duplicate rule name \"r1\""},
        ErrorCase{"bad mode", "[policy]\nmode = \"audit\"\n", 2, "'policy.mode'"},
        ErrorCase{"bad on_parse_error", "[policy]\non_parse_error = \"ignore\"\n", 2,
                  "'policy.on_parse_error'"},
        ErrorCase{"max_rows on a drop rule", RULE_HEAD "classes = [\"drop\"]\nmax_rows = 10\n", 5,
                  "only valid"},
        ErrorCase{"negative max_rows", RULE_HEAD "classes = [\"delete\"]\nmax_rows = -1\n", 5,
                  "must be between"},
        ErrorCase{"max_rows on an allow rule",
                  "[[rules]]\nname = \"r1\"\naction = \"allow\"\nclasses = [\"delete\"]\n"
                  "max_rows = 10\n",
                  5,
                  "'rules[0].max_rows' needs action require_approval, deny or log: the action "
                  "applies to statements over the limit"},
        ErrorCase{"max_rows on an allow rule, not the first rule",
                  RULE_HEAD "classes = [\"drop\"]\n\n[[rules]]\nname = \"r2\"\n"
                            "classes = [\"update\", \"merge\"]\naction = \"allow\"\n"
                            "max_rows = 0\n",
                  10, "'rules[1].max_rows' needs action require_approval, deny or log"},
        ErrorCase{"max_rows on a rule with a non-row class too",
                  RULE_HEAD "classes = [\"delete\", \"insert\"]\nmax_rows = 10\n", 5,
                  "only valid for rules whose classes are all among delete, update, merge"},
        ErrorCase{"max_rows on every class", RULE_HEAD "classes = [\"*\"]\nmax_rows = 10\n", 5,
                  "only valid"},
        ErrorCase{"max_fraction not yet supported",
                  RULE_HEAD "classes = [\"delete\"]\nmax_fraction = 0.5\n", 5, "max_fraction"},
        ErrorCase{"rules not an array of tables", "rules = 3\n", 1, "array of tables"},
        ErrorCase{"policy not a table", "policy = \"strict\"\n", 1, "must be a table"}),
    CaseName());

#undef RULE_HEAD

// ---- The shipped config ------------------------------------------------------------------

Policy load_shipped() {
  std::string path = std::string(PGMOAT_SOURCE_DIR) + "/config/pgmoat.toml";
  toml::table t = cfg::parse_file(path);
  cfg::Table root(t, path, "");
  return load_policy(root);
}

TEST(ShippedConfig, LoadsInEnforceMode) {
  Policy p = load_shipped();
  EXPECT_EQ(p.mode, Mode::enforce);
  EXPECT_EQ(p.on_parse_error, OnParseError::refuse);
  EXPECT_FALSE(p.rules.empty());
}

class ShippedConfigClassTest : public ::testing::TestWithParam<StatementClass> {};

TEST_P(ShippedConfigClassTest, RequiresApprovalForEveryClient) {
  Policy p = load_shipped();
  parser::Statement st =
      stmt().cls({GetParam()}).table("public.users").command("X").target("public.users");
  // Clients that differ in every attribute.
  SessionContext a = session("app", "prod");
  SessionContext b = session("postgres", "postgres");
  b.client_addr = "::1";
  b.application_name = "";
  b.tls_subject = "CN=admin";
  SessionContext c = session("seed", "shop");
  c.client_addr = "";
  for (const SessionContext* ctx : {&a, &b, &c}) {
    Decision d = evaluate(one(st), *ctx, p);
    EXPECT_FALSE(d.allowed) << parser::class_name(GetParam()) << " for " << ctx->user;
    ASSERT_EQ(d.statements.size(), 1u);
    EXPECT_EQ(d.statements[0].action, Action::require_approval) << parser::class_name(GetParam());
    EXPECT_EQ(d.message.rfind("pgmoat: ", 0), 0u) << d.message;
  }
}

INSTANTIATE_TEST_SUITE_P(Listed, ShippedConfigClassTest,
                         ::testing::Values(SC::drop, SC::truncate, SC::delete_without_where,
                                           SC::update_without_where, SC::alter_drop_column,
                                           SC::alter_column_type, SC::do_block, SC::copy_program,
                                           SC::alter_system, SC::session_replication_role,
                                           SC::dangerous_function),
                         [](const auto& p) { return std::string(parser::class_name(p.param)); });

TEST(ShippedConfig, DangerousFunctionCallRequiresApproval) {
  Policy p = load_shipped();
  Decision d = evaluate(one(stmt().cls({SC::select}).fn("pg_terminate_backend")), session(), p);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.statements[0].matched_class, SC::dangerous_function);
}

TEST(ShippedConfig, DeleteUpdateMergeRunUnderARowLimit) {
  Policy p = load_shipped();
  for (StatementClass c : {SC::delete_, SC::update, SC::merge}) {
    parser::Statement st = stmt().cls({c}).table("public.users");
    Decision d = evaluate(one(st), session(), p);
    EXPECT_TRUE(d.allowed) << parser::class_name(c);
    ASSERT_TRUE(d.statements[0].row_limit.has_value()) << parser::class_name(c);
    EXPECT_EQ(d.statements[0].row_limit->limited_class, c);
    EXPECT_TRUE(d.statements[0].row_limit->enforce);
  }
}

TEST(ShippedConfig, EverythingElseIsAllowed) {
  Policy p = load_shipped();
  for (StatementClass c :
       {SC::select, SC::insert, SC::update, SC::delete_, SC::merge, SC::ddl, SC::copy_from,
        SC::copy_to, SC::role_admin, SC::transaction, SC::set, SC::other}) {
    parser::Statement st = stmt().cls({c}).table("public.users");
    Decision d = evaluate(one(st), session(), p);
    EXPECT_TRUE(d.allowed) << parser::class_name(c);
    EXPECT_FALSE(d.would_refuse) << parser::class_name(c);
  }
}

}  // namespace
}  // namespace pgmoat::policy::test
