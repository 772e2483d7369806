// PyTorch's ReduceLROnPlateau as a pure state machine over a job's reports
// (v1::Plateau in schedule.proto). It knows nothing of timelines or
// storage: the caller keeps the counters, feeds each report's value, and
// turns a decision into a timeline change (anneal/model/plateau_edit.h).
//
//   PlateauPolicy policy = *PlateauPolicy::Build(spec.plateau(), max_lr);
//   if (auto why = policy.Count(step, value, &counters)) {
//     std::optional<double> level = policy.Cut(current_level);
//     ...  // a cut (or a restart with RESTART), from the next unserved step
//   }
#ifndef ANNEAL_ENGINE_PLATEAU_H_
#define ANNEAL_ENGINE_PLATEAU_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "anneal/v1/schedule.pb.h"

namespace anneal {

// What a policy remembers between reports (v1::PlateauState's fields).
struct PlateauCounters {
  std::optional<double> best;  // none before the first report
  int64_t bad_reports = 0;     // PyTorch's num_bad_epochs
  int64_t cooldown_left = 0;   // PyTorch's cooldown_counter
  int64_t last_step = -1;      // the highest report step counted
  int64_t reports = 0;
  int64_t decisions = 0;
  // The bad run's values, oldest first (the newest kMaxBadValues), and the
  // step of its first report (-1 when there is no bad run).
  std::vector<double> bad_values;
  int64_t first_bad_step = -1;
};

// Why a policy decided: the report that tipped it and the bad run before.
struct PlateauEvidence {
  int64_t report_step = 0;
  double best = 0;  // +-inf if nothing was ever better
  int64_t bad_reports = 0;
  int64_t first_bad_step = 0;
  std::vector<double> bad_values;  // oldest first, the newest kMaxBadValues
};

class PlateauPolicy {
 public:
  // How many values of a bad run the counters keep as evidence.
  static constexpr size_t kMaxBadValues = 64;

  // Validates `spec` (errors name "plateau.<field>") for a schedule whose
  // peak is `max_lr`, and fills in PyTorch's defaults.
  static absl::StatusOr<PlateauPolicy> Build(const v1::Plateau& spec,
                                             double max_lr);

  // Counts `value`, reported at `step`, as one PyTorch epoch: false and
  // nothing changed unless step > counters->last_step (a retry, another
  // rank's report of the same step, or a late one are not counted again).
  // The evidence when the policy decides now; the counters are then
  // already reset for the cooldown, as PyTorch resets them.
  std::optional<PlateauEvidence> Count(int64_t step, double value,
                                       PlateauCounters* counters) const;

  // The level after a cut from `level`: max(level * factor, min_lr), or
  // nullopt when that lowers it by no more than eps (PyTorch then keeps the
  // LR, although the counters were reset).
  std::optional<double> Cut(double level) const;

  const std::string& metric() const { return metric_; }
  // The RESTART action: a decision starts a warm restart, not a cut.
  bool restarts() const { return restart_; }

 private:
  PlateauPolicy() = default;
  bool IsBetter(double value, double best) const;

  std::string metric_;
  bool maximize_ = false;
  bool absolute_ = false;
  bool restart_ = false;
  double factor_ = 0.1;
  int64_t patience_ = 10;
  double threshold_ = 1e-4;
  int64_t cooldown_ = 0;
  double min_lr_ = 0;
  double eps_ = 1e-8;
};

}  // namespace anneal

#endif  // ANNEAL_ENGINE_PLATEAU_H_
