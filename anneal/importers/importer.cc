// ImportSchedule: dispatch by library, then the compile check every imported
// spec passes (see importer.h).
#include "anneal/importers/importer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "anneal/engine/field_error.h"
#include "anneal/engine/schedule.h"
#include "anneal/importers/library_importers.h"

namespace anneal {

const std::vector<std::string>& ImportSources() {
  static const auto* sources = new std::vector<std::string>{
      "torch", "timm", "optax", "hf", "keras", "deepspeed"};
  return *sources;
}

absl::StatusOr<ImportResult> ImportSchedule(absl::string_view from,
                                            absl::string_view config) {
  using Translator = absl::Status (*)(ConfigMap&, ImportResult&);
  Translator translate = nullptr;
  if (from == "torch") translate = ImportTorch;
  if (from == "timm") translate = ImportTimm;
  if (from == "optax") translate = ImportOptax;
  if (from == "hf") translate = ImportHf;
  if (from == "keras") translate = ImportKeras;
  if (from == "deepspeed") translate = ImportDeepspeed;
  if (translate == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--from: must be one of ", absl::StrJoin(ImportSources(), ", "),
        ", got ", QuoteValue(from, 40)));
  }
  absl::StatusOr<ConfigMap> root = ConfigMap::Parse(config);
  if (!root.ok()) return root.status();
  ImportResult result;
  if (absl::Status s = translate(*root, result); !s.ok()) return s;
  // A translation is only as good as the spec it makes: values the library
  // accepts but anneal's rules refuse surface here, in anneal's words.
  if (absl::Status s = Schedule::Validate(result.spec); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the config translates to a spec anneal refuses: ", s.message()));
  }
  return result;
}

absl::Status Unsupported(const ConfigMap& map, absl::string_view key,
                         absl::string_view why) {
  return map.Error(key, absl::StrCat("cannot be reproduced by anneal: ", why));
}

absl::Status UnknownType(const ConfigMap& map, absl::string_view key,
                         absl::string_view type, absl::string_view library,
                         absl::string_view known) {
  return map.Error(
      key, absl::StrCat("must be a ", library, " scheduler anneal imports (",
                        known, "), got ", QuoteValue(type, 40)));
}

void AddPhase(v1::ScheduleSpec& sequence_spec, int64_t steps,
              v1::ScheduleSpec spec, bool restart) {
  v1::Sequence::Part* part = sequence_spec.mutable_sequence()->add_phases();
  part->set_steps(steps);
  *part->mutable_spec() = std::move(spec);
  part->set_restart(restart);
  // The sequence's own max_lr is required; phases that set theirs keep it.
  if (part->spec().has_max_lr() &&
      part->spec().max_lr() > sequence_spec.max_lr()) {
    sequence_spec.set_max_lr(part->spec().max_lr());
  }
}

v1::ScheduleSpec ConstantAt(double lr) {
  v1::ScheduleSpec spec;
  spec.set_max_lr(lr);
  spec.mutable_constant();
  return spec;
}

}  // namespace anneal
