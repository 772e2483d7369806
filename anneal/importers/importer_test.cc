// The importers' translations and refusals. Whether the translations serve
// the libraries' LRs is tested step by step against the libraries' own
// formulas in tests/python/test_importers.py.
#include "anneal/importers/importer.h"

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using ::testing::HasSubstr;

v1::ScheduleSpec Spec(const std::string& text) {
  v1::ScheduleSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &spec))
      << text;
  return spec;
}

void ExpectImport(const std::string& from, const std::string& config,
                  const std::string& expected) {
  absl::StatusOr<ImportResult> r = ImportSchedule(from, config);
  ASSERT_TRUE(r.ok()) << r.status();
  v1::ScheduleSpec want = Spec(expected);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(r->spec, want))
      << "got " << r->spec.ShortDebugString() << "\nwant "
      << want.ShortDebugString();
}

std::string ImportError(const std::string& from, const std::string& config) {
  absl::StatusOr<ImportResult> r = ImportSchedule(from, config);
  EXPECT_FALSE(r.ok()) << config;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

TEST(ImporterTest, TorchSchedulers) {
  ExpectImport("torch",
               R"({"type": "StepLR", "lr": 0.1, "params": {"step_size": 30}})",
               "max_lr: 0.1 step_decay { step_size: 30 gamma: 0.1 }");
  ExpectImport("torch",
               "type: CosineAnnealingWarmRestarts\nlr: 0.5\n"
               "params: {T_0: 10, T_mult: 2, eta_min: 0.001}\n",
               "max_lr: 0.5 min_lr: 0.001 warm_restarts { period: 10 "
               "period_mult: 2 }");
  ExpectImport("torch",
               R"({"type": "OneCycleLR", "params": {"max_lr": 0.01,
                   "epochs": 3, "steps_per_epoch": 100,
                   "cycle_momentum": false}})",
               "max_lr: 0.01 one_cycle { total_steps: 300 pct_start: 0.3 "
               "anneal: COSINE div_factor: 25 final_div_factor: 10000 }");
  ExpectImport("torch",
               R"({"type": "MultiStepLR", "lr": 1,
                   "params": {"milestones": [30, 10, 30], "gamma": 0.5}})",
               "max_lr: 1 step_decay { milestones: [10, 30, 30] gamma: 0.5 }");
}

TEST(ImporterTest, TorchSequentialLrBecomesPhases) {
  ExpectImport(
      "torch",
      R"({"type": "SequentialLR", "lr": 0.1, "params": {"milestones": [5],
          "schedulers": [
            {"type": "LinearLR", "params": {"start_factor": 0.1,
                                            "total_iters": 5}},
            {"type": "CosineAnnealingLR", "params": {"T_max": 95}}]}})",
      "max_lr: 0.1 sequence { phases { steps: 5 spec { max_lr: 0.1 linear { "
      "start_factor: 0.1 end_factor: 1 total_steps: 5 } } } phases { spec { "
      "max_lr: 0.1 min_lr: 0 cosine { period: 95 } } } }");
}

TEST(ImporterTest, HfTrainerArguments) {
  ExpectImport("hf",
               R"({"lr_scheduler_type": "cosine", "learning_rate": 3e-4,
                   "num_training_steps": 1000, "warmup_ratio": 0.05})",
               "max_lr: 3e-4 warmup { steps: 50 } cosine { period: 950 }");
  ExpectImport("hf", R"({"num_training_steps": 100})",
               "max_lr: 5e-5 polynomial_decay { total_steps: 100 }");
}

TEST(ImporterTest, DeepspeedRunsOneStepBehind) {
  // A whole ds_config: WarmupLR's peak defaults to the optimizer's lr.
  ExpectImport(
      "deepspeed",
      R"({"train_batch_size": 32,
          "optimizer": {"type": "Adam", "params": {"lr": 0.002}},
          "scheduler": {"type": "WarmupLR",
                        "params": {"warmup_num_steps": 100}}})",
      "max_lr: 0.002 sequence { phases { steps: 1 spec { warmup { steps: 1 "
      "start_lr: 0 } constant {} } } phases { spec { warmup { steps: 100 "
      "start_lr: 0 shape: LOG } constant {} } } }");
}

TEST(ImporterTest, KerasSerializedSchedule) {
  ExpectImport("keras",
               R"({"module": "keras.optimizers.schedules",
                   "class_name": "CosineDecayRestarts",
                   "config": {"initial_learning_rate": 0.1,
                              "first_decay_steps": 100, "alpha": 0.01,
                              "name": "CosineDecayRestarts"},
                   "registered_name": null})",
               "max_lr: 0.1 min_lr: 0.001 warm_restarts { period: 100 "
               "period_mult: 2 peak_decay: 1 decay_law: AMPLITUDE "
               "cycle_lengths: REAL }");
}

TEST(ImporterTest, RefusesWhatCannotBeReproducedNamingTheOption) {
  EXPECT_THAT(ImportError("torch", R"({"type": "CyclicLR", "params": {
                  "base_lr": 0.01, "max_lr": 0.1, "scale_fn": "f"}})"),
              HasSubstr("params.scale_fn: cannot be reproduced by anneal: a "
                        "Python function"));
  EXPECT_THAT(ImportError("torch", R"({"type": "LambdaLR", "lr": 0.1})"),
              HasSubstr("type: cannot be reproduced by anneal: LambdaLR"));
  EXPECT_THAT(ImportError("deepspeed", R"({"type": "WarmupCosineLR",
                  "params": {"total_num_steps": 10}})"),
              HasSubstr("type: cannot be reproduced by anneal: "
                        "WarmupCosineLR"));
  EXPECT_THAT(ImportError("keras", R"({"class_name": "CosineDecayRestarts",
                  "config": {"initial_learning_rate": 0.1,
                             "first_decay_steps": 10, "m_mul": 1.5}})"),
              HasSubstr("config.m_mul: cannot be reproduced"));
  EXPECT_THAT(ImportError("deepspeed", R"({"type": "OneCycle"})"),
              HasSubstr("not torch's OneCycleLR"));
}

TEST(ImporterTest, UnknownOptionsAndBadValuesAreNamed) {
  EXPECT_THAT(ImportError("torch", R"({"type": "StepLR", "lr": 0.1,
                  "params": {"step_size": 3, "gama": 0.5}})"),
              HasSubstr("params.gama: is not an option of StepLR"));
  EXPECT_THAT(ImportError("torch", R"({"type": "StepLR", "lr": 0.1,
                  "params": {"step_size": "30"}})"),
              HasSubstr("params.step_size: must be an integer, got \"30\""));
  EXPECT_THAT(ImportError("torch", R"({"type": "StepLR", "lr": 0.1,
                  "params": {"step_size": 2.5}})"),
              HasSubstr("params.step_size: must be an integer, got \"2.5\""));
  EXPECT_THAT(ImportError("torch", R"({"type": "StepLR", "lr": 0.1,
                  "params": {"step_size": 0}})"),
              HasSubstr("params.step_size: must be >= 1, got 0"));
  EXPECT_THAT(ImportError("torch", R"({"type": "CosineAnnealingLR",
                  "lr": 0.1, "params": {"T_max": 0}})"),
              HasSubstr("spec anneal refuses: cosine.period: must be >= 1, "
                        "got 0"));
  EXPECT_THAT(ImportError("hf", R"({"lr_scheduler_type": "cosine"})"),
              HasSubstr("num_training_steps: is required for cosine"));
  EXPECT_THAT(ImportError("timm", R"({"type": "Cosine", "lr": 1})"),
              HasSubstr("type: must be a timm scheduler anneal imports"));
  EXPECT_THAT(ImportError("pytorch", "{}"),
              HasSubstr("--from: must be one of torch, timm"));
  EXPECT_THAT(ImportError("torch", "[1, 2]"),
              HasSubstr("must be a mapping (a JSON object), got a list"));
  EXPECT_THAT(ImportError("torch", "{\"type\": "),
              HasSubstr("does not parse as JSON or YAML"));
}

}  // namespace
}  // namespace anneal
