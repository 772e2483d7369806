// Diagnose on synthetic reports: for each finding a positive, a negative and
// an inconclusive case, and no finding ever carries a non-finite number.
#include "anneal/model/diagnosis.h"

#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "anneal/model/testing/created_schedule.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using ::testing::HasSubstr;

// A deterministic noise in [-1, 1].
double Noise(int64_t i) {
  uint64_t x = static_cast<uint64_t>(i) * 6364136223846793005ULL +
               1442695040888963407ULL;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 32;
  return static_cast<double>(x % 20001) / 10000.0 - 1.0;
}

struct Job {
  v1::Schedule schedule;
  std::shared_ptr<const Timeline> timeline;
  DiagnosisReports reports{"", ""};

  explicit Job(v1::Schedule s)
      : schedule(std::move(s)), timeline(CompiledTimeline(schedule)) {}
  // Reports at steps 0, every, 2*every, ... below `end`, each with the
  // metrics `at(step, lr, &report)` sets.
  void Report(int64_t end, int64_t every,
              const std::function<void(int64_t, const StepResult&,
                                       v1::MetricReport*)>& at) {
    for (int64_t step = 0; step < end; step += every) {
      v1::MetricReport r;
      r.set_step(step);
      at(step, timeline->At(step), &r);
      if (!r.metrics().empty()) reports.Add(r);
    }
  }
  Diagnosis Diagnose() const {
    Diagnosis d = anneal::Diagnose(schedule, *timeline, reports);
    ExpectNoNonFinite(d);
    return d;
  }
  static void ExpectNoNonFinite(const Diagnosis& d) {
    for (const v1::Finding& f : d.findings) {
      EXPECT_NE(f.severity(), v1::Finding::SEVERITY_UNSPECIFIED) << f.code();
      for (const auto& e : f.evidence()) {
        if (e.has_value()) {
          EXPECT_TRUE(std::isfinite(e.value())) << f.code() << " " << e.name();
        }
        EXPECT_FALSE(e.text().empty()) << f.code() << " " << e.name();
      }
      if (f.has_suggested_max_lr()) {
        EXPECT_TRUE(std::isfinite(f.suggested_max_lr()));
        EXPECT_GT(f.suggested_max_lr(), 0);
      }
      std::string json;
      ASSERT_TRUE(google::protobuf::util::MessageToJsonString(f, &json).ok());
      EXPECT_THAT(json, ::testing::Not(HasSubstr("\"value\":\"NaN\"")));
      EXPECT_THAT(json, ::testing::Not(HasSubstr("Infinity")));
    }
  }
};

const v1::Finding* FindCode(const Diagnosis& d, const std::string& prefix) {
  for (const v1::Finding& f : d.findings) {
    if (f.code().rfind(prefix, 0) == 0) return &f;
  }
  return nullptr;
}

// For FindCode(job.Diagnose(), ...): the diagnosis outlives the statement.
const v1::Finding* FindCode(Diagnosis&& d, const std::string& prefix) {
  static auto* kept = new std::deque<Diagnosis>;
  kept->push_back(std::move(d));
  return FindCode(kept->back(), prefix);
}

std::string Codes(const Diagnosis& d) {
  std::string out;
  for (const v1::Finding& f : d.findings) out += f.code() + " ";
  return out;
}

double Evidence(const v1::Finding& f, const std::string& name) {
  for (const auto& e : f.evidence()) {
    if (e.name() == name) return e.has_value() ? e.value() : NAN;
  }
  ADD_FAILURE() << f.code() << " has no evidence " << name;
  return NAN;
}

constexpr char kSgdr[] = "{max_lr: 0.1, warm_restarts: {period: 100}}";

// Validation improves at high LR and degrades at low LR; training falls.
void SharpMinima(int64_t step, const StepResult& r, v1::MetricReport* m) {
  const double mid = 0.05;
  const double in_cycle = static_cast<double>(r.step_in_cycle);
  const double val =
      r.lr > mid ? 1.0 - 0.004 * in_cycle : 0.8 + 0.004 * (in_cycle - 50);
  (*m->mutable_metrics())["val_loss"] =
      val - 0.01 * static_cast<double>(r.cycle) + 0.002 * Noise(step);
  (*m->mutable_metrics())["train_loss"] =
      2.0 - 0.002 * static_cast<double>(step) + 0.001 * Noise(step + 7);
}

TEST(DiagnosePhaseTest, ValidationRisingAtLowLrIsSharpMinima) {
  Job run(CreatedSchedule(kSgdr));
  run.Report(500, 5, SharpMinima);
  Diagnosis d = run.Diagnose();
  EXPECT_EQ(d.validation_metric, "val_loss");
  EXPECT_EQ(d.training_metric, "train_loss");
  const v1::Finding* f = FindCode(d, "PHASE_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "PHASE_SHARP_MINIMA") << f->summary();
  EXPECT_EQ(f->severity(), v1::Finding::WARNING);
  EXPECT_LE(Evidence(*f, "t_high"), -2);
  EXPECT_GE(Evidence(*f, "t_low"), 2);
  EXPECT_LE(Evidence(*f, "train_t_low"), -2);
  // Reports end at 495: cycles 0..3 are complete, cycle 4 (to 499) is not.
  EXPECT_EQ(Evidence(*f, "completed_cycles"), 4);
  ASSERT_EQ(f->spans_size(), 4);
  EXPECT_EQ(f->spans(0).start_step(), 99);
  EXPECT_EQ(f->spans(3).start_step(), 399);
  EXPECT_EQ(f->spans(0).label(), "snapshot");
  EXPECT_THAT(f->recommendation(), HasSubstr("weight decay"));
  EXPECT_THAT(f->recommendation(), HasSubstr("SWA"));
  EXPECT_THAT(f->recommendation(), HasSubstr("99, 199, 299, 399"));
}

TEST(DiagnosePhaseTest, ValidationFallingInBothPhasesIsHealthy) {
  Job run(CreatedSchedule(kSgdr));
  run.Report(500, 5, [](int64_t step, const StepResult&, v1::MetricReport* m) {
    (*m->mutable_metrics())["val_loss"] =
        2.0 - 0.002 * static_cast<double>(step) + 0.002 * Noise(step);
    (*m->mutable_metrics())["loss"] = 2.0 - 0.003 * static_cast<double>(step);
  });
  Diagnosis d = run.Diagnose();
  EXPECT_EQ(d.training_metric, "loss");
  const v1::Finding* f = FindCode(d, "PHASE_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "PHASE_HEALTHY") << f->summary();
  EXPECT_EQ(f->severity(), v1::Finding::INFO);
  EXPECT_LT(Evidence(*f, "t_low"), 2);
}

TEST(DiagnosePhaseTest, OneCompletedCycleIsInconclusive) {
  Job run(CreatedSchedule(kSgdr));
  run.Report(150, 5, SharpMinima);
  const v1::Finding* f = FindCode(run.Diagnose(), "PHASE_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "PHASE_INCONCLUSIVE");
  EXPECT_THAT(f->summary(), HasSubstr("1 cycles"));
}

TEST(DiagnosePhaseTest, ValidationRisingEverywhereIsNotThePhasePattern) {
  Job run(CreatedSchedule(kSgdr));
  run.Report(500, 5, [](int64_t step, const StepResult&, v1::MetricReport* m) {
    (*m->mutable_metrics())["val_loss"] =
        1.0 + 0.002 * static_cast<double>(step) + 0.001 * Noise(step);
    (*m->mutable_metrics())["train_loss"] =
        2.0 - 0.002 * static_cast<double>(step);
  });
  const v1::Finding* f = FindCode(run.Diagnose(), "PHASE_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "PHASE_INCONCLUSIVE");
  EXPECT_THAT(f->summary(), HasSubstr("does not improve in the high-LR"));
}

TEST(DiagnosePhaseTest, NamedMetricsAreUsedAndMissingOnesAreInconclusive) {
  Job run(CreatedSchedule(kSgdr));
  run.Report(500, 5,
             [](int64_t step, const StepResult& r, v1::MetricReport* m) {
               SharpMinima(step, r, m);
               auto& metrics = *m->mutable_metrics();
               metrics["my/val"] = metrics["val_loss"];
               metrics.erase("val_loss");
             });
  Diagnosis plain = run.Diagnose();
  EXPECT_EQ(plain.validation_metric, "");
  EXPECT_EQ(FindCode(plain, "PHASE_")->code(), "PHASE_INCONCLUSIVE");
  EXPECT_THAT(FindCode(plain, "PHASE_")->summary(), HasSubstr("val_loss"));

  run.reports = DiagnosisReports("my/val", "train_loss");
  run.Report(500, 5,
             [](int64_t step, const StepResult& r, v1::MetricReport* m) {
               SharpMinima(step, r, m);
               (*m->mutable_metrics())["my/val"] = m->metrics().at("val_loss");
             });
  Diagnosis d = run.Diagnose();
  EXPECT_EQ(d.validation_metric, "my/val");
  EXPECT_EQ(FindCode(d, "PHASE_")->code(), "PHASE_SHARP_MINIMA");
}

TEST(DiagnosePhaseTest, AConstantScheduleHasNoPhases) {
  Job run(CreatedSchedule("{max_lr: 0.1, constant: {}}"));
  run.Report(500, 5, SharpMinima);
  EXPECT_EQ(FindCode(run.Diagnose(), "PHASE_")->code(), "PHASE_INCONCLUSIVE");
}

TEST(DiagnoseTest, NoReportsGiveInconclusiveFindingsOnly) {
  Job run(CreatedSchedule(kSgdr));
  Diagnosis d = run.Diagnose();
  EXPECT_EQ(d.validation_metric, "");
  EXPECT_EQ(d.training_metric, "");
  EXPECT_EQ(FindCode(d, "PHASE_")->code(), "PHASE_INCONCLUSIVE");
  EXPECT_EQ(FindCode(d, "STABILITY_")->code(), "STABILITY_INCONCLUSIVE");
  EXPECT_EQ(FindCode(d, "BATCH_")->code(), "BATCH_SIZE_INCONCLUSIVE");
  EXPECT_EQ(FindCode(d, "DIVERGENCE_")->code(), "DIVERGENCE_INCONCLUSIVE");
  ASSERT_NE(FindCode(d, "ROBBINS_MONRO"), nullptr);
  for (const v1::Finding& f : d.findings) {
    EXPECT_EQ(f.severity(), v1::Finding::INFO) << f.code();
  }
}

// ---- Stability ----

Job WithCurvature(const std::string& spec, double curvature) {
  Job run(CreatedSchedule(spec));
  run.Report(20, 1, [&](int64_t, const StepResult&, v1::MetricReport* m) {
    (*m->mutable_metrics())["max_curvature"] = curvature;
  });
  return run;
}

TEST(DiagnoseStabilityTest, PeakBeyondTheBoundIsAnError) {
  Job run = WithCurvature("{max_lr: 1.0, cosine: {period: 1000}}", 10);
  Diagnosis d = run.Diagnose();
  const v1::Finding* f = FindCode(d, "STABILITY_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "STABILITY_UNSTABLE");
  EXPECT_EQ(f->severity(), v1::Finding::ERROR);
  EXPECT_EQ(&d.findings[0], f) << "errors first: " << Codes(d);
  // One long cosine cycle: 4/L.
  EXPECT_NEAR(f->suggested_max_lr(), 0.4, 0.01);
  EXPECT_NEAR(Evidence(*f, "ratio"), 2.5, 0.1);
  EXPECT_EQ(Evidence(*f, "max_curvature"), 10);
}

// A cosine of peak 1 cut by a plateau policy to `level` from step 5, with
// `curvature` reported at step 20.
Job CutWithCurvature(double level, double curvature) {
  v1::Schedule s = CreatedSchedule("{max_lr: 1.0, cosine: {period: 1000}}");
  v1::Segment* cut = s.add_timeline();
  *cut = s.timeline(0);
  cut->set_kind(v1::Segment::PLATEAU);
  cut->set_from_step(5);
  cut->set_lr_level(level);
  Job run(s);
  run.Report(20, 1, [&](int64_t, const StepResult&, v1::MetricReport* m) {
    (*m->mutable_metrics())["max_curvature"] = curvature;
  });
  return run;
}

// A plateau policy's cut lowers the peak as served: judged at its level.
TEST(DiagnoseStabilityTest, JudgesThePeakAfterAPlateauCut) {
  Job run = CutWithCurvature(0.01, 10);
  Diagnosis d = run.Diagnose();
  const v1::Finding* f = FindCode(d, "STABILITY_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "STABILITY_OK");
  EXPECT_EQ(Evidence(*f, "max_lr"), 0.01);
}

// Between the bounds (3/L), the growth inside a cycle is the served curve's,
// the spec scaled to the level, not the uncut spec's.
TEST(DiagnoseStabilityTest, GrowthAfterAPlateauCutIsTheServedCurves) {
  Job run = CutWithCurvature(0.3, 10);
  const v1::Finding* f = FindCode(run.Diagnose(), "STABILITY_");
  ASSERT_NE(f, nullptr);
  Job served = WithCurvature("{max_lr: 0.3, cosine: {period: 1000}}", 10);
  const v1::Finding* g = FindCode(served.Diagnose(), "STABILITY_");
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(f->code(), g->code());
  EXPECT_GT(Evidence(*g, "max_log_growth"), 0);
  EXPECT_NEAR(Evidence(*f, "max_log_growth"), Evidence(*g, "max_log_growth"),
              1e-9 * Evidence(*g, "max_log_growth"));
  EXPECT_THAT(f->recommendation(),
              testing::HasSubstr(absl::StrFormat(
                  "(e^%.3g at most)", Evidence(*g, "max_log_growth"))));
}

TEST(DiagnoseStabilityTest, PeakWellBelowTheBoundIsFine) {
  Job run = WithCurvature("{max_lr: 0.1, cosine: {period: 1000}}", 1);
  const v1::Finding* f = FindCode(run.Diagnose(), "STABILITY_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "STABILITY_OK");
  EXPECT_NEAR(Evidence(*f, "ratio"), 0.025, 0.001);
  EXPECT_FALSE(f->has_suggested_max_lr()) << "nothing to recommend";
}

TEST(DiagnoseStabilityTest, PeakJustBelowTheBoundWarns) {
  Job run = WithCurvature("{max_lr: 0.38, cosine: {period: 1000}}", 10);
  const v1::Finding* f = FindCode(run.Diagnose(), "STABILITY_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "STABILITY_MARGIN");
  EXPECT_EQ(f->severity(), v1::Finding::WARNING);
  // The suggestion is the LR the recommendation names, below max_lr.
  ASSERT_TRUE(f->has_suggested_max_lr());
  EXPECT_DOUBLE_EQ(f->suggested_max_lr(),
                   0.9 * Evidence(*f, "critical_max_lr"));
  EXPECT_LT(f->suggested_max_lr(), 0.38);
  EXPECT_THAT(f->recommendation(),
              HasSubstr(absl::StrCat(f->suggested_max_lr()).substr(0, 5)));
}

TEST(DiagnoseStabilityTest, NonFiniteCurvatureIsInconclusive) {
  Job run = WithCurvature("{max_lr: 1.0, cosine: {period: 1000}}", NAN);
  EXPECT_EQ(FindCode(run.Diagnose(), "STABILITY_")->code(),
            "STABILITY_INCONCLUSIVE");
}

TEST(DiagnoseStabilityTest, ACycleLongerThanTheHorizonIsInconclusive) {
  Job run = WithCurvature("{max_lr: 1.0, cosine: {period: 2000000}}", 10);
  EXPECT_EQ(FindCode(run.Diagnose(), "STABILITY_")->code(),
            "STABILITY_INCONCLUSIVE");
}

TEST(DiagnoseStabilityTest, TheLatestCurvatureCounts) {
  Job run(CreatedSchedule("{max_lr: 1.0, cosine: {period: 1000}}"));
  run.Report(20, 1, [](int64_t step, const StepResult&, v1::MetricReport* m) {
    (*m->mutable_metrics())["max_curvature"] = step < 10 ? 10 : 0.1;
  });
  EXPECT_EQ(FindCode(run.Diagnose(), "STABILITY_")->code(), "STABILITY_OK");
}

// ---- Robbins-Monro ----

TEST(DiagnoseRobbinsMonroTest, VerdictInWords) {
  Job constant(CreatedSchedule("{max_lr: 0.1, constant: {}}"));
  const v1::Finding* f = FindCode(constant.Diagnose(), "ROBBINS_MONRO");
  ASSERT_NE(f, nullptr);
  EXPECT_THAT(f->summary(), HasSubstr("violates condition 2"));
  EXPECT_EQ(Evidence(*f, "sum_squares_converges"), 0);
  EXPECT_FALSE(f->recommendation().empty());

  Job inverse(
      CreatedSchedule("{max_lr: 0.1, inverse_time_decay: {t0: 10, power: 1}}"));
  f = FindCode(inverse.Diagnose(), "ROBBINS_MONRO");
  ASSERT_NE(f, nullptr);
  EXPECT_THAT(f->summary(), HasSubstr("satisfies both"));
  EXPECT_TRUE(f->recommendation().empty());

  Job decay(CreatedSchedule("{max_lr: 0.1, exponential_decay: {gamma: 0.9}}"));
  EXPECT_THAT(FindCode(decay.Diagnose(), "ROBBINS_MONRO")->summary(),
              HasSubstr("violates condition 1"));
}

// The verdict is for the spec in force at the last report, not at the
// curvature report, and a curvature does not stop it.
TEST(DiagnoseRobbinsMonroTest, TheLastReportsSpecWhateverTheCurvature) {
  v1::Schedule s = CreatedSchedule("{max_lr: 0.1, constant: {}}");
  v1::Segment update = CreatedSchedule(
                           "{max_lr: 0.1, inverse_time_decay: {t0: 10, "
                           "power: 0.75}}")
                           .timeline(0);
  update.set_kind(v1::Segment::UPDATE);
  update.set_from_step(50);
  *s.add_timeline() = update;
  Job run(s);
  v1::MetricReport early;
  early.set_step(5);
  (*early.mutable_metrics())["max_curvature"] = 1;
  (*early.mutable_metrics())["loss"] = 1;
  run.reports.Add(early);
  v1::MetricReport late;
  late.set_step(100);
  (*late.mutable_metrics())["loss"] = 1;
  run.reports.Add(late);
  const v1::Finding* f = FindCode(run.Diagnose(), "ROBBINS_MONRO");
  ASSERT_NE(f, nullptr);
  EXPECT_THAT(f->summary(), HasSubstr("at step 100 satisfies both"));

  Job long_cycle = WithCurvature(
      "{max_lr: 0.4, min_lr: 0.01, warm_restarts: {period: 10000000}}", 1);
  Diagnosis d = long_cycle.Diagnose();
  EXPECT_EQ(FindCode(d, "STABILITY_")->code(), "STABILITY_INCONCLUSIVE");
  EXPECT_THAT(FindCode(d, "ROBBINS_MONRO")->summary(),
              HasSubstr("violates condition 2"));
}

// ---- Batch size ----

Job WithBatch(const std::string& spec, double first, double latest,
              double lr = NAN) {
  Job run(CreatedSchedule(spec));
  run.Report(10, 1, [&](int64_t step, const StepResult&, v1::MetricReport* m) {
    (*m->mutable_metrics())["batch_size"] = step < 5 ? first : latest;
    if (!std::isnan(lr)) (*m->mutable_metrics())["lr"] = lr;
  });
  return run;
}

TEST(DiagnoseBatchTest, NoBatchScalingSaysWhatTheReferenceWouldBe) {
  Job run = WithBatch("{max_lr: 0.1, constant: {}}", 128, 128);
  const v1::Finding* f = FindCode(run.Diagnose(), "BATCH_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "BATCH_SCALING_ABSENT");
  EXPECT_EQ(f->severity(), v1::Finding::INFO);
  EXPECT_EQ(Evidence(*f, "reference_batch_size"), 128);
  EXPECT_THAT(f->recommendation(), HasSubstr("reference_batch_size: 128"));
}

TEST(DiagnoseBatchTest, AChangedBatchSizeWithoutScalingWarns) {
  Job run = WithBatch("{max_lr: 0.1, constant: {}}", 128, 512);
  const v1::Finding* f = FindCode(run.Diagnose(), "BATCH_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "BATCH_SIZE_UNSCALED");
  EXPECT_EQ(f->severity(), v1::Finding::WARNING);
  EXPECT_DOUBLE_EQ(f->suggested_max_lr(), 0.4);
}

constexpr char kScaled[] =
    "{max_lr: 0.1, constant: {}, batch_scaling: {reference_batch_size: 256}}";

TEST(DiagnoseBatchTest, ReportedReferenceLrMeansScalingIsNotInForce) {
  Job run = WithBatch(kScaled, 512, 512, 0.1);
  const v1::Finding* f = FindCode(run.Diagnose(), "BATCH_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "BATCH_SCALING_NOT_APPLIED");
  EXPECT_EQ(f->severity(), v1::Finding::WARNING);
  EXPECT_DOUBLE_EQ(f->suggested_max_lr(), 0.2);
  EXPECT_THAT(f->recommendation(), HasSubstr("batch_size = 512"));
}

TEST(DiagnoseBatchTest, ReportedScaledLrMeansScalingIsInForce) {
  Job run = WithBatch(kScaled, 512, 512, 0.2);
  EXPECT_EQ(FindCode(run.Diagnose(), "BATCH_")->code(),
            "BATCH_SCALING_APPLIED");
}

TEST(DiagnoseBatchTest, AReportedLrOfNeitherKindIsInconclusive) {
  Job run = WithBatch(kScaled, 512, 512, 0.15);
  const v1::Finding* f = FindCode(run.Diagnose(), "BATCH_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "BATCH_SCALING_INCONCLUSIVE");
  EXPECT_EQ(Evidence(*f, "reported_lr"), 0.15);
  EXPECT_FALSE(f->has_suggested_max_lr());
}

// Advice built on a batch size of 0.5 would name a reference_batch_size the
// spec cannot take.
TEST(DiagnoseBatchTest, ABatchSizeThatIsNoWholeNumberIsInconclusive) {
  for (double b : {0.5, 1e300}) {
    Job run = WithBatch("{max_lr: 0.1, constant: {}}", b, b);
    const v1::Finding* f = FindCode(run.Diagnose(), "BATCH_");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->code(), "BATCH_SIZE_INCONCLUSIVE") << b;
    EXPECT_THAT(f->summary(), HasSubstr("is not a whole number")) << b;
    EXPECT_FALSE(f->has_suggested_max_lr());
  }
}

TEST(DiagnoseBatchTest, WithoutLrItIsUnverifiedAndAtTheReferenceFine) {
  Job run = WithBatch(kScaled, 512, 512);
  const v1::Finding* f = FindCode(run.Diagnose(), "BATCH_");
  EXPECT_EQ(f->code(), "BATCH_SCALING_UNVERIFIED");
  EXPECT_DOUBLE_EQ(f->suggested_max_lr(), 0.2);
  Job ref = WithBatch(kScaled, 256, 256);
  EXPECT_EQ(FindCode(ref.Diagnose(), "BATCH_")->code(), "BATCH_SIZE_REFERENCE");
}

// ---- Divergence ----

TEST(DiagnoseDivergenceTest, NonFiniteLossIsAnErrorShownAsText) {
  Job run(CreatedSchedule(kSgdr));
  run.Report(100, 1, [](int64_t step, const StepResult&, v1::MetricReport* m) {
    (*m->mutable_metrics())["loss"] = step < 60 ? 1.0 : NAN;
  });
  Diagnosis d = run.Diagnose();
  const v1::Finding* f = FindCode(d, "DIVERGENCE_NONFINITE");
  ASSERT_NE(f, nullptr) << Codes(d);
  EXPECT_EQ(f->severity(), v1::Finding::ERROR);
  EXPECT_EQ(Evidence(*f, "first_nonfinite_step"), 60);
  EXPECT_EQ(Evidence(*f, "nonfinite_reports"), 40);
  bool found = false;
  for (const auto& e : f->evidence()) {
    if (e.name() == "first_nonfinite_value") {
      found = true;
      EXPECT_FALSE(e.has_value());
      EXPECT_EQ(e.text(), "NaN");
    }
  }
  EXPECT_TRUE(found);
  ASSERT_EQ(f->spans_size(), 1);
  EXPECT_EQ(f->spans(0).start_step(), 60);
  EXPECT_EQ(f->spans(0).end_step(), 100);
  EXPECT_THAT(f->recommendation(), HasSubstr("every_cycle"));
  EXPECT_THAT(f->summary(), Not(HasSubstr("restart")));
}

// A NaN in the first half of a new cycle is tied to its restart.
TEST(DiagnoseDivergenceTest, NonFiniteLossAtARestartNamesIt) {
  Job run(CreatedSchedule(kSgdr));
  run.Report(130, 1, [](int64_t step, const StepResult&, v1::MetricReport* m) {
    (*m->mutable_metrics())["loss"] = step < 103 ? 1.0 : NAN;
  });
  const v1::Finding* f = FindCode(run.Diagnose(), "DIVERGENCE_NONFINITE");
  ASSERT_NE(f, nullptr);
  EXPECT_THAT(
      f->summary(),
      HasSubstr("from step 103, 3 steps after the restart at step 100"));
  EXPECT_EQ(Evidence(*f, "restart_step"), 100);
}

TEST(DiagnoseDivergenceTest, LossJumpingAfterARestartWarns) {
  Job run(CreatedSchedule("{max_lr: 0.1, warm_restarts: {period: 50}}"));
  run.Report(150, 2,
             [](int64_t step, const StepResult& r, v1::MetricReport* m) {
               const double base = r.cycle == 2 ? 3.0 : 1.0;
               (*m->mutable_metrics())["loss"] = base + 0.01 * Noise(step);
             });
  Diagnosis d = run.Diagnose();
  const v1::Finding* f = FindCode(d, "DIVERGENCE_AFTER_RESTART");
  ASSERT_NE(f, nullptr) << Codes(d);
  EXPECT_EQ(Evidence(*f, "worst_restart_step"), 100);
  EXPECT_EQ(Evidence(*f, "restarts_checked"), 2);
  EXPECT_EQ(Evidence(*f, "restarts_flagged"), 1);
  EXPECT_NEAR(Evidence(*f, "relative_rise"), 2.0, 0.05);
  ASSERT_GE(f->spans_size(), 1);
  EXPECT_EQ(f->spans(0).start_step(), 100);
}

TEST(DiagnoseDivergenceTest, ASmallBumpAfterARestartIsFine) {
  Job run(CreatedSchedule("{max_lr: 0.1, warm_restarts: {period: 50}}"));
  run.Report(150, 2,
             [](int64_t step, const StepResult& r, v1::MetricReport* m) {
               (*m->mutable_metrics())["loss"] =
                   1.0 - 0.001 * static_cast<double>(step) +
                   (r.step_in_cycle < 10 ? 0.1 : 0.0) + 0.01 * Noise(step);
             });
  Diagnosis d = run.Diagnose();
  const v1::Finding* f = FindCode(d, "DIVERGENCE_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code(), "DIVERGENCE_NONE") << Codes(d);
  EXPECT_EQ(Evidence(*f, "restarts_checked"), 2);
}

TEST(DiagnoseDivergenceTest, ASustainedRiseWarns) {
  Job run(CreatedSchedule("{max_lr: 0.1, constant: {}}"));
  run.Report(100, 1, [](int64_t step, const StepResult&, v1::MetricReport* m) {
    const double t = static_cast<double>(step);
    (*m->mutable_metrics())["loss"] =
        (step < 50 ? 2.0 - 0.02 * t : 1.0 + 0.1 * (t - 50)) +
        0.01 * Noise(step);
  });
  Diagnosis d = run.Diagnose();
  const v1::Finding* f = FindCode(d, "DIVERGENCE_RISING");
  ASSERT_NE(f, nullptr) << Codes(d);
  EXPECT_GT(Evidence(*f, "relative_rise"), 1);
}

// ---- LR range test ----

v1::Schedule RangeTest(double min_lr, double max_lr, int64_t steps) {
  auto spec = LrRangeTestSpec(min_lr, max_lr, steps);
  EXPECT_TRUE(spec.ok()) << spec.status();
  v1::Schedule s = CreatedSchedule(*spec);
  (*s.mutable_labels())[std::string(kLrRangeTestLabel)] = "true";
  return s;
}

// A loss falling fastest (against log LR) at lr = 0.01, flat near 0.1 and
// blowing up past 0.3.
double RangeLoss(double lr, int64_t step) {
  const double x = std::log(lr / 0.01);
  double loss = 2.3 - 2.0 / (1.0 + std::exp(-1.5 * x));
  if (lr > 0.3) loss *= std::exp(4.0 * std::log(lr / 0.3));
  return loss + 0.01 * Noise(step);
}

TEST(DiagnoseRangeTest, TheSpecSweepsExponentially) {
  Job run(RangeTest(1e-4, 1.0, 101));
  EXPECT_DOUBLE_EQ(run.timeline->At(0).lr, 1e-4);
  EXPECT_NEAR(run.timeline->At(50).lr, 1e-2, 1e-12);
  EXPECT_NEAR(run.timeline->At(100).lr, 1.0, 1e-12);
  EXPECT_LE(run.timeline->At(100).lr, 1.0);
  EXPECT_EQ(run.timeline->At(500).lr, 1.0);
}

TEST(DiagnoseRangeTest, BadSweepsAreRefusedNamingTheField) {
  EXPECT_THAT(LrRangeTestSpec(0, 1, 100).status().message(),
              HasSubstr("min_lr: must be > 0"));
  EXPECT_THAT(LrRangeTestSpec(1, 0.5, 100).status().message(),
              HasSubstr("max_lr: must be in (min_lr, 1e6]"));
  EXPECT_THAT(LrRangeTestSpec(1e-4, NAN, 100).status().message(),
              HasSubstr("got nan"));
  EXPECT_THAT(LrRangeTestSpec(1e-4, 1, 1).status().message(),
              HasSubstr("steps: must be in [2, "));
}

TEST(DiagnoseRangeTest, SuggestsTheSteepestDescentAndFindsDivergence) {
  Job run(RangeTest(1e-4, 10.0, 200));
  run.Report(200, 1,
             [](int64_t step, const StepResult& r, v1::MetricReport* m) {
               (*m->mutable_metrics())["loss"] = RangeLoss(r.lr, step);
             });
  Diagnosis d = run.Diagnose();
  EXPECT_TRUE(d.lr_range_test);
  ASSERT_EQ(d.findings.size(), 1u) << Codes(d);
  const v1::Finding& f = d.findings[0];
  EXPECT_EQ(f.code(), "LR_RANGE_TEST") << f.summary();
  EXPECT_GT(f.suggested_max_lr(), 0.005);
  EXPECT_LT(f.suggested_max_lr(), 0.02);
  EXPECT_EQ(Evidence(f, "diverged"), 1);
  EXPECT_GT(Evidence(f, "divergence_lr"), 0.3);
  EXPECT_LT(Evidence(f, "divergence_lr"), 3.0);
}

TEST(DiagnoseRangeTest, ANonFiniteLossIsTheDivergencePoint) {
  Job run(RangeTest(1e-4, 10.0, 200));
  run.Report(200, 1,
             [&](int64_t step, const StepResult& r, v1::MetricReport* m) {
               (*m->mutable_metrics())["loss"] =
                   r.lr > 0.2 ? INFINITY : RangeLoss(r.lr, step);
             });
  const v1::Finding f = run.Diagnose().findings.at(0);
  EXPECT_EQ(f.code(), "LR_RANGE_TEST");
  EXPECT_EQ(Evidence(f, "diverged"), 1);
  EXPECT_GT(Evidence(f, "divergence_lr"), 0.2);
  EXPECT_LT(Evidence(f, "divergence_lr"), 0.25);
}

TEST(DiagnoseRangeTest, ASweepThatNeverDivergesSaysSo) {
  Job run(RangeTest(1e-4, 0.1, 100));
  run.Report(100, 1,
             [](int64_t step, const StepResult& r, v1::MetricReport* m) {
               (*m->mutable_metrics())["loss"] = RangeLoss(r.lr, step);
             });
  const v1::Finding f = run.Diagnose().findings.at(0);
  EXPECT_EQ(f.code(), "LR_RANGE_TEST");
  EXPECT_EQ(Evidence(f, "diverged"), 0);
  EXPECT_THAT(f.recommendation(), HasSubstr("larger --max-lr"));
}

TEST(DiagnoseRangeTest, TooFewReportsOrNoDescentAreInconclusive) {
  Job few(RangeTest(1e-4, 10.0, 200));
  few.Report(5, 1, [](int64_t step, const StepResult& r, v1::MetricReport* m) {
    (*m->mutable_metrics())["loss"] = RangeLoss(r.lr, step);
  });
  EXPECT_EQ(few.Diagnose().findings.at(0).code(), "LR_RANGE_TEST_INCONCLUSIVE");
  Job rising(RangeTest(1e-4, 10.0, 200));
  rising.Report(200, 1,
                [](int64_t step, const StepResult&, v1::MetricReport* m) {
                  (*m->mutable_metrics())["loss"] =
                      1.0 + 0.01 * static_cast<double>(step);
                });
  EXPECT_EQ(rising.Diagnose().findings.at(0).code(),
            "LR_RANGE_TEST_INCONCLUSIVE");
  Job none(RangeTest(1e-4, 10.0, 200));
  EXPECT_EQ(none.Diagnose().findings.at(0).code(),
            "LR_RANGE_TEST_INCONCLUSIVE");
}

// ---- Inputs and formatting ----

TEST(DiagnoseTest, MetricNamesAreValidated) {
  EXPECT_TRUE(ValidateDiagnoseMetric("validation_metric", "").ok());
  EXPECT_TRUE(ValidateDiagnoseMetric("validation_metric", "val/loss").ok());
  absl::Status s = ValidateDiagnoseMetric("training_metric", "9x");
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(),
            "training_metric: must match ^[A-Za-z_][A-Za-z0-9_./-]{0,63}$, "
            "got \"9x\"");
  EXPECT_FALSE(
      ValidateDiagnoseMetric("training_metric", std::string(65, 'a')).ok());
}

TEST(DiagnoseTest, NumbersAreShortestExactOrNamed) {
  EXPECT_EQ(EvidenceText(0.1), "0.1");
  EXPECT_EQ(EvidenceText(3.25e-5), "3.25e-05");
  EXPECT_EQ(EvidenceText(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(EvidenceText(NAN), "NaN");
  EXPECT_EQ(EvidenceText(INFINITY), "inf");
  EXPECT_EQ(EvidenceText(-INFINITY), "-inf");
  EXPECT_EQ(EvidenceText(128), "128");
}

}  // namespace
}  // namespace anneal
