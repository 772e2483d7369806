// StatusPage over a real registry and the memory store: rows and links,
// pagination, a bad filter (400, escaped), an unknown schedule (404), the
// bounded plot of a schedule served far out (sampled, not evaluated step by
// step), the Content-Security-Policy, and the Diagnose findings.
#include "anneal/server/telemetry/exporter/status_page.h"

#include <cmath>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "anneal/server/registry/registry_test_util.h"
#include "anneal/server/store/memory/memory_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using testing::HasSubstr;
using testing::Not;

StatusPageOptions Options() {
  StatusPageOptions options;
  options.version = "0.1.0";
  options.store = "memory:";
  return options;
}

class StatusPageTest : public testing::Test {
 protected:
  StatusPageTest()
      : store_(NewMemoryStore()),
        registry_(store_.get()),
        page_(&*registry_, store_.get(), Options()) {
    EXPECT_TRUE(registry_->Load().ok());
  }

  void Create(const std::string& id) {
    v1::CreateScheduleRequest r;
    r.set_schedule_id(id);
    *r.mutable_schedule()->mutable_spec() =
        SpecFromText("{max_lr: 0.1, warm_restarts: {period: 100}}");
    (*r.mutable_schedule()->mutable_labels())["team"] = "<i>x</i>";
    ASSERT_TRUE((Wait<v1::Schedule>(*registry_, &Registry::Create, r)).ok());
  }

  std::unique_ptr<Store> store_;
  TestRegistry registry_;
  StatusPage page_;
};

TEST_F(StatusPageTest, ListsSchedulesWithLinksAndPages) {
  for (const char* id : {"a", "b", "c"}) Create(id);
  HttpResponse r = page_.Index({"/", {{"page_size", "2"}}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(r.body, HasSubstr("<a href=\"/schedules/a\">a</a>"));
  EXPECT_THAT(r.body, HasSubstr("<a href=\"/schedules/b\">b</a>"));
  EXPECT_THAT(r.body, Not(HasSubstr("/schedules/c\"")));
  EXPECT_THAT(r.body, HasSubstr("next page"));
  EXPECT_THAT(r.body, HasSubstr("team=&lt;i&gt;x&lt;/i&gt;"));
  EXPECT_THAT(r.body, Not(HasSubstr("<i>")));
  EXPECT_THAT(r.body, HasSubstr("3 schedules"));
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Content-Security-Policy");
  EXPECT_THAT(r.headers[0].second, HasSubstr("default-src 'none'"));
}

int Rows(const HttpResponse& r) {
  int n = 0;
  for (size_t at = 0;
       (at = r.body.find("<tr><td><a href=", at)) != std::string::npos; ++at) {
    ++n;
  }
  return n;
}

TEST_F(StatusPageTest, PageSizeIsTheDefaultUnlessPositiveAndAtMost100) {
  for (int i = 0; i < 105; ++i) Create(absl::StrCat("s", 1000 + i));
  for (const char* size : {"0", "-3", "", "abc", "99999999999"}) {
    EXPECT_EQ(Rows(page_.Index({"/", {{"page_size", size}}})), 20) << size;
  }
  EXPECT_EQ(Rows(page_.Index({"/", {}})), 20);
  EXPECT_EQ(Rows(page_.Index({"/", {{"page_size", "7"}}})), 7);
  EXPECT_EQ(Rows(page_.Index({"/", {{"page_size", "500"}}})), 100);
}

TEST_F(StatusPageTest, TheListCheckRunsBeforeTheRegistry) {
  StatusPageOptions options = Options();
  options.check_list = [](const v1::ListSchedulesRequest& r) {
    return r.filter().size() > 8
               ? absl::InvalidArgumentError("filter: must be at most 8 bytes")
               : absl::OkStatus();
  };
  StatusPage page(&*registry_, store_.get(), options);
  Create("a");
  HttpResponse r = page.Index({"/", {{"filter", "labels.team = \"x\""}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("filter: must be at most 8 bytes"));
  EXPECT_EQ(page.Index({"/", {}}).status, 200);
}

TEST_F(StatusPageTest, ABadFilterIsA400ThatSaysWhy) {
  HttpResponse r = page_.Index({"/", {{"filter", "<oops>"}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("filter"));
  EXPECT_THAT(r.body, Not(HasSubstr("<oops>")));
  EXPECT_THAT(r.body, HasSubstr("&lt;oops&gt;"));
}

TEST_F(StatusPageTest, AnUnknownScheduleIsA404) {
  EXPECT_EQ(page_.Schedule({"/schedules/none", {}}).status, 404);
}

TEST_F(StatusPageTest, APlotFarOutIsSampledNotEvaluatedStepByStep) {
  Create("far");
  v1::EvaluateRequest e;
  e.set_name("schedules/far");
  e.set_step(int64_t{1} << 40);
  ASSERT_TRUE(EvaluateNow(*registry_, e).ok());
  HttpResponse r = page_.Schedule({"/schedules/far", {}});
  EXPECT_EQ(r.status, 200);
  // StatusPageOptions::max_plot_steps points over 0 .. 1.25 * 2^40.
  EXPECT_THAT(r.body, HasSubstr("20000 steps"));
  EXPECT_THAT(r.body, HasSubstr("max step served 1099511627776"));
  EXPECT_THAT(r.body, HasSubstr("<h2>Timeline</h2>"));
}

TEST_F(StatusPageTest, ASchedulePageShowsSegmentsReplacedBeforeServed) {
  Create("run");
  for (const char* who : {"<alice>", "bob"}) {
    v1::UpdateScheduleRequest u;
    u.mutable_schedule()->set_name("schedules/run");
    *u.mutable_schedule()->mutable_spec() =
        SpecFromText("{max_lr: 0.2, constant: {}}");
    u.mutable_update_mask()->add_paths("spec");
    u.set_effective_step(500);
    u.set_actor(who);
    u.set_reason(absl::StrCat("try ", who));
    ASSERT_TRUE((Wait<v1::Schedule>(*registry_, &Registry::Update, u)).ok());
  }
  HttpResponse r = page_.Schedule({"/schedules/run", {}});
  EXPECT_EQ(r.status, 200);
  // bob's change at 500 replaced alice's, which no step ran.
  EXPECT_THAT(r.body, HasSubstr("Replaced before they were served"));
  EXPECT_THAT(r.body, HasSubstr("<td>500</td><td>update</td><td>2</td><td>3"
                                "</td><td>&lt;alice&gt;</td>"));
  EXPECT_THAT(r.body, Not(HasSubstr("<alice>")));
}

TEST_F(StatusPageTest, ASchedulePageShowsItsDiagnosis) {
  Create("run");
  HttpResponse quiet = page_.Schedule({"/schedules/run", {}});
  EXPECT_THAT(quiet.body, HasSubstr("<h2>Diagnosis</h2>"));
  EXPECT_THAT(quiet.body, HasSubstr("PHASE_INCONCLUSIVE"));
  for (int64_t step = 0; step < 3; ++step) {
    v1::ReportMetricsRequest r;
    r.set_name("schedules/run");
    r.set_step(step);
    (*r.mutable_metrics())["loss"] = step < 2 ? 1.0 : std::nan("");
    ASSERT_TRUE(
        (Wait<v1::MetricReport>(*registry_, &Registry::ReportMetrics, r)).ok());
  }
  HttpResponse r = page_.Schedule({"/schedules/run", {}});
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("3 reports"));
  EXPECT_THAT(r.body, HasSubstr("DIVERGENCE_NONFINITE"));
  EXPECT_THAT(r.body, HasSubstr("first_nonfinite_value=NaN"));
  EXPECT_THAT(r.body, HasSubstr("class=\"bad\">ERROR"));
}

}  // namespace
}  // namespace anneal
