// SGDR: cosine (or linear) annealing with warm restarts.
//
// Cycle k anneals over L_k = period * period_mult^k steps, optionally
// preceded by its own warmup of W steps. Two length laws (CycleLengths):
// INTEGER, exact integer products for an integer period_mult (PyTorch's T_i)
// and max(1, round(...)) for a real one; REAL, the real lengths and real
// starts timm and Keras use, each cycle owning the steps at or after its real
// start. The cycle containing t is found by comparison with a table of cycle
// starts (then a tail of equal cycles: period_mult == 1, or a shrinking
// period that reached 1), never by floor(log(...)): PyTorch's and timm's
// log misplaces restarts (T_0=1, T_mult=3, t=121); a table cannot.
//
// Two decay laws (DecayLaw) for peak_decay d: the peak max_lr * d^k above a
// fixed floor (timm), or the amplitude (max_lr - min_lr) * d^k (Keras).
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
  // REAL lengths: cycle k's real start and real anneal length.
  std::vector<double> real_starts;
  std::vector<double> real_lengths;
  std::vector<double> peaks;  // top of explicit cycle k's curve (cached pow)
  std::vector<double> amplitudes;  // its height above min_lr
  int64_t tail_start = kNever;     // equal cycles of tail_len from here
  int64_t tail_len = 1;
  int64_t tail_first_cycle = 0;
  int64_t hold_start = kNever;  // max_cycles reached: LR holds min_lr
};

int64_t SaturatingAdd(int64_t a, int64_t b) {
  return a > kNever - b ? kNever : a + b;
}

// The top of cycle k's curve and its height above min_lr, by the decay law.
void CycleTop(const Levels& levels, double decay, bool amplitude_law, int64_t k,
              double* peak, double* amplitude) {
  // d == 1 multiplies exactly, so no decay leaves max_lr as it is.
  const double d = decay == 1.0 ? 1.0 : std::pow(decay, static_cast<double>(k));
  if (amplitude_law) {
    *amplitude = (levels.max_lr - levels.min_lr) * d;
    *peak = levels.min_lr + *amplitude;
  } else {
    *peak = levels.max_lr * d;
    *amplitude = *peak - levels.min_lr;
  }
}

class WarmRestartsCurve final : public Curve {
 public:
  WarmRestartsCurve(const Levels& levels, const v1::WarmRestarts& spec,
                    const v1::Warmup* warmup, Geometry geometry)
      : levels_(levels),
        mult_(spec.has_period_mult() ? spec.period_mult() : 1.0),
        decay_(spec.has_peak_decay() ? spec.peak_decay() : 1.0),
        max_cycles_(spec.max_cycles()),
        shape_(spec.shape() == v1::WarmRestarts::SHAPE_UNSPECIFIED
                   ? v1::WarmRestarts::COSINE
                   : spec.shape()),
        power_(spec.has_power() ? spec.power() : 1.0),
        tanh_lower_(spec.has_tanh_lower() ? spec.tanh_lower() : -7.0),
        tanh_upper_(spec.has_tanh_upper() ? spec.tanh_upper() : 3.0),
        k_decay_(spec.has_k_decay() ? spec.k_decay() : 1.0),
        amplitude_law_(spec.decay_law() == v1::WarmRestarts::AMPLITUDE),
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
    double peak, amplitude;
    if (k < static_cast<int64_t>(g_.peaks.size())) {
      peak = g_.peaks[static_cast<size_t>(k)];
      amplitude = g_.amplitudes[static_cast<size_t>(k)];
    } else {
      Top(k, &peak, &amplitude);
    }
    out->cycle = k;
    out->step_in_cycle = t_cur;
    out->cycle_length = length;
    out->snapshot = t_cur == length - 1;
    if (t_cur < warmup_steps_) {
      out->lr = WarmupLr(warmup_, t_cur, peak, &out->h);
      out->phase = v1::WARMUP;
      return;
    }
    double x, span;
    if (!g_.real_starts.empty()) {
      // The position in the real cycle, as timm's t_cur / t_i.
      x = static_cast<double>(t) - g_.real_starts[static_cast<size_t>(k)];
      span = g_.real_lengths[static_cast<size_t>(k)];
    } else {
      x = static_cast<double>(t_cur - warmup_steps_);
      span = static_cast<double>(length - warmup_steps_);
    }
    // The position x / span, as timm writes it with k_decay: t_curr ** k /
    // t_i ** k; kept as a numerator and a denominator so that the cosine's
    // argument is PyTorch's pi * T_cur / T_i, rounding for rounding.
    const double num = k_decay_ == 1.0 ? x : std::pow(x, k_decay_);
    const double den = k_decay_ == 1.0 ? span : std::pow(span, k_decay_);
    // Past where span^k overflows (a cycle near 1e18 steps, a large
    // k_decay), timm's form is inf / inf; (x / span)^k is the same number,
    // computed finitely (found by fuzz/spec_proto_fuzzer).
    const bool finite = std::isfinite(den);
    const double u = finite ? num / den : std::pow(x / span, k_decay_);
    // One expression for every shape: lr = min + amplitude * f. For the
    // cosine f = (1 + cos) / 2, and halving is exact, so this is PyTorch's
    // eta_min + (base_lr - eta_min) * (1 + cos) / 2 bit for bit.
    double f;
    switch (shape_) {
      case v1::WarmRestarts::LINEAR:
        f = 1 - u;
        break;
      case v1::WarmRestarts::POLYNOMIAL:
        // timm: (1 - t_curr^k / t_i^k) ** power
        f = std::pow(1 - u, power_);
        break;
      case v1::WarmRestarts::TANH:
        // timm: 0.5 * (1 - tanh(lb * (1 - tr) + ub * tr))
        f = 0.5 * (1 - std::tanh(tanh_lower_ * (1. - u) + tanh_upper_ * u));
        break;
      default: {
        // pi * num can overflow where num does not (num near 1e308 with a
        // large k_decay; found by fuzz/spec_proto_fuzzer): then pi * u.
        const double pi_num = kPi * num;
        f = (1 + std::cos(finite && std::isfinite(pi_num) ? pi_num / den
                                                          : kPi * u)) /
            2;
      }
    }
    out->lr = levels_.min_lr + amplitude * f;
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
    // The amplitude law decays the same sums as the peak law: with
    // min_lr = 0 (the only case left here) the two coincide.
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
  void Top(int64_t k, double* peak, double* amplitude) const {
    CycleTop(levels_, decay_, amplitude_law_, k, peak, amplitude);
  }

  int64_t CycleStart(int64_t k) const {
    if (k < static_cast<int64_t>(g_.starts.size())) return g_.starts[k];
    return g_.tail_start + (k - g_.tail_first_cycle) * g_.tail_len;
  }

  Levels levels_;
  double mult_;
  double decay_;
  int64_t max_cycles_;
  v1::WarmRestarts::Shape shape_;
  double power_;
  double tanh_lower_;
  double tanh_upper_;
  double k_decay_;
  bool amplitude_law_;
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

// REAL lengths: cycle k starts at S_k = period * (1 - m^k) / (1 - m) and
// lasts period * m^k, both computed as timm does (in doubles); step t is in
// the last cycle whose S_k <= t, found by comparing with the table of
// ceil(S_k), so an integer start (period 10, m 1.5: 10, 25) begins its cycle
// exactly there. Every cycle lasts >= 1 step (checked by the caller for
// m < 1), so the integer starts increase strictly.
absl::Status RealGeometry(int64_t period, double mult, int64_t max_cycles,
                          const FieldPath& mult_path, BuildContext& ctx,
                          Geometry* g) {
  const double p = static_cast<double>(period);
  const double limit = static_cast<double>(kMaxStep);
  g->starts.assign(1, 0);
  g->real_starts.assign(1, 0.0);
  for (int64_t k = 0;; ++k) {
    const double mk = std::pow(mult, static_cast<double>(k));
    g->real_lengths.push_back(mk * p);
    if (max_cycles > 0 && k + 1 == max_cycles) break;
    if (auto s =
            ctx.Charge(4 * sizeof(int64_t) + (k < 4096 ? 16 : 0), mult_path);
        !s.ok()) {
      return s;
    }
    if (k >= kMaxExplicitCycles) {
      return mult_path.Error(absl::StrCat(
          "with period ", period, ", period_mult ", FormatNumber(mult),
          " needs more than ", kMaxExplicitCycles,
          " distinct cycles to cover 2^62 steps; use a ratio further from 1, "
          "exactly 1, or set max_cycles"));
    }
    const double next = (1 - mk * mult) / (1 - mult) * p;
    if (!(next <= limit)) {  // no step reaches cycle k + 1
      g->starts.push_back(kNever);
      return absl::OkStatus();
    }
    g->real_starts.push_back(next);
    g->starts.push_back(static_cast<int64_t>(std::ceil(next)));
  }
  // max_cycles: the hold begins where cycle max_cycles would.
  const double end =
      (1 - std::pow(mult, static_cast<double>(max_cycles))) / (1 - mult) * p;
  g->starts.push_back(end <= limit ? static_cast<int64_t>(std::ceil(end))
                                   : kNever);
  return absl::OkStatus();
}

// The options of the shapes: each only with its shape, each in range.
absl::Status CheckShapeOptions(const v1::WarmRestarts& spec,
                               const FieldPath& path) {
  const v1::WarmRestarts::Shape shape = spec.shape();
  if (spec.has_power()) {
    const FieldPath field = path.Child("power");
    if (shape != v1::WarmRestarts::POLYNOMIAL) {
      return field.Error("is only for shape POLYNOMIAL");
    }
    if (auto s = RequireAbove(field, spec.power(), 0); !s.ok()) return s;
  }
  if (spec.has_tanh_lower() || spec.has_tanh_upper()) {
    const FieldPath field =
        path.Child(spec.has_tanh_lower() ? "tanh_lower" : "tanh_upper");
    if (shape != v1::WarmRestarts::TANH) {
      return field.Error("is only for shape TANH");
    }
    const double lower = spec.has_tanh_lower() ? spec.tanh_lower() : -7.0;
    const double upper = spec.has_tanh_upper() ? spec.tanh_upper() : 3.0;
    for (auto [name, v] :
         {std::pair{"tanh_lower", lower}, std::pair{"tanh_upper", upper}}) {
      if (auto s = RequireFinite(path.Child(name), v); !s.ok()) return s;
    }
    if (!(lower < upper)) {
      return path.Child("tanh_upper")
          .Error(absl::StrCat("must be > tanh_lower (", FormatNumber(lower),
                              "), got ", FormatNumber(upper)));
    }
  }
  if (spec.has_k_decay()) {
    if (auto s = RequireAbove(path.Child("k_decay"), spec.k_decay(), 0);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
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
  if (auto s = RequireAtLeast(path.Child("max_cycles"), spec.max_cycles(), 0);
      !s.ok()) {
    return s;
  }
  const int64_t max_cycles = spec.max_cycles();
  if (!v1::WarmRestarts::Shape_IsValid(spec.shape())) {
    return path.Child("shape").Error(absl::StrCat(
        "must be COSINE, LINEAR, POLYNOMIAL or TANH, got ", spec.shape()));
  }
  if (auto s = CheckShapeOptions(spec, path); !s.ok()) return s;
  if (!v1::WarmRestarts::DecayLaw_IsValid(spec.decay_law())) {
    return path.Child("decay_law")
        .Error(
            absl::StrCat("must be PEAK or AMPLITUDE, got ", spec.decay_law()));
  }
  const bool amplitude_law = spec.decay_law() == v1::WarmRestarts::AMPLITUDE;
  double decay = spec.has_peak_decay() ? spec.peak_decay() : 1.0;
  FieldPath decay_path = path.Child("peak_decay");
  if (auto s = RequireAbove(decay_path, decay, 0); !s.ok()) return s;
  if (decay > 1) {
    // Growing peaks (Keras m_mul > 1) must stop growing somewhere.
    if (max_cycles == 0) {
      return decay_path.Error(
          absl::StrCat("above 1 (growing peaks) requires max_cycles, got ",
                       FormatNumber(decay), " with unlimited cycles"));
    }
    double last_peak, amplitude;
    CycleTop(levels, decay, amplitude_law, max_cycles - 1, &last_peak,
             &amplitude);
    if (!(last_peak <= kMaxLrLimit)) {
      return decay_path.Error(absl::StrCat(
          "must keep the last cycle's peak <= ", FormatNumber(kMaxLrLimit),
          ", got ", FormatNumber(decay), " (peak ", FormatNumber(last_peak),
          " in cycle ", max_cycles - 1, ")"));
    }
    ctx.RaiseCeiling(last_peak);
  }
  const int64_t w = warmup ? warmup->steps() : 0;
  if (!v1::WarmRestarts::CycleLengths_IsValid(spec.cycle_lengths())) {
    return path.Child("cycle_lengths")
        .Error(absl::StrCat("must be INTEGER or REAL, got ",
                            spec.cycle_lengths()));
  }
  const bool real_lengths =
      spec.cycle_lengths() == v1::WarmRestarts::REAL && mult != 1.0;
  if (real_lengths) {
    const FieldPath lengths_path = path.Child("cycle_lengths");
    if (w > 0) {
      return lengths_path.Error(
          "REAL cannot have warmup.every_cycle (timm and Keras have no "
          "per-cycle warmup); use INTEGER, or a warmup without every_cycle");
    }
    if (mult < 1) {
      // Real lengths shrink below a step, and their starts converge.
      if (max_cycles == 0) {
        return lengths_path.Error(absl::StrCat(
            "REAL with period_mult ", FormatNumber(mult),
            " < 1 requires max_cycles (the cycles shrink to nothing before "
            "step ",
            FormatNumber(static_cast<double>(spec.period()) / (1 - mult)),
            ")"));
      }
      const double last = static_cast<double>(spec.period()) *
                          std::pow(mult, static_cast<double>(max_cycles - 1));
      if (!(last >= 1)) {
        return lengths_path.Error(absl::StrCat(
            "REAL needs every cycle to last at least one step, got ",
            FormatNumber(last), " steps for cycle ", max_cycles - 1,
            " (period ", spec.period(), ", period_mult ", FormatNumber(mult),
            "); lower max_cycles"));
      }
    }
  }
  const bool integer_mult = mult >= 1 && mult == std::floor(mult) && mult < 1e9;

  Geometry g;
  const FieldPath mult_path = path.Child("period_mult");
  if (real_lengths) {
    if (auto s =
            RealGeometry(spec.period(), mult, max_cycles, mult_path, ctx, &g);
        !s.ok()) {
      return s;
    }
  } else if (mult == 1.0) {
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
  // Cache each explicit cycle's top (its pow), bounded like the starts.
  const size_t explicit_cycles = g.starts.empty() ? 0 : g.starts.size() - 1;
  for (size_t k = 0; k < std::min<size_t>(explicit_cycles, 4096); ++k) {
    double peak, amplitude;
    CycleTop(levels, decay, amplitude_law, static_cast<int64_t>(k), &peak,
             &amplitude);
    g.peaks.push_back(peak);
    g.amplitudes.push_back(amplitude);
  }
  return CurvePtr(new WarmRestartsCurve(levels, spec, warmup, std::move(g)));
}

}  // namespace anneal
