// schedule_bench: cost of the schedule engine, per family (performance.md).
//
//   BM_At/<family>        ns per Schedule::At(t) (Evaluate(StepQuery) for the
//                         batch_scaling + thermostat spec), t drawn from a
//                         fixed pseudo-random array of small, large and
//                         near-2^62 steps; counter allocs_per_eval (must be 0).
//   BM_At/momentum_*_early  the same for momentum specs with t uniform in
//                         [0, vanishes_at], the steps whose exact Adam bias
//                         correction walks the prefix table (counters
//                         vanishes_at; anneal/engine/bias_correction.h).
//   BM_Range/<family>     one EvaluateRange over 1,000,000 steps from 0 per
//                         iteration; counters ns_per_step, allocs_per_step.
//   BM_Baseline_Cos       one std::cos of a double: report families as ratios
//                         to it, since the machines are shared and noisy.
//   BM_Baseline_Loop      one load + add from the same kind of array: the
//                         floor of the BM_At harness loop.
//
// Heap allocations are counted by replacing the global operator new/delete.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "anneal/engine/schedule.h"
#include "anneal/engine/step.h"
#include "anneal/v1/schedule.pb.h"
#include "benchmark/benchmark.h"

// ---------------------------------------------------------------------------
// Allocation counting: every replaceable global allocation function counts
// one allocation and forwards to malloc / posix_memalign; deallocation
// functions forward to free.

namespace {

std::atomic<int64_t> g_allocations{0};

void* CountedAlloc(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}

void* CountedAlignedAlloc(std::size_t size, std::align_val_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  std::size_t alignment = static_cast<std::size_t>(align);
  if (alignment < sizeof(void*)) alignment = sizeof(void*);
  void* p = nullptr;
  if (posix_memalign(&p, alignment, size == 0 ? 1 : size) != 0) return nullptr;
  return p;
}

void* OrThrow(void* p) {
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(std::size_t size) { return OrThrow(CountedAlloc(size)); }
void* operator new[](std::size_t size) { return OrThrow(CountedAlloc(size)); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return CountedAlloc(size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return CountedAlloc(size);
}
void* operator new(std::size_t size, std::align_val_t align) {
  return OrThrow(CountedAlignedAlloc(size, align));
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return OrThrow(CountedAlignedAlloc(size, align));
}
void* operator new(std::size_t size, std::align_val_t align,
                   const std::nothrow_t&) noexcept {
  return CountedAlignedAlloc(size, align);
}
void* operator new[](std::size_t size, std::align_val_t align,
                     const std::nothrow_t&) noexcept {
  return CountedAlignedAlloc(size, align);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t,
                     const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t,
                       const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace anneal {
namespace {

constexpr int64_t kRangeSteps = 1000000;
constexpr size_t kSteps = 4096;  // power of two: index with a mask
constexpr size_t kMask = kSteps - 1;
constexpr double kPiBench = 3.141592653589793;

// Pseudo-random steps (fixed seed): 6/16 uniform in [0, 1e6) (the range the
// specs below spend their interesting parts in), 4/16 log-uniform in [1, 1e9],
// 3/16 uniform in [0, 1e9), 1/16 uniform in [0, 1e4), 2/16 within 1e6 of
// 2^62.
std::vector<int64_t> MixedSteps() {
  std::mt19937_64 rng(20240601);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<int64_t> steps(kSteps);
  for (int64_t& t : steps) {
    const uint64_t bucket = rng() % 16;
    const double u = unit(rng);
    if (bucket < 6) {
      t = static_cast<int64_t>(u * 1e6);
    } else if (bucket < 10) {
      t = static_cast<int64_t>(std::pow(10.0, 9.0 * u));
    } else if (bucket < 13) {
      t = static_cast<int64_t>(u * 1e9);
    } else if (bucket < 14) {
      t = static_cast<int64_t>(u * 1e4);
    } else {
      t = kMaxStep - static_cast<int64_t>(u * 1e6);
    }
  }
  return steps;
}

// Pseudo-random steps uniform in [0, limit].
std::vector<int64_t> UniformSteps(int64_t limit) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> dist(0, limit);
  std::vector<int64_t> steps(kSteps);
  for (int64_t& t : steps) t = dist(rng);
  return steps;
}

const std::vector<int64_t>& Mixed() {
  static const std::vector<int64_t>* const steps =
      new std::vector<int64_t>(MixedSteps());
  return *steps;
}

// ---------------------------------------------------------------------------
// The specs, one per family.

v1::ScheduleSpec Base(double max_lr, double min_lr) {
  v1::ScheduleSpec spec;
  spec.set_max_lr(max_lr);
  if (min_lr > 0) spec.set_min_lr(min_lr);
  return spec;
}

v1::ScheduleSpec WarmRestarts(int64_t period, double mult) {
  v1::ScheduleSpec s = Base(0.1, 1e-4);
  s.mutable_warm_restarts()->set_period(period);
  s.mutable_warm_restarts()->set_period_mult(mult);
  return s;
}

// Cosine over 1e6 steps after a 10k-step linear warmup, momentum cycled
// between base and max.
v1::ScheduleSpec WithMomentum(double base, double max) {
  v1::ScheduleSpec s = Base(1e-3, 1e-5);
  s.mutable_warmup()->set_steps(10000);
  s.mutable_cosine()->set_period(1000000);
  s.mutable_momentum()->set_base(base);
  s.mutable_momentum()->set_max(max);
  return s;
}

enum class Mode {
  kAt,        // Schedule::At(t)
  kEvaluate,  // Schedule::Evaluate with batch size, |g|^2 and d
};

struct Family {
  std::string name;
  v1::ScheduleSpec spec;
  Mode mode = Mode::kAt;
};

std::vector<Family> Families() {
  std::vector<Family> f;
  {
    v1::ScheduleSpec s = Base(0.1, 0);
    s.mutable_constant();
    f.push_back({"constant", s});
  }
  {
    v1::ScheduleSpec s = Base(0.1, 1e-6);
    s.mutable_step_decay()->set_step_size(30000);
    s.mutable_step_decay()->set_gamma(0.5);
    f.push_back({"step_decay_step_size", s});
  }
  {
    v1::ScheduleSpec s = Base(0.1, 1e-6);
    for (int i = 1; i <= 50; ++i) {
      s.mutable_step_decay()->add_milestones(int64_t{20000} * i);
    }
    s.mutable_step_decay()->set_gamma(0.9);
    f.push_back({"step_decay_milestones50", s});
  }
  {
    v1::ScheduleSpec s = Base(0.1, 1e-6);
    s.mutable_exponential_decay()->set_gamma(0.96);
    s.mutable_exponential_decay()->set_transition_steps(1000);
    f.push_back({"exponential_decay", s});
  }
  {
    v1::ScheduleSpec s = Base(0.1, 1e-5);
    s.mutable_polynomial_decay()->set_total_steps(1000000);
    s.mutable_polynomial_decay()->set_power(2.0);
    f.push_back({"polynomial_decay", s});
  }
  {
    v1::ScheduleSpec s = Base(0.1, 0);
    s.mutable_inverse_time_decay()->set_t0(1000);
    s.mutable_inverse_time_decay()->set_power(0.5);
    f.push_back({"inverse_time_decay", s});
  }
  {
    v1::ScheduleSpec s = Base(0.1, 0);
    s.mutable_linear()->set_start_factor(1.0);
    s.mutable_linear()->set_end_factor(0.01);
    s.mutable_linear()->set_total_steps(1000000);
    f.push_back({"linear", s});
  }
  {
    v1::ScheduleSpec s = Base(0.1, 1e-4);
    s.mutable_cosine()->set_period(1000000);
    f.push_back({"cosine", s});
  }
  f.push_back({"warm_restarts_mult1", WarmRestarts(10000, 1.0)});
  f.push_back({"warm_restarts_mult2", WarmRestarts(1000, 2.0)});
  {
    v1::ScheduleSpec s = WarmRestarts(1000, 1.5);
    s.mutable_warm_restarts()->set_peak_decay(0.8);
    s.mutable_warmup()->set_steps(100);
    s.mutable_warmup()->set_every_cycle(true);
    f.push_back({"warm_restarts_mult1.5_decay_warmup", s});
  }
  f.push_back({"warm_restarts_mult0.7", WarmRestarts(100000, 0.7)});
  {
    v1::ScheduleSpec s = Base(0.1, 1e-3);
    s.mutable_cyclic()->set_step_size_up(2000);
    s.mutable_cyclic()->set_step_size_down(3000);
    s.mutable_cyclic()->set_mode(v1::Cyclic::TRIANGULAR2);
    f.push_back({"cyclic_triangular2", s});
  }
  {
    v1::ScheduleSpec s = Base(0.1, 0);
    s.mutable_one_cycle()->set_total_steps(1000000);
    f.push_back({"one_cycle", s});
  }
  {
    v1::ScheduleSpec s = Base(3e-4, 3e-5);
    s.mutable_wsd()->set_warmup_steps(2000);
    s.mutable_wsd()->set_stable_steps(800000);
    s.mutable_wsd()->set_decay_steps(198000);
    f.push_back({"wsd", s});
  }
  {
    v1::ScheduleSpec s = Base(1e-3, 1e-5);
    v1::Sequence* seq = s.mutable_sequence();
    v1::Sequence::Part* p = seq->add_phases();
    p->set_steps(10000);
    p->mutable_spec()->mutable_linear()->set_start_factor(0.01);
    p->mutable_spec()->mutable_linear()->set_end_factor(1.0);
    p->mutable_spec()->mutable_linear()->set_total_steps(10000);
    p = seq->add_phases();
    p->set_steps(500000);
    p->mutable_spec()->mutable_cosine()->set_period(500000);
    p = seq->add_phases();
    p->set_restart(true);
    p->mutable_spec()->set_max_lr(1e-4);
    p->mutable_spec()->mutable_exponential_decay()->set_gamma(0.99999);
    f.push_back({"sequence3", s});
  }
  {
    v1::ScheduleSpec s = Base(1e-3, 1e-5);
    s.mutable_warmup()->set_steps(10000);
    s.mutable_warmup()->set_start_lr(1e-6);
    s.mutable_cosine()->set_period(1000000);
    f.push_back({"warmup_cosine", s});
  }
  f.push_back({"momentum_0.95", WithMomentum(0.85, 0.95)});
  f.push_back({"momentum_0.999", WithMomentum(0.9, 0.999)});
  {
    v1::ScheduleSpec s = Base(1e-3, 1e-5);
    s.mutable_cosine()->set_period(1000000);
    s.mutable_batch_scaling()->set_reference_batch_size(256);
    s.mutable_batch_scaling()->set_rule(v1::BatchScaling::SQRT);
    s.mutable_thermostat()->set_target_update_norm_sq(1e-6);
    f.push_back({"batch_thermostat_evaluate", s, Mode::kEvaluate});
  }
  return f;
}

std::shared_ptr<const Schedule> CompileOrDie(const v1::ScheduleSpec& spec,
                                             const std::string& name) {
  auto s = Schedule::Compile(spec);
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(),
                 std::string(s.status().message()).c_str());
    std::abort();
  }
  return *std::move(s);
}

StepQuery JobQuery(int64_t step) {
  StepQuery q;
  q.step = step;
  q.batch_size = 1024;
  q.grad_norm_sq = 0.5;
  q.num_params = 125000000;
  return q;
}

void SetAllocCounter(benchmark::State& state, const char* name,
                     int64_t allocations, double per) {
  state.counters[name] =
      benchmark::Counter(static_cast<double>(allocations) / per);
}

// ---------------------------------------------------------------------------
// Benchmarks.

void RunAt(benchmark::State& state, const Schedule& schedule, Mode mode,
           const std::vector<int64_t>& steps) {
  size_t i = 0;
  const int64_t before = g_allocations.load(std::memory_order_relaxed);
  if (mode == Mode::kAt) {
    for (auto _ : state) {
      StepResult r = schedule.At(steps[i++ & kMask]);
      benchmark::DoNotOptimize(r);
    }
  } else {
    StepQuery q = JobQuery(0);
    for (auto _ : state) {
      q.step = steps[i++ & kMask];
      absl::StatusOr<StepResult> r = schedule.Evaluate(q);
      benchmark::DoNotOptimize(r);
    }
  }
  const int64_t allocations =
      g_allocations.load(std::memory_order_relaxed) - before;
  SetAllocCounter(state, "allocs_per_eval", allocations,
                  static_cast<double>(state.iterations()));
}

void RunRange(benchmark::State& state, const Schedule& schedule, Mode mode) {
  const StepQuery options = mode == Mode::kEvaluate ? JobQuery(0) : StepQuery();
  const int64_t before = g_allocations.load(std::memory_order_relaxed);
  for (auto _ : state) {
    double sum = 0;
    absl::Status status = schedule.EvaluateRange(
        0, kRangeSteps, options, [&sum](const StepResult& r) {
          sum += r.lr + r.beta1_bias_correction + r.noise_std;
        });
    benchmark::DoNotOptimize(sum);
    benchmark::DoNotOptimize(status);
  }
  const int64_t allocations =
      g_allocations.load(std::memory_order_relaxed) - before;
  const double steps = static_cast<double>(state.iterations()) * kRangeSteps;
  state.SetItemsProcessed(state.iterations() * kRangeSteps);
  // Seconds per step (the console prints it with an SI prefix, e.g. "5.1ns").
  state.counters["ns_per_step"] =
      benchmark::Counter(static_cast<double>(kRangeSteps),
                         benchmark::Counter::kIsIterationInvariantRate |
                             benchmark::Counter::kInvert);
  SetAllocCounter(state, "allocs_per_step", allocations, steps);
}

std::vector<double> Angles() {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> dist(0.0, kPiBench);
  std::vector<double> x(kSteps);
  for (double& v : x) v = dist(rng);
  return x;
}

void BM_Baseline_Cos(benchmark::State& state) {
  const std::vector<double> x = Angles();
  size_t i = 0;
  for (auto _ : state) {
    double c = std::cos(x[i++ & kMask]);
    benchmark::DoNotOptimize(c);
  }
}

void BM_Baseline_Loop(benchmark::State& state) {
  const std::vector<double> x = Angles();
  size_t i = 0;
  double sum = 0;
  for (auto _ : state) {
    sum += x[i++ & kMask];
    benchmark::DoNotOptimize(sum);
  }
}

// First step t with prod_{i<=t} momentum(i) < 2^-60 (bias correction is 1.0
// from there on), found with one cheap EvaluateRange pass.
int64_t VanishesAt(const Schedule& schedule) {
  const double limit = std::ldexp(1.0, -60);
  double product = 1.0;
  int64_t vanishes = -1;
  absl::Status status =
      schedule.EvaluateRange(0, 2 * kRangeSteps, StepQuery(),
                             [&product, &vanishes, limit](const StepResult& r) {
                               product *= r.momentum;
                               if (vanishes < 0 && product < limit) {
                                 vanishes = r.step;
                               }
                             });
  return status.ok() && vanishes >= 0 ? vanishes : 2 * kRangeSteps;
}

// At for t uniform in [0, vanishes_at]: the steps where the exact bias
// correction must multiply momenta from the nearest table entry.
void RegisterMomentumEarly(const std::string& name, double base, double max) {
  auto schedule = CompileOrDie(WithMomentum(base, max), name);
  const int64_t vanishes = VanishesAt(*schedule);
  benchmark::RegisterBenchmark(
      ("BM_At/" + name + "_early").c_str(),
      [schedule, vanishes,
       steps = UniformSteps(vanishes)](benchmark::State& state) {
        RunAt(state, *schedule, Mode::kAt, steps);
        state.counters["vanishes_at"] = static_cast<double>(vanishes);
      });
}

void RegisterAll() {
  benchmark::RegisterBenchmark("BM_Baseline_Cos", BM_Baseline_Cos);
  benchmark::RegisterBenchmark("BM_Baseline_Loop", BM_Baseline_Loop);
  const std::vector<Family> families = Families();
  for (const Family& f : families) {
    auto schedule = CompileOrDie(f.spec, f.name);
    benchmark::RegisterBenchmark(
        ("BM_At/" + f.name).c_str(),
        [schedule, mode = f.mode](benchmark::State& state) {
          RunAt(state, *schedule, mode, Mixed());
        });
  }
  RegisterMomentumEarly("momentum_0.95", 0.85, 0.95);
  RegisterMomentumEarly("momentum_0.999", 0.9, 0.999);
  RegisterMomentumEarly("momentum_0.9999", 0.9, 0.9999);
  // Worst case: beta1 held at the largest accepted value, so the product
  // vanishes only after ~416k steps and the prefix table is sparsest
  // (anneal/engine/bias_correction.h).
  RegisterMomentumEarly("momentum_0.9999_flat", 0.9999, 0.9999);
  for (const Family& f : families) {
    auto schedule = CompileOrDie(f.spec, f.name);
    benchmark::RegisterBenchmark(
        ("BM_Range/" + f.name).c_str(),
        [schedule, mode = f.mode](benchmark::State& state) {
          RunRange(state, *schedule, mode);
        })
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace
}  // namespace anneal

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  anneal::RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
