#include "fuzz/spec_check.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "anneal/engine/schedule.h"
#include "anneal/engine/step.h"

namespace anneal::fuzz {
namespace {

[[noreturn]] void Fail(const char* what, int64_t step, double value) {
  std::fprintf(stderr, "fuzz invariant broken: %s at step %lld (value %.17g)\n",
               what, static_cast<long long>(step), value);
  std::abort();
}

// splitmix64: a step sequence that depends on every input byte.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void CheckResult(const StepResult& r, int64_t step) {
  if (!std::isfinite(r.lr)) Fail("LR not finite", step, r.lr);
  if (r.lr < 0) Fail("LR negative", step, r.lr);
  if (r.has_momentum && !std::isfinite(r.momentum)) {
    Fail("momentum not finite", step, r.momentum);
  }
}

}  // namespace

void CheckSpec(const v1::ScheduleSpec& spec, const uint8_t* data, size_t size) {
  const absl::Status valid = Schedule::Validate(spec);
  auto compiled = Schedule::Compile(spec);
  if (valid.ok() != compiled.ok()) {
    std::fprintf(stderr, "Validate: %s\nCompile: %s\n",
                 valid.ToString().c_str(),
                 compiled.status().ToString().c_str());
    Fail("Validate and Compile disagree", 0, 0);
  }
  if (!compiled.ok()) return;
  const Schedule& s = **compiled;

  uint64_t h = 0x5eed;
  for (size_t i = 0; i < size; ++i) h = Mix(h ^ data[i]);

  std::vector<int64_t> steps = {0, 1, 2, 3, kMaxStep, kMaxStep - 1};
  for (int i = 0; i < 48; ++i) {
    h = Mix(h);
    // Small steps, steps near powers of two and any step up to 2^62.
    const int64_t any =
        static_cast<int64_t>(h % (static_cast<uint64_t>(kMaxStep) + 1));
    switch (i % 3) {
      case 0:
        steps.push_back(static_cast<int64_t>(h % 4096));
        break;
      case 1: {
        const int shift = static_cast<int>(h % 63);
        const int64_t base = int64_t{1} << shift;
        const int64_t near = base + static_cast<int64_t>((h >> 8) % 5) - 2;
        steps.push_back(near < 0 ? 0 : (near > kMaxStep ? kMaxStep : near));
        break;
      }
      default:
        steps.push_back(any);
    }
  }
  for (int64_t step : steps) {
    StepQuery q;
    q.step = step;
    absl::StatusOr<StepResult> r = s.Evaluate(q);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      Fail("Evaluate failed on a valid step", step, 0);
    }
    CheckResult(*r, step);
    // A short range from the same step, bit for bit equal to Evaluate.
    const int64_t count = step > kMaxStep - 3 ? kMaxStep - step + 1 : 3;
    std::vector<StepResult> range;
    absl::Status st =
        s.EvaluateRange(step, count, StepQuery{},
                        [&](const StepResult& x) { range.push_back(x); });
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      Fail("EvaluateRange failed on valid steps", step, 0);
    }
    if (static_cast<int64_t>(range.size()) != count)
      Fail("EvaluateRange count", step, 0);
    for (int64_t i = 0; i < count; ++i) {
      StepQuery one;
      one.step = step + i;
      absl::StatusOr<StepResult> e = s.Evaluate(one);
      if (!e.ok()) Fail("Evaluate failed on a valid step", step + i, 0);
      CheckResult(*e, step + i);
      const StepResult& x = range[static_cast<size_t>(i)];
      if (std::memcmp(&x.lr, &e->lr, sizeof(double)) != 0) {
        Fail("EvaluateRange LR differs from Evaluate", step + i, x.lr);
      }
    }
  }
}

}  // namespace anneal::fuzz
