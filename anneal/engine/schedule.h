// anneal's schedule engine: a spec compiled into an immutable evaluator.
//
//   auto s = anneal::Schedule::Compile(spec);
//   if (!s.ok()) return s.status();  // INVALID_ARGUMENT "<field>: <rule>"
//   anneal::StepResult r = (*s)->At(t);  // lr, momentum, cycle, restart...
//
// Contract:
//  * Pure: no I/O, no clocks, no globals. The same spec and step give the
//    same bits on every call, in every process (server, C++ client, CLI).
//  * A compiled Schedule is immutable and safe to share between threads.
//  * Every step in [0, kMaxStep] evaluates in O(1) or O(log cycles) without
//    heap allocation, overflow, hang or NaN.
//  * Formulas follow PyTorch's closed forms operation for operation where
//    PyTorch has one, so results match PyTorch's closed forms to the last bit
//    (anneal/engine/pytorch_reference_test.cc); where PyTorch's own arithmetic
//    drifts (recursive forms, CyclicLR's float cycle position) anneal stays
//    exact.
#ifndef ANNEAL_ENGINE_SCHEDULE_H_
#define ANNEAL_ENGINE_SCHEDULE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "anneal/engine/asymptotics.h"
#include "anneal/engine/lr_noise.h"
#include "anneal/engine/step.h"
#include "anneal/v1/schedule.pb.h"

namespace anneal {

class BiasCorrection;
class Curve;
struct CurvePoint;

// How deep `sequence` curves may nest (a phase whose spec is a sequence is
// one level deeper).
inline constexpr int kMaxSequenceDepth = 8;

// The default budget of one compiled spec: 4 MiB of tables.
inline constexpr int64_t kDefaultMaxTableBytes = int64_t{4} << 20;

// What every curve node of a spec is charged, whatever its tables: so a spec
// of thousands of small parts costs its share too.
inline constexpr int64_t kCurveNodeBytes = 256;

struct CompileLimits {
  // Bytes of tables one compiled spec may hold (and, for the tables that
  // take work to fill, the equivalent work). Every curve node counts
  // kCurveNodeBytes on top of its tables.
  int64_t max_table_bytes = kDefaultMaxTableBytes;
};

class Schedule {
 public:
  // Validates `spec` and compiles it. Errors are INVALID_ARGUMENT naming the
  // field path and the rule, e.g. "warm_restarts.period: must be >= 1, got 0".
  static absl::StatusOr<std::shared_ptr<const Schedule>> Compile(
      const v1::ScheduleSpec& spec, const CompileLimits& limits = {});

  // The same checks as Compile, without keeping the result.
  static absl::Status Validate(const v1::ScheduleSpec& spec,
                               const CompileLimits& limits = {});

  Schedule(const Schedule&) = delete;
  Schedule& operator=(const Schedule&) = delete;
  ~Schedule();

  // The step result for `query`, with batch scaling and the thermostat
  // applied when the query carries their inputs. INVALID_ARGUMENT for a step
  // outside [0, kMaxStep] or a malformed batch size / norm / count.
  absl::StatusOr<StepResult> Evaluate(const StepQuery& query) const;

  // The step result at `step` for the reference batch size and no thermostat,
  // at the plateau level `lr_level` (StepQuery::lr_level; 0: none).
  // Requires 0 <= step <= kMaxStep and lr_level >= 0 (not checked).
  StepResult At(int64_t step, double lr_level = 0) const;

  // Calls `visit` for steps start, start+1, ..., start+count-1 in order, with
  // the query's batch size / thermostat inputs applied to every step.
  // Equal, bit for bit, to calling Evaluate on each step.
  absl::Status EvaluateRange(
      int64_t start, int64_t count, const StepQuery& options,
      absl::FunctionRef<void(const StepResult&)> visit) const;

  const v1::ScheduleSpec& spec() const { return spec_; }
  bool has_momentum() const { return spec_.has_momentum(); }
  // What the compiled spec was charged against CompileLimits: an upper
  // bound on the bytes its tables hold.
  int64_t table_bytes() const { return table_bytes_; }

  // Robbins-Monro verdict of the LR sequence as t -> infinity.
  Asymptotics Tail() const;
  // First step from which the LR is constant forever, or -1.
  int64_t SettlesAt() const;

 private:
  explicit Schedule(const v1::ScheduleSpec& spec);

  // `level` rescales the curve (StepQuery::lr_level) and `scale` multiplies
  // every LR (batch scaling).
  StepResult Finish(int64_t step, const CurvePoint& point, double level,
                    double scale) const;
  static absl::Status CheckQuery(const StepQuery& query);
  // The first step of the bias-correction product at `r`: 0, or the
  // cycle's first step when the product restarts with the cycles.
  int64_t ProductStart(const StepResult& r) const;
  double BatchScale(const StepQuery& query) const;
  void ApplyThermostat(const StepQuery& query, StepResult* result) const;

  v1::ScheduleSpec spec_;
  std::unique_ptr<const Curve> curve_;
  double momentum_base_ = 0;
  double momentum_max_ = 0;
  double batch_reference_ = 0;  // 0: no batch scaling
  bool batch_sqrt_ = false;
  double thermostat_k_ = 0;       // 0: no thermostat
  double thermostat_beta_ = 0;    // the client's constant SGD momentum
  bool bias_restarts_ = false;    // momentum.restart_bias_correction
  double ceiling_ = 0;            // LRs are clamped to [0, ceiling_]
  std::optional<LrNoise> noise_;  // timm's LR noise, after the clamp
  int64_t table_bytes_ = 0;
  std::unique_ptr<const BiasCorrection> bias_;
};

}  // namespace anneal

#endif  // ANNEAL_ENGINE_SCHEDULE_H_
