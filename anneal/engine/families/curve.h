// Internal: the interface every schedule family implements.
//
// A Curve is an immutable function of the local step t >= 0 built from one
// validated sub-message of a ScheduleSpec. It yields the unscaled LR, the
// momentum mix factor and the cycle bookkeeping; the Schedule adds restart
// flags, momentum, bias correction, batch scaling and the thermostat on top.
// Curves never allocate in Eval and never fail: all checks happen when they
// are built (curves.h).
#ifndef ANNEAL_ENGINE_FAMILIES_CURVE_H_
#define ANNEAL_ENGINE_FAMILIES_CURVE_H_

#include <cstdint>
#include <string>

#include "anneal/engine/asymptotics.h"
#include "anneal/engine/step.h"
#include "anneal/v1/schedule.pb.h"

namespace anneal {

inline constexpr double kPi = 3.141592653589793;  // == Python's math.pi

// What a curve reports for one step.
struct CurvePoint {
  double lr = 0;
  // Where the LR sits between the curve's trough (0) and its peak (1). The
  // momentum is max - (max - base) * h, i.e. it moves inversely to the LR, as
  // CyclicLR and OneCycleLR cycle it.
  double h = 0;
  // The momentum itself, when the family defines it with its own expression
  // (CyclicLR, OneCycleLR: so it equals PyTorch to the last bit); negative
  // otherwise. The Schedule resets it before every Eval.
  double momentum = -1;
  int64_t cycle = 0;
  int64_t step_in_cycle = 0;
  int64_t cycle_length = 0;  // 0: this cycle never ends
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
  bool snapshot = false;  // last step of a cycle
};

// Peak and floor in force for a curve (inherited inside sequence phases).
struct Levels {
  double max_lr = 0;
  double min_lr = 0;
  // The top-level spec's momentum range, when it has one.
  bool has_momentum = false;
  double momentum_base = 0;
  double momentum_max = 0;
};

class Curve {
 public:
  virtual ~Curve() = default;

  // Evaluates local step t in [0, kMaxStep].
  virtual void Eval(int64_t t, CurvePoint* out) const = 0;

  // Asymptotic behaviour of the LR sequence.
  virtual Asymptotics Tail() const = 0;

  // First step from which the curve is constant forever (phase HOLD), or -1
  // if it never settles. Sets the default analysis horizon.
  virtual int64_t SettlesAt() const { return -1; }
};

// Asymptotics helpers shared by families.
Asymptotics TailConstant(double value, const std::string& what);
Asymptotics TailGeometric(double floor, const std::string& what);

}  // namespace anneal

#endif  // ANNEAL_ENGINE_FAMILIES_CURVE_H_
