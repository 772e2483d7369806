// timm's LR noise on PyTorch's CPU generator (see lr_noise.h). The draws
// follow ATen: at::mt19937 seeded with the low 32 bits of the seed (as
// std::mt19937), random64() = first output << 32 | second output,
// uniform_real_distribution<double> = (random64 & (2^53 - 1)) * 2^-53,
// normal_distribution<double> = Box-Muller with r * cos(theta) returned and
// r * sin(theta) cached for the next draw, cast to float for a float
// tensor; uniform_real_distribution<float> = (random & (2^24 - 1)) * 2^-24.
#include "anneal/engine/lr_noise.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "anneal/engine/field_error.h"
#include "anneal/engine/step.h"

namespace anneal {
namespace {

constexpr double kTwoPi = 2.0 * 3.141592653589793;

class TorchCpuGenerator {
 public:
  explicit TorchCpuGenerator(int64_t seed)
      : engine_(static_cast<uint32_t>(static_cast<uint64_t>(seed))) {}

  // torch.randn(1, generator=g).item() for a float tensor.
  double RandnFloat() {
    if (has_cached_) {
      has_cached_ = false;
      return static_cast<float>(cached_);
    }
    const double u1 = UniformDouble();
    const double u2 = UniformDouble();
    const double r = std::sqrt(-2.0 * std::log1p(-u2));
    const double theta = kTwoPi * u1;
    cached_ = r * std::sin(theta);
    has_cached_ = true;
    return static_cast<float>(r * std::cos(theta));
  }

  // torch.rand(1, generator=g).item() for a float tensor.
  double RandFloat() {
    const uint32_t x = static_cast<uint32_t>(engine_());
    return static_cast<float>((x & ((1u << 24) - 1)) * std::ldexp(1.0f, -24));
  }

 private:
  double UniformDouble() {
    const uint64_t hi = static_cast<uint32_t>(engine_());
    const uint64_t lo = static_cast<uint32_t>(engine_());
    const uint64_t x = (hi << 32) | lo;
    return static_cast<double>(x & ((uint64_t{1} << 53) - 1)) *
           std::ldexp(1.0, -53);
  }

  std::mt19937 engine_;
  double cached_ = 0;
  bool has_cached_ = false;
};

}  // namespace

absl::StatusOr<LrNoise> LrNoise::Build(const v1::LrNoise& spec) {
  const FieldPath path("lr_noise");
  const FieldPath start = path.Child("start_step");
  if (auto s = RequireAtLeast(start, spec.start_step(), 0); !s.ok()) return s;
  if (auto s = RequireAtMost(start, spec.start_step(), kMaxStep); !s.ok()) {
    return s;
  }
  if (spec.has_end_step() && !(spec.end_step() > spec.start_step())) {
    return path.Child("end_step")
        .Error(absl::StrCat("must be > start_step (", spec.start_step(),
                            "), got ", spec.end_step()));
  }
  const double pct = spec.has_pct() ? spec.pct() : 0.67;
  if (!v1::LrNoise::Type_IsValid(spec.type())) {
    return path.Child("type").Error(
        absl::StrCat("must be NORMAL or UNIFORM, got ", spec.type()));
  }
  const bool uniform = spec.type() == v1::LrNoise::UNIFORM;
  if (uniform) {
    if (!(pct > 0)) {
      return path.Child("pct").Error(
          absl::StrCat("must be > 0, got ", FormatNumber(pct)));
    }
  } else if (!(pct >= 0.01)) {
    // Below 0.01 a normal draw lands in the band once in 125 tries or
    // fewer: the bounded resampling below could then run out.
    return path.Child("pct").Error(absl::StrCat(
        "must be >= 0.01 with NORMAL (each step resamples until inside the "
        "band), got ",
        FormatNumber(pct)));
  }
  // NORMAL draws |eps| < pct, UNIFORM eps in [-pct, pct): lr (1 + eps) >= 0.
  if (!(pct <= 1)) {
    return path.Child("pct").Error(absl::StrCat(
        "must be <= 1 (the LR stays non-negative), got ", FormatNumber(pct)));
  }
  LrNoise noise;
  noise.start_ = spec.start_step();
  noise.end_ = spec.has_end_step() ? spec.end_step() : 0;
  noise.pct_ = pct;
  noise.uniform_ = uniform;
  noise.seed_ = spec.has_seed() ? spec.seed() : 42;
  return noise;
}

double LrNoise::Apply(int64_t step, double lr) const {
  if (step < start_ || (end_ > 0 && step >= end_)) return lr;
  // timm: g.manual_seed(self.noise_seed + t); wraps as torch's uint64 does.
  TorchCpuGenerator g(static_cast<int64_t>(static_cast<uint64_t>(seed_) +
                                           static_cast<uint64_t>(step)));
  double eps;
  if (uniform_) {
    eps = 2 * (g.RandFloat() - 0.5) * pct_;
  } else {
    // timm resamples until inside the band. With pct >= 0.01 a draw lands
    // there with probability >= 0.008, so 100000 draws always suffice in
    // practice (failing has probability below 1e-300); the bound keeps a
    // step's cost finite regardless.
    eps = 0;
    for (int i = 0; i < 100000; ++i) {
      const double x = g.RandnFloat();
      if (std::fabs(x) < pct_) {
        eps = x;
        break;
      }
    }
  }
  return lr + lr * eps;
}

double TorchRandnForTest(int64_t seed, int draws) {
  TorchCpuGenerator g(seed);
  double x = 0;
  for (int i = 0; i < draws; ++i) x = g.RandnFloat();
  return x;
}

}  // namespace anneal
