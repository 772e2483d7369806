// Spec files: JSON and YAML map onto the proto with protobuf's JSON mapping
// (snake_case and lowerCamelCase names, case-insensitive enums, unknown
// fields rejected) and load from disk.
#include "anneal/model/spec_text.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/test_dir.h"

namespace anneal {
namespace {

TEST(SpecFileTest, JsonAndYamlGiveTheSameSpec) {
  v1::ScheduleSpec json, yaml;
  ASSERT_TRUE(ParseMessageText(R"({"max_lr": 0.1, "min_lr": 1e-4,
      "warm_restarts": {"period": 10, "period_mult": 2, "shape": "LINEAR"},
      "momentum": {"base": 0.85, "max": 0.95}})",
                               &json)
                  .ok());
  ASSERT_TRUE(ParseMessageText(R"(
max_lr: 0.1
min_lr: 1e-4
warm_restarts:
  period: 10
  period_mult: 2
  shape: linear
momentum: {base: 0.85, max: 0.95}
)",
                               &yaml)
                  .ok());
  EXPECT_EQ(json.SerializeAsString(), yaml.SerializeAsString());
  EXPECT_EQ(yaml.warm_restarts().shape(), v1::WarmRestarts::LINEAR);
  EXPECT_TRUE(yaml.has_min_lr());
}

TEST(SpecFileTest, CamelCaseNamesAndLowercaseEnums) {
  v1::ScheduleSpec spec;
  ASSERT_TRUE(
      ParseMessageText(
          R"({"maxLr": 1, "cyclic": {"stepSizeUp": 5, "mode": "exp_range", "gamma": 0.9}})",
          &spec)
          .ok());
  EXPECT_EQ(spec.cyclic().step_size_up(), 5);
  EXPECT_EQ(spec.cyclic().mode(), v1::Cyclic::EXP_RANGE);
}

TEST(SpecFileTest, RepeatedFieldsAndNestedSequences) {
  v1::ScheduleSpec spec;
  ASSERT_TRUE(ParseMessageText(R"(
max_lr: 0.1
sequence:
  phases:
    - steps: 100
      spec: {linear: {start_factor: 0.1, end_factor: 1.0, total_steps: 100}}
    - restart: true
      spec: {step_decay: {milestones: [10, 20, 20]}}
)",
                               &spec)
                  .ok());
  ASSERT_EQ(spec.sequence().phases_size(), 2);
  EXPECT_EQ(spec.sequence().phases(1).spec().step_decay().milestones_size(), 3);
  EXPECT_TRUE(spec.sequence().phases(1).restart());
}

TEST(SpecFileTest, ErrorsNameTheFieldOrTheLine) {
  v1::ScheduleSpec spec;
  absl::Status s =
      ParseMessageText("{max_lr: 0.1, cosine: {period: ten}}", &spec);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cosine.period"), std::string::npos) << s;
  s = ParseMessageText("max_lr: [1, 2", &spec);
  EXPECT_NE(s.message().find("line"), std::string::npos) << s;
  s = ParseMessageText("- just\n- a list\n", &spec);
  EXPECT_EQ(s.message(),
            "expected a JSON object or YAML mapping at the top level");
  s = ParseMessageText("{max_lr: 0.1, cosine: {period: 1.5}}", &spec);
  EXPECT_FALSE(s.ok()) << "a fractional step count was accepted";
  s = ParseMessageText("{max_lr: 0.1, cosine: {perod: 10}}", &spec);
  EXPECT_EQ(s.message(), "cosine.perod: Cannot find field.");
  s = ParseMessageText(
      "{max_lr: 0.1, warm_restarts: {period: 10, shape: WIGGLY}}", &spec);
  EXPECT_EQ(s.message(),
            "warm_restarts.shape: invalid value \"WIGGLY\" for type "
            "anneal.v1.WarmRestarts.Shape");
}

TEST(SpecFileTest, TwoCurvesInOneFileAreAnError) {
  // A oneof keeps only the last curve set; two curves in one file are a
  // protobuf JSON error rather than a silent choice.
  v1::ScheduleSpec spec;
  const absl::Status s = ParseMessageText(
      "{max_lr: 0.1, cosine: {period: 3}, constant: {}}", &spec);
  EXPECT_FALSE(s.ok()) << "two curves were accepted";
  EXPECT_NE(s.message().find("curve"), std::string::npos) << s;
}

}  // namespace
}  // namespace anneal
