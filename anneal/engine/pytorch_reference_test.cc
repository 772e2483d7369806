// The engine against PyTorch itself: tests/data/pytorch_reference.json holds
// the LR (and momentum) sequences of real torch.optim.lr_scheduler objects
// (PyTorch 1.13), written by scripts/gen_pytorch_reference.py, together with
// the equivalent anneal spec of each case. Every case is one test, named after
// it, that compiles the spec and compares Schedule::At(t) at every recorded
// step with:
//   * lr_closed: PyTorch's _get_closed_form_lr(), where the class has one.
//     This is the reference anneal's formulas copy operation for operation,
//     so it must agree bit for bit (a reordered product once slipped through
//     a 1e-12 tolerance here and was caught only by the Python client's
//     bit-for-bit test).
//   * lr_step: param_groups[0]['lr'], what a training loop actually sees.
//     For "exact_closed_form" classes (CosineAnnealingWarmRestarts, CyclicLR,
//     OneCycleLR) step() itself evaluates a closed form: 1e-12. For
//     "recursive" classes (StepLR, MultiStepLR, ExponentialLR, PolynomialLR,
//     LinearLR, CosineAnnealingLR, SequentialLR) step() multiplies the
//     previous LR by a ratio and drifts by a few ulps per step: 1e-9.
//   * momentum: param_groups[0]['momentum'] or Adam's betas[0]: 1e-12.
//
// Tolerance rule: |engine - torch| <= tol * max(|torch|, floor).
//   * lr_closed: floor = the smallest normal double, i.e. a purely relative
//     error at every magnitude. The closed form is the very expression anneal
//     evaluates, so even ExponentialLR's tail at 1e-40 * max_lr must be
//     equal, and an exact zero exactly zero.
//   * lr_step and momentum: floor = max_lr / 1000 (1 / 1000 for momenta): a
//     relative error for every value down to a thousandth of the peak and an
//     absolute error of tol * max_lr / 1000 below it. Part of PyTorch's step()
//     error is absolute, not relative to the value: CyclicLR computes its
//     cycle position as 1 + t/S - floor(1 + t/S), off by ~ulp(t/S) near the
//     trough, and the recursive CosineAnnealingLR divides by
//     1 + cos(pi * (t-1) / T), which cancels near t = T.
// (With the data as generated, every comparison would also pass a purely
// relative check: the largest error is 1.1e-13 of the value itself, at
// CyclicLR_tri_100_150_base0 t=999, from PyTorch's cycle position.)
//
// A summary line (how many values matched PyTorch bit for bit, and the
// largest error per tolerance class in units of the rule above) is printed
// when the test program ends; per-case counts are recorded as test
// properties (--gtest_output=xml or json).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "anneal/engine/schedule.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kReferencePath[] =
    ANNEAL_TEST_DATA_DIR "/pytorch_reference.json";
constexpr double kClosedFormTol = 0;  // bit for bit
constexpr double kExactStepTol = 1e-12;
constexpr double kRecursiveStepTol = 1e-9;
constexpr double kMomentumTol = 1e-12;
// For the step path and momenta, values below kFloor * peak are compared with
// an absolute error (see the file comment); closed forms have no such floor.
constexpr double kFloor = 1e-3;
constexpr double kNoFloor = std::numeric_limits<double>::min();

// A field of a JSON object, or a null Value when the key is absent.
const Value& Field(const Struct& object, const std::string& key) {
  static const Value* const kNull = [] {
    auto* v = new Value;
    v->set_null_value(google::protobuf::NULL_VALUE);
    return v;
  }();
  auto it = object.fields().find(key);
  return it == object.fields().end() ? *kNull : it->second;
}

// The parsed reference file; cases keyed by name, in file order.
struct Reference {
  Struct root;
  std::vector<std::string> names;
  std::map<std::string, const Struct*> cases;
  std::string error;  // empty when the file loaded
};

const Reference& LoadReference() {
  static const Reference* const reference = [] {
    auto* ref = new Reference;
    std::ifstream in(kReferencePath);
    if (!in) {
      ref->error = absl::StrCat(kReferencePath, ": cannot open");
      return ref;
    }
    std::stringstream text;
    text << in.rdbuf();
    auto status =
        google::protobuf::util::JsonStringToMessage(text.str(), &ref->root);
    if (!status.ok()) {
      ref->error = absl::StrCat(kReferencePath, ": ", status.ToString());
      return ref;
    }
    auto it = ref->root.fields().find("cases");
    if (it == ref->root.fields().end() || !it->second.has_list_value()) {
      ref->error = absl::StrCat(kReferencePath, ": no \"cases\" list");
      return ref;
    }
    for (const Value& c : it->second.list_value().values()) {
      const Struct& fields = c.struct_value();
      const std::string& name = Field(fields, "name").string_value();
      if (name.empty() || ref->cases.count(name) != 0) {
        ref->error = absl::StrCat(
            kReferencePath, ": missing or duplicate case name \"", name, "\"");
        return ref;
      }
      ref->names.push_back(name);
      ref->cases[name] = &fields;
    }
    return ref;
  }();
  return *reference;
}

std::vector<std::string> CaseNames() { return LoadReference().names; }

// Counters across all cases run by this process, printed at exit.
struct Kind {
  int64_t values = 0;
  int64_t bit_exact = 0;
  double max_error = 0;  // in units of the tolerance rule's scale
  std::string worst;     // where max_error occurred
};

struct Summary {
  int cases = 0;
  int64_t steps = 0;
  std::map<std::string, Kind> kinds;  // "lr_step/<class>", "lr_closed", ...
};

Summary& GlobalSummary() {
  static Summary* const summary = new Summary;
  return *summary;
}

class SummaryEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    const Summary& s = GlobalSummary();
    if (s.cases == 0) return;
    std::string line = absl::StrCat("[pytorch_reference] ", s.cases, " cases, ",
                                    s.steps, " steps; bit-exact:");
    for (const auto& [name, kind] : s.kinds) {
      absl::StrAppend(
          &line, " ", name, " ", kind.bit_exact, "/", kind.values,
          absl::StrFormat(" (max err %.3g", kind.max_error),
          kind.worst.empty() ? "" : absl::StrCat(" at ", kind.worst), ");");
    }
    std::cout << line << std::endl;
  }
};

[[maybe_unused]] ::testing::Environment* const kSummaryEnvironment =
    ::testing::AddGlobalTestEnvironment(new SummaryEnvironment);

class PyTorchReferenceTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Compares `actual` with `expected` under the rule in the file comment,
  // counts the result under `key` ("lr_step", "lr_closed" or "momentum"),
  // and reports a failure (the first few of a case) with the case, the step
  // and both values.
  void Compare(const std::string& key, int64_t t, double actual,
               double expected, double tol, double floor) {
    const double scale = std::max(std::fabs(expected), floor);
    const double error =
        actual == expected ? 0.0 : std::fabs(actual - expected) / scale;
    const std::string where = absl::StrCat(GetParam(), "@", t);
    Count(&GlobalSummary()
               .kinds[key == "lr_step" ? absl::StrCat(key, "/", tolerance_)
                                       : key],
          actual == expected, error, where);
    Count(&mine_[key], actual == expected, error, where);
    if (error <= tol) return;
    if (++failures_ > kMaxReportedFailures) return;
    ADD_FAILURE() << absl::StrFormat(
        "case %s, %s at t=%d: anneal %.17g, PyTorch %.17g, |diff| %.3g "
        "(%.3g of scale %.3g, tolerance %.3g)",
        GetParam(), key, t, actual, expected, std::fabs(actual - expected),
        error, scale, tol);
  }

  static void Count(Kind* k, bool exact, double error,
                    const std::string& where) {
    ++k->values;
    if (exact) ++k->bit_exact;
    if (error > k->max_error) {
      k->max_error = error;
      k->worst = where;
    }
  }

  // Per-case counts as test properties (visible with --gtest_output=xml).
  void RecordCounts() {
    for (const auto& [key, k] : mine_) {
      RecordProperty(key + "_bit_exact",
                     absl::StrCat(k.bit_exact, "/", k.values));
      RecordProperty(key + "_max_err", absl::StrFormat("%.3g", k.max_error));
    }
  }

  std::string tolerance_;
  std::map<std::string, Kind> mine_;
  static constexpr int kMaxReportedFailures = 5;
  int failures_ = 0;
};

TEST(PyTorchReferenceDataTest, Loads) {
  const Reference& ref = LoadReference();
  ASSERT_EQ(ref.error, "");
  EXPECT_GE(ref.names.size(), 60u);
  EXPECT_EQ(ref.cases.size(), ref.names.size()) << "duplicate case names";
}

TEST_P(PyTorchReferenceTest, MatchesPyTorch) {
  const Struct& c = *LoadReference().cases.at(GetParam());
  SCOPED_TRACE(Field(c, "torch").string_value());

  std::string spec_json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(
                  Field(c, "spec").struct_value(), &spec_json)
                  .ok());
  v1::ScheduleSpec spec;
  const auto parsed =
      google::protobuf::util::JsonStringToMessage(spec_json, &spec);
  ASSERT_TRUE(parsed.ok()) << parsed.ToString() << "\nin: " << spec_json;
  auto compiled = Schedule::Compile(spec);
  ASSERT_TRUE(compiled.ok()) << compiled.status() << "\nin: " << spec_json;
  const Schedule& schedule = **compiled;
  const double max_lr = spec.max_lr();

  tolerance_ = Field(c, "tolerance").string_value();
  ASSERT_TRUE(tolerance_ == "exact_closed_form" || tolerance_ == "recursive")
      << tolerance_;
  const double step_tol =
      tolerance_ == "recursive" ? kRecursiveStepTol : kExactStepTol;
  const auto steps = static_cast<int64_t>(Field(c, "steps").number_value());
  ASSERT_GE(steps, 1);

  const ListValue& lr_step = Field(c, "lr_step").list_value();
  ASSERT_EQ(lr_step.values_size(), steps);
  const bool has_closed = Field(c, "lr_closed").has_list_value();
  const bool has_momentum = Field(c, "momentum").has_list_value();
  if (has_closed) {
    ASSERT_EQ(Field(c, "lr_closed").list_value().values_size(), steps);
  }
  if (has_momentum) {
    ASSERT_EQ(Field(c, "momentum").list_value().values_size(), steps);
  }
  ASSERT_EQ(schedule.has_momentum(), has_momentum)
      << "the spec and the PyTorch case disagree on momentum cycling";

  for (int64_t t = 0; t < steps; ++t) {
    const StepResult r = schedule.At(t);
    const int i = static_cast<int>(t);
    Compare("lr_step", t, r.lr, lr_step.values(i).number_value(), step_tol,
            kFloor * max_lr);
    if (has_closed) {
      Compare("lr_closed", t, r.lr,
              Field(c, "lr_closed").list_value().values(i).number_value(),
              kClosedFormTol, kNoFloor);
    }
    if (has_momentum) {
      // Momenta live in [0, 1): the same floor with a peak of 1.
      Compare("momentum", t, r.momentum,
              Field(c, "momentum").list_value().values(i).number_value(),
              kMomentumTol, kFloor);
    }
  }
  RecordCounts();
  EXPECT_EQ(failures_, 0) << "values of case " << GetParam()
                          << " beyond tolerance (the first "
                          << kMaxReportedFailures << " are reported above)";
  ++GlobalSummary().cases;
  GlobalSummary().steps += steps;
}

std::string CaseTestName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Cases, PyTorchReferenceTest,
                         ::testing::ValuesIn(CaseNames()), CaseTestName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PyTorchReferenceTest);

}  // namespace
}  // namespace anneal
