// One translator per library, behind ImportSchedule (importer.h), and the
// spec-building helpers they share. Internal to anneal/importers.
#ifndef ANNEAL_IMPORTERS_LIBRARY_IMPORTERS_H_
#define ANNEAL_IMPORTERS_LIBRARY_IMPORTERS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "anneal/importers/config_map.h"
#include "anneal/importers/importer.h"
#include "anneal/v1/schedule.pb.h"

namespace anneal {

// `var = *expr`, or return expr's error: the importers read many options in
// a row, each of which may fail.
#define IMPORT_ASSIGN_IMPL(var, expr, tmp) \
  auto tmp = (expr);                       \
  if (!tmp.ok()) return tmp.status();      \
  var = *std::move(tmp)
#define IMPORT_CAT2(a, b) a##b
#define IMPORT_CAT(a, b) IMPORT_CAT2(a, b)
#define ASSIGN_OR_RETURN(var, expr) \
  IMPORT_ASSIGN_IMPL(var, expr, IMPORT_CAT(import_or_, __LINE__))

// Each reads the whole config (`root`) and fills `out`.
absl::Status ImportTorch(ConfigMap& root, ImportResult& out);
absl::Status ImportTimm(ConfigMap& root, ImportResult& out);
absl::Status ImportOptax(ConfigMap& root, ImportResult& out);
absl::Status ImportHf(ConfigMap& root, ImportResult& out);
absl::Status ImportKeras(ConfigMap& root, ImportResult& out);
absl::Status ImportDeepspeed(ConfigMap& root, ImportResult& out);

// The torch translation of one {type, params} scheduler at base LR `lr`
// (also HF's reduce_lr_on_plateau). `metric` names ReduceLROnPlateau's
// metric; `root` is where errors about the type point.
absl::Status ImportTorchScheduler(absl::string_view type, double lr,
                                  ConfigMap& params, absl::string_view metric,
                                  const ConfigMap& root, ImportResult& out);

// INVALID_ARGUMENT "<path>: <why> cannot be reproduced by anneal: <how>".
absl::Status Unsupported(const ConfigMap& map, absl::string_view key,
                         absl::string_view why);
// "type": "<type>" is not one the importer knows; lists `known`.
absl::Status UnknownType(const ConfigMap& map, absl::string_view key,
                         absl::string_view type, absl::string_view library,
                         absl::string_view known);

// A sequence phase of `steps` steps (0: the last, forever) holding `spec`;
// the sequence's max_lr becomes the highest phase max_lr set so far.
void AddPhase(v1::ScheduleSpec& sequence_spec, int64_t steps,
              v1::ScheduleSpec spec, bool restart = false);
// A spec serving `lr` for every step (a phase of constants).
v1::ScheduleSpec ConstantAt(double lr);

}  // namespace anneal

#endif  // ANNEAL_IMPORTERS_LIBRARY_IMPORTERS_H_
