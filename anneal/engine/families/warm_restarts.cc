// SGDR: cosine (or linear) annealing with warm restarts.
//
// Cycle k anneals over L_k = period * period_mult^k steps (exact integer
// products for integer period_mult, as PyTorch's T_i; max(1, round(...)) for a
// real one), optionally preceded by its own warmup of W steps. The cycle
// containing t is found with exact integer arithmetic: an explicit table of
// cycle starts, then a tail of equal cycles (period_mult == 1, or a shrinking
// period that reached 1). PyTorch's floor(log(...)) misplaces restarts (T_0=1,
// T_mult=3, t=121); a table cannot.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "anneal/engine/families/curves.h"

namespace anneal {
namespace {

// Most explicit cycles a schedule may need before its cycles become equal or
// pass kMaxStep; period_mult values very close to 1 would need more.
constexpr int64_t kMaxExplicitCycles = 1 << 16;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

struct Geometry {
  std::vector<int64_t> starts{0};  // explicit cycle k: [starts[k], starts[k+1])
  std::vector<double> peaks;       // peak of explicit cycle k (cached pow)
  int64_t tail_start = kNever;     // equal cycles of tail_len from here
  int64_t tail_len = 1;
  int64_t tail_first_cycle = 0;
  int64_t hold_start = kNever;  // max_cycles reached: LR holds min_lr
};

int64_t SaturatingAdd(int64_t a, int64_t b) {
  return a > kNever - b ? kNever : a + b;
}

class WarmRestartsCurve final : public Curve {
 public:
  WarmRestartsCurve(const Levels& levels, const v1::WarmRestarts& spec,
                    const v1::Warmup* warmup, Geometry geometry)
      : levels_(levels),
        mult_(spec.has_period_mult() ? spec.period_mult() : 1.0),
        decay_(spec.has_peak_decay() ? spec.peak_decay() : 1.0),
        max_cycles_(spec.max_cycles()),
        linear_(spec.shape() == v1::WarmRestarts::LINEAR),
        warmup_(warmup ? *warmup : v1::Warmup()),
        warmup_steps_(warmup ? warmup->steps() : 0),
        g_(std::move(geometry)) {}

  void Eval(int64_t t, CurvePoint* out) const override {
    if (t >= g_.hold_start) {
      out->lr = levels_.min_lr;
      out->h = 0;
      out->cycle = max_cycles_ - 1;
      out->step_in_cycle = t - CycleStart(max_cycles_ - 1);
      out->cycle_length = 0;
      out->phase = v1::HOLD;
      out->snapshot = false;
      return;
    }
    int64_t k, start, length;
    if (t >= g_.tail_start) {
      k = g_.tail_first_cycle + (t - g_.tail_start) / g_.tail_len;
      start = g_.tail_start + (k - g_.tail_first_cycle) * g_.tail_len;
      length = g_.tail_len;
    } else {
      k = std::upper_bound(g_.starts.begin(), g_.starts.end(), t) -
          g_.starts.begin() - 1;
      start = g_.starts[k];
      length = g_.starts[k + 1] - start;
    }
    int64_t t_cur = t - start;
    const double peak = k < static_cast<int64_t>(g_.peaks.size())
                            ? g_.peaks[static_cast<size_t>(k)]
                            : Peak(k);
    out->cycle = k;
    out->step_in_cycle = t_cur;
    out->cycle_length = length;
    out->snapshot = t_cur == length - 1;
    if (t_cur < warmup_steps_) {
      out->lr = WarmupLr(warmup_, t_cur, peak, &out->h);
      out->phase = v1::WARMUP;
      return;
    }
    double x = static_cast<double>(t_cur - warmup_steps_);
    double span = static_cast<double>(length - warmup_steps_);
    double f;
    if (linear_) {
      f = 1 - x / span;
      out->lr = levels_.min_lr + (peak - levels_.min_lr) * f;
    } else {
      double c = 1 + std::cos(kPi * x / span);
      out->lr = levels_.min_lr + (peak - levels_.min_lr) * c / 2;
      f = c / 2;
    }
    out->h = f;
    out->phase = v1::ANNEAL;
  }

  Asymptotics Tail() const override {
    if (max_cycles_ > 0) {
      return TailConstant(levels_.min_lr,
                          "warm restarts with max_cycles (holds min_lr)");
    }
    if (levels_.min_lr > 0) {
      return TailConstant(levels_.min_lr,
                          "warm restarts never go below min_lr, which");
    }
    Asymptotics a;
    if (mult_ > 1.0) {
      // Cycle k contributes ~ L_k * peak_k (sum) and L_k * peak_k^2
      // (squares), with L_k ~ period * mult^k and peak_k = max * decay^k.
      a.sum_diverges = mult_ * decay_ >= 1.0;
      a.sum_squares_converges = mult_ * decay_ * decay_ < 1.0;
      a.reason = absl::StrCat(
          "warm restarts with growing periods: cycle k adds ~ (period_mult * "
          "peak_decay)^k to the sum and (period_mult * peak_decay^2)^k to the "
          "sum of squares; period_mult * peak_decay = ",
          mult_ * decay_,
          ", period_mult * peak_decay^2 = ", mult_ * decay_ * decay_);
      return a;
    }
    if (decay_ == 1.0) {
      a.sum_diverges = true;
      a.sum_squares_converges = false;
      a.reason =
          "warm restarts without peak decay return to max_lr forever: sum of "
          "squares diverges (violates condition 2)";
    } else {
      a.sum_diverges = false;
      a.sum_squares_converges = true;
      a.reason =
          "warm restarts with peak_decay < 1 and cycles that do not grow: the "
          "peaks decay geometrically, so the sum converges (violates "
          "condition 1)";
    }
    return a;
  }

  int64_t SettlesAt() const override {
    return g_.hold_start == kNever ? -1 : g_.hold_start;
  }

 private:
  double Peak(int64_t k) const {
    return decay_ == 1.0
               ? levels_.max_lr
               : levels_.max_lr * std::pow(decay_, static_cast<double>(k));
  }

  int64_t CycleStart(int64_t k) const {
    if (k < static_cast<int64_t>(g_.starts.size())) return g_.starts[k];
    return g_.tail_start + (k - g_.tail_first_cycle) * g_.tail_len;
  }

  Levels levels_;
  double mult_;
  double decay_;
  int64_t max_cycles_;
  bool linear_;
  v1::Warmup warmup_;
  int64_t warmup_steps_;
  Geometry g_;
};

// Anneal length of cycle k given the previous one (integer multiplier: exact
// product; real multiplier: rounded power). Saturates above kMaxStep.
int64_t AnnealLength(int64_t period, double mult, bool integer_mult, int64_t k,
                     int64_t previous) {
  const int64_t cap = kMaxStep + 1;
  if (integer_mult) {
    if (k == 0) return period;
    auto m = static_cast<int64_t>(mult);
    return previous > cap / m ? cap : previous * m;
  }
  double v =
      static_cast<double>(period) * std::pow(mult, static_cast<double>(k));
  if (!(v < static_cast<double>(cap))) return cap;
  return std::max<int64_t>(1, std::llround(v));
}

}  // namespace

absl::StatusOr<CurvePtr> MakeWarmRestarts(const v1::WarmRestarts& spec,
                                          const Levels& levels,
                                          const v1::Warmup* warmup,
                                          const FieldPath& path,
                                          BuildContext& ctx) {
  FieldPath period_path = path.Child("period");
  if (auto s = RequireAtLeast(period_path, spec.period(), 1); !s.ok()) return s;
  if (auto s = RequireAtMost(period_path, spec.period(), kMaxStep); !s.ok()) {
    return s;
  }
  double mult = spec.has_period_mult() ? spec.period_mult() : 1.0;
  if (auto s = RequireAbove(path.Child("period_mult"), mult, 0); !s.ok()) {
    return s;
  }
  double decay = spec.has_peak_decay() ? spec.peak_decay() : 1.0;
  FieldPath decay_path = path.Child("peak_decay");
  if (auto s = RequireInRange(decay_path, decay, 0, 1); !s.ok()) return s;
  if (decay == 0) return decay_path.Error("must be > 0, got 0");
  if (auto s = RequireAtLeast(path.Child("max_cycles"), spec.max_cycles(), 0);
      !s.ok()) {
    return s;
  }
  if (spec.shape() != v1::WarmRestarts::SHAPE_UNSPECIFIED &&
      spec.shape() != v1::WarmRestarts::COSINE &&
      spec.shape() != v1::WarmRestarts::LINEAR) {
    return path.Child("shape").Error(
        absl::StrCat("must be COSINE or LINEAR, got ", spec.shape()));
  }
  const int64_t w = warmup ? warmup->steps() : 0;
  const bool integer_mult = mult >= 1 && mult == std::floor(mult) && mult < 1e9;

  Geometry g;
  const int64_t max_cycles = spec.max_cycles();
  const FieldPath mult_path = path.Child("period_mult");
  if (mult == 1.0) {
    g.tail_start = 0;
    g.tail_len = spec.period() + w;
    g.tail_first_cycle = 0;
    g.starts.clear();
  } else {
    int64_t length = 0;
    for (int64_t k = 0;; ++k) {
      int64_t start = g.starts.back();
      if (max_cycles > 0 && k == max_cycles) break;
      if (start > kMaxStep) break;  // no step reaches cycle k
      length = AnnealLength(spec.period(), mult, integer_mult, k, length);
      if (mult < 1 && length == 1) {  // every later cycle has length 1 too
        g.tail_start = start;
        g.tail_len = 1 + w;
        g.tail_first_cycle = k;
        break;
      }
      // Each explicit cycle costs a start (and, for the first 4096, a
      // peak), and the vector may hold twice what it uses: charged before
      // it grows.
      if (auto s =
              ctx.Charge(2 * sizeof(int64_t) + (k < 4096 ? 8 : 0), mult_path);
          !s.ok()) {
        return s;
      }
      if (k >= kMaxExplicitCycles) {
        return path.Child("period_mult")
            .Error(absl::StrCat(
                "with period ", spec.period(), ", period_mult ",
                FormatNumber(mult), " needs more than ", kMaxExplicitCycles,
                " distinct cycles to cover 2^62 steps; use a ratio further "
                "from 1, exactly 1, or set max_cycles"));
      }
      g.starts.push_back(SaturatingAdd(start, SaturatingAdd(length, w)));
    }
  }
  if (max_cycles > 0) {
    int64_t explicit_cycles = static_cast<int64_t>(g.starts.size()) - 1;
    if (max_cycles <= explicit_cycles) {
      g.hold_start = g.starts[max_cycles];
    } else if (g.tail_start != kNever) {
      int64_t extra = max_cycles - g.tail_first_cycle;
      g.hold_start = extra > (kNever - g.tail_start) / g.tail_len
                         ? kNever
                         : g.tail_start + extra * g.tail_len;
    }
  }
  // Cache each explicit cycle's peak (its pow), bounded like the starts.
  const size_t explicit_cycles = g.starts.empty() ? 0 : g.starts.size() - 1;
  for (size_t k = 0; k < std::min<size_t>(explicit_cycles, 4096); ++k) {
    g.peaks.push_back(
        decay == 1.0 ? levels.max_lr
                     : levels.max_lr * std::pow(decay, static_cast<double>(k)));
  }
  return CurvePtr(new WarmRestartsCurve(levels, spec, warmup, std::move(g)));
}

}  // namespace anneal
