// The tokens file, authentication, roles and label scopes (authz.h).
#include "anneal/server/authz.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

std::string Line(const std::string& name, const std::string& role,
                 const std::string& token, const std::string& selector = "") {
  return absl::StrCat(name, " ", role, " ", HexOf(HashToken(token)), " ",
                      selector, "\n");
}

TEST(HashTokenTest, IsSha256Hex) {
  // printf %s test | sha256sum
  EXPECT_EQ(HexOf(HashToken("test")),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
}

TEST(ParseTokensTest, ReadsEntriesAndComments) {
  auto parsed = ParseTokens("# a comment\n\n" + Line("ops", "operator", "a") +
                            Line("ci", "trainer", "b", "team=vision") +
                            "viewer reader sha256:" + HexOf(HashToken("c")) +
                            "  # trailing\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ((*parsed)[1].name, "ci");
  EXPECT_EQ((*parsed)[1].role, Role::kTrainer);
  EXPECT_EQ((*parsed)[1].label_key, "team");
  EXPECT_EQ((*parsed)[1].label_value, "vision");
  EXPECT_EQ((*parsed)[2].role, Role::kReader);
}

TEST(ParseTokensTest, RefusesBadLinesNamingTheLine) {
  const std::string hash = HexOf(HashToken("x"));
  for (const std::string& bad : std::vector<std::string>{
           "ops operator\n",
           "ops admin " + hash + "\n",
           "ops operator 1234\n",
           "ops operator " + std::string(64, 'g') + "\n",
           "o/ps operator " + hash + "\n",
           "ops operator " + hash + " team\n",
           "ops operator " + hash + " team=a\"b\n",
           Line("a", "reader", "x") + Line("a", "reader", "y"),
           Line("a", "reader", "x") + Line("b", "reader", "x"),
       }) {
    auto parsed = ParseTokens(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_NE(parsed.status().message().find("tokens file line "),
              std::string::npos);
    // The line itself (which may hold a secret) is never quoted.
    EXPECT_EQ(parsed.status().message().find(hash), std::string::npos);
  }
}

TEST(AuthorizerTest, OpenWithoutTokens) {
  Authorizer open;
  auto p = open.Authenticate(false, "");
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->authenticated());
  EXPECT_FALSE(open.enabled());
}

TEST(AuthorizerTest, AuthenticatesBearerTokens) {
  Authorizer a;
  ASSERT_TRUE(a.LoadText(Line("ops", "operator", "s3cret") +
                         Line("ci", "trainer", "other", "team=nlp"))
                  .ok());
  auto p = a.Authenticate(true, "Bearer s3cret");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->name, "ops");
  EXPECT_EQ(p->role, Role::kOperator);
  p = a.Authenticate(true, "bearer   other ");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->name, "ci");
  EXPECT_TRUE(p->scoped());

  EXPECT_EQ(a.Authenticate(false, "").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(a.Authenticate(true, "").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(a.Authenticate(true, "s3cret").status().code(),
            absl::StatusCode::kUnauthenticated);
  auto wrong = a.Authenticate(true, "Bearer s3cre");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(wrong.status().message().find("s3cre"), std::string::npos);
}

TEST(AuthorizerTest, AFailedReloadKeepsThePreviousTokens) {
  Authorizer a;
  ASSERT_TRUE(a.LoadText(Line("ops", "operator", "s3cret")).ok());
  EXPECT_FALSE(a.LoadText("broken line\n").ok());
  EXPECT_TRUE(a.Authenticate(true, "Bearer s3cret").ok());
  ASSERT_TRUE(a.LoadText(Line("new", "reader", "fresh")).ok());
  EXPECT_EQ(a.Authenticate(true, "Bearer s3cret").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(a.Authenticate(true, "Bearer fresh").ok());
  EXPECT_EQ(a.LoadFile("/nonexistent/tokens").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(AuthorizerTest, StreamsRecheckTheirTokenAfterAReload) {
  Authorizer a;
  ASSERT_TRUE(a.LoadText(Line("ops", "operator", "s3cret") +
                         Line("ci", "trainer", "other", "team=nlp") +
                         Line("viewer", "reader", "look"))
                  .ok());
  const uint64_t first = a.generation();
  auto ops = a.Authenticate(true, "Bearer s3cret");
  auto ci = a.Authenticate(true, "Bearer other");
  auto viewer = a.Authenticate(true, "Bearer look");
  ASSERT_TRUE(ops.ok() && ci.ok() && viewer.ok());
  EXPECT_TRUE(a.StillValid(*ops).ok());
  // A failed reload changes nothing.
  EXPECT_FALSE(a.LoadText("broken line\n").ok());
  EXPECT_EQ(a.generation(), first);
  // ops stays as it was; ci's scope and viewer's role change; a removed
  // token and a renamed one are no longer valid.
  ASSERT_TRUE(a.LoadText(Line("ops", "operator", "s3cret") +
                         Line("ci", "trainer", "other", "team=vision") +
                         Line("viewer", "operator", "look"))
                  .ok());
  EXPECT_NE(a.generation(), first);
  EXPECT_TRUE(a.StillValid(*ops).ok());
  EXPECT_EQ(a.StillValid(*ci).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(a.StillValid(*viewer).code(), absl::StatusCode::kUnauthenticated);
  ASSERT_TRUE(a.LoadText(Line("ops2", "operator", "s3cret")).ok());
  EXPECT_EQ(a.StillValid(*ops).code(), absl::StatusCode::kUnauthenticated);
  ASSERT_TRUE(a.LoadText(Line("ci", "trainer", "new")).ok());
  EXPECT_EQ(a.StillValid(*ops).code(), absl::StatusCode::kUnauthenticated);
}

TEST(AuthorizerTest, RolesNest) {
  Principal reader{"r", Role::kReader, "", ""};
  Principal trainer{"t", Role::kTrainer, "", ""};
  Principal op{"o", Role::kOperator, "", ""};
  for (const char* m :
       {"GetSchedule", "ListSchedules", "Evaluate", "EvaluateRange", "Simulate",
        "WatchSchedules", "ListMetricReports", "Diagnose"}) {
    EXPECT_TRUE(Authorizer::Permit(reader, m).ok()) << m;
  }
  for (const char* m : {"Advance", "ReportMetrics"}) {
    auto s = Authorizer::Permit(reader, m);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << m;
    EXPECT_NE(s.message().find("needs the trainer role"), std::string::npos);
    EXPECT_TRUE(Authorizer::Permit(trainer, m).ok()) << m;
  }
  for (const char* m : {"CreateSchedule", "UpdateSchedule", "RestartSchedule",
                        "DeleteSchedule", "SomethingNew"}) {
    auto s = Authorizer::Permit(trainer, m);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << m;
    EXPECT_NE(s.message().find("needs the operator role"), std::string::npos);
    EXPECT_TRUE(Authorizer::Permit(op, m).ok()) << m;
  }
}

TEST(ScopeTest, FiltersAndLabels) {
  Principal p{"ci", Role::kOperator, "team", "vision"};
  EXPECT_EQ(ScopedFilter(p, ""), "labels.team = \"vision\"");
  EXPECT_EQ(ScopedFilter(p, "labels.env:*"),
            "labels.env:* AND labels.team = \"vision\"");
  EXPECT_EQ(ScopedFilter(Principal{}, "labels.env:*"), "labels.env:*");
  google::protobuf::Map<std::string, std::string> labels;
  EXPECT_FALSE(InScope(p, labels));
  EXPECT_EQ(CheckLabelsInScope(p, "schedule.labels", labels).code(),
            absl::StatusCode::kPermissionDenied);
  labels["team"] = "vision";
  EXPECT_TRUE(InScope(p, labels));
  EXPECT_TRUE(InScope(Principal{}, {}));
}

TEST(LoopbackTest, KnowsLoopbackAddresses) {
  for (const char* a :
       {"127.0.0.1:50051", "127.1.2.3:0", "localhost:1", "[::1]:50051",
        "unix:/tmp/a.sock", "ipv4:127.0.0.1:5"}) {
    EXPECT_TRUE(IsLoopbackListen(a)) << a;
  }
  for (const char* a : {"0.0.0.0:50051", "[::]:50051", "10.0.0.1:1",
                        "example.com:1", "127.0.0.1.evil.com:1", ":50051"}) {
    EXPECT_FALSE(IsLoopbackListen(a)) << a;
  }
}

}  // namespace
}  // namespace anneal
