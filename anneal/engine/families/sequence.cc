// Sequence: schedules joined in time (optax join_schedules, SequentialLR).
//
// Phase k runs its own schedule on local time t - boundary_k. A phase marked
// `restart` begins a new cycle (restart flag, momentum reset), and so does a
// phase that starts at its peak right after an annealing, holding or flat LR
// when the LR jumps up there: that is a warm restart whatever the spec says,
// and momentum carried into it meets the largest LR (the seed's "toxic
// momentum"). Otherwise its first cycle continues the cycle in progress, so
// cycle numbers and step_in_cycle stay continuous across the boundary, and a
// cycle that spans boundaries reports the same cycle_length (its whole
// length across phases, 0 if it never ends) on every step, with a single
// snapshot on its last step.
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "anneal/engine/families/curves.h"

namespace anneal {
namespace {

constexpr int kMaxPhases = 64;

struct Part {
  int64_t begin = 0;  // global first step
  int64_t end = 0;    // global step after the last (kMaxStep+1: last)
  CurvePtr curve;
  int64_t cycle_offset = 0;  // added to the child's cycle index
  int64_t carry = 0;         // steps the merged first cycle already had
  bool next_restarts = false;
  bool last = false;
  // Not for the last part: the child's cycle in progress at the part's last
  // step (the phase's end cuts it), where that cycle began (global), and its
  // whole length across the phases it spans (0: it never ends).
  int64_t cut_cycle = 0;
  int64_t tail_begin = 0;
  int64_t tail_length = 0;
  // The child's cycle_length at local step 0 (its first cycle's length).
  int64_t first_length = 0;
};

class SequenceCurve final : public Curve {
 public:
  explicit SequenceCurve(std::vector<Part> parts) : parts_(std::move(parts)) {}

  void Eval(int64_t t, CurvePoint* out) const override {
    auto it = std::upper_bound(
        parts_.begin(), parts_.end(), t,
        [](int64_t step, const Part& p) { return step < p.begin; });
    const Part& part = *(it - 1);
    const int64_t local = t - part.begin;
    part.curve->Eval(local, out);
    if (out->cycle == 0 && part.carry > 0) {
      out->step_in_cycle += part.carry;
      if (out->cycle_length != 0) out->cycle_length += part.carry;
    }
    if (!part.last && out->cycle == part.cut_cycle) {
      // The cycle the phase's end cuts: it ends at the boundary (a restart
      // follows) or in a later phase, not where the child would end it.
      out->cycle_length = part.tail_length;
      out->snapshot = t == part.end - 1 && part.next_restarts;
    }
    out->cycle += part.cycle_offset;
  }

  Asymptotics Tail() const override { return parts_.back().curve->Tail(); }

  int64_t SettlesAt() const override {
    int64_t settles = parts_.back().curve->SettlesAt();
    return settles < 0 ? -1 : parts_.back().begin + settles;
  }

 private:
  std::vector<Part> parts_;
};

// A boundary the spec does not mark as a restart that is one all the same:
// the previous phase ends annealing, holding or flat, the next starts at its
// peak (not warming up or rising to it), and the LR goes up. A warmup phase
// followed by its decay, or a flat phase followed by a decay from the same
// LR (SequentialLR's usual uses), stay one cycle. A flat low phase followed
// by a jump to a higher peak is a restart: counted as one cycle, its long
// contraction at the low LR would hide an unstable peak from the analysis.
bool JumpsToPeak(const CurvePoint& end, const CurvePoint& start) {
  return (end.phase == v1::ANNEAL || end.phase == v1::HOLD ||
          end.phase == v1::STABLE) &&
         start.phase != v1::WARMUP && start.phase != v1::RISE &&
         start.h >= 1.0 && start.lr > end.lr;
}

// The phases of a sequence, one nesting level down (MakeSequence counts it).
absl::StatusOr<CurvePtr> MakeSequenceParts(const v1::Sequence& spec,
                                           const Levels& levels,
                                           const FieldPath& path,
                                           BuildContext& ctx) {
  FieldPath phases_path = path.Child("phases");
  const int n = spec.phases_size();
  if (n < 1 || n > kMaxPhases) {
    return phases_path.Error(
        absl::StrCat("must have 1 to ", kMaxPhases, " phases, got ", n));
  }
  std::vector<Part> parts(n);
  int64_t begin = 0;
  for (int i = 0; i < n; ++i) {
    const v1::Sequence::Part& phase = spec.phases(i);
    FieldPath p = phases_path.Index(i);
    const bool last = i == n - 1;
    if (last) {
      if (phase.steps() != 0) {
        return p.Child("steps").Error(
            absl::StrCat("must be 0 for the last phase (it runs forever), got ",
                         phase.steps()));
      }
    } else {
      if (auto s = RequireAtLeast(p.Child("steps"), phase.steps(), 1);
          !s.ok()) {
        return s;
      }
      if (phase.steps() > kMaxStep - begin) {
        return p.Child("steps").Error(
            absl::StrCat("phases must end by step 2^62; this one starts at ",
                         begin, " and lasts ", phase.steps()));
      }
    }
    if (!phase.has_spec()) return p.Child("spec").Error("is required");
    FieldPath spec_path = p.Child("spec");
    const v1::ScheduleSpec& child = phase.spec();
    if (child.has_momentum() || child.has_batch_scaling() ||
        child.has_thermostat() || child.has_lr_noise() || child.has_plateau()) {
      const char* field = child.has_momentum()        ? "momentum"
                          : child.has_batch_scaling() ? "batch_scaling"
                          : child.has_thermostat()    ? "thermostat"
                          : child.has_lr_noise()      ? "lr_noise"
                                                      : "plateau";
      return spec_path.Child(field).Error(
          "is only allowed at the top level of a spec");
    }
    if (i == 0 && phase.restart()) {
      return p.Child("restart").Error(
          "must be false for the first phase (nothing to restart from)");
    }
    auto curve = BuildCurve(child, &levels, spec_path, ctx);
    if (!curve.ok()) return curve.status();
    parts[i].begin = begin;
    parts[i].end = last ? kMaxStep + 1 : begin + phase.steps();
    parts[i].curve = *std::move(curve);
    parts[i].last = last;
    begin = parts[i].end;
  }
  // Cycle bookkeeping across boundaries.
  for (int i = 0; i < n; ++i) {
    CurvePoint first;
    parts[i].curve->Eval(0, &first);
    parts[i].first_length = first.cycle_length;
  }
  for (int i = 1; i < n; ++i) {
    Part& prev = parts[i - 1];
    CurvePoint end, start;
    prev.curve->Eval(prev.end - 1 - prev.begin, &end);
    parts[i].curve->Eval(0, &start);
    const int64_t prev_last_cycle = prev.cycle_offset + end.cycle;
    const bool restart = spec.phases(i).restart() || JumpsToPeak(end, start);
    const int64_t end_in_cycle =
        end.step_in_cycle + (end.cycle == 0 ? prev.carry : 0);
    prev.next_restarts = restart;
    prev.cut_cycle = end.cycle;
    prev.tail_begin = prev.end - 1 - end_in_cycle;
    parts[i].cycle_offset = prev_last_cycle + (restart ? 1 : 0);
    if (!restart) parts[i].carry = end_in_cycle + 1;
  }
  // Where each cut cycle ends: at the boundary when a restart follows, else
  // where the next phase's first cycle ends (which the phase after may cut
  // again). Lengths saturate at kMaxStep + 1 steps.
  for (int i = n - 2; i >= 0; --i) {
    Part& part = parts[i];
    const Part& next = parts[i + 1];
    int64_t end;  // global step after the cycle's last; 0: never
    if (part.next_restarts) {
      end = part.end;
    } else if (!next.last && next.cut_cycle == 0) {
      end = next.tail_length == 0 ? 0 : next.tail_begin + next.tail_length;
    } else {
      end = next.first_length == 0
                ? 0
                : next.begin +
                      std::min(next.first_length, kMaxStep + 1 - next.begin);
    }
    part.tail_length = end == 0 ? 0 : end - part.tail_begin;
  }
  return CurvePtr(new SequenceCurve(std::move(parts)));
}

}  // namespace

absl::StatusOr<CurvePtr> MakeSequence(const v1::Sequence& spec,
                                      const Levels& levels,
                                      const FieldPath& path,
                                      BuildContext& ctx) {
  if (auto s = ctx.EnterSequence(path); !s.ok()) return s;
  absl::StatusOr<CurvePtr> curve = MakeSequenceParts(spec, levels, path, ctx);
  ctx.LeaveSequence();
  return curve;
}

}  // namespace anneal
