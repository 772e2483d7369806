// Importers: a scheduler config of PyTorch, timm, optax, Hugging Face, Keras
// or DeepSpeed, translated into the anneal spec that serves the same LRs.
//
//   absl::StatusOr<ImportResult> r = ImportSchedule("hf", R"({
//       "lr_scheduler_type": "cosine", "learning_rate": 3e-4,
//       "num_training_steps": 10000, "warmup_steps": 500})");
//   // r->spec: {max_lr: 3e-4, warmup: {steps: 500}, cosine: {period: 9500}}
//
// A config anneal cannot reproduce is refused with INVALID_ARGUMENT naming
// the option and why; an option an importer does not know is refused too.
// The accepted formats, per library, are in docs/integrations.md
// ("Importing a config"). Step t of the spec is the t-th optimizer update
// counted from 0, whatever the library's own index convention.
#ifndef ANNEAL_IMPORTERS_IMPORTER_H_
#define ANNEAL_IMPORTERS_IMPORTER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "anneal/v1/schedule.pb.h"

namespace anneal {

struct ImportResult {
  v1::ScheduleSpec spec;  // valid: it compiles
  // Where the spec's signals or ends differ from the library's by design,
  // one sentence each (the LRs in the range the library defines are equal).
  std::vector<std::string> notes;
};

// The `from` values ImportSchedule accepts: "torch", "timm", "optax", "hf",
// "keras", "deepspeed".
const std::vector<std::string>& ImportSources();

// Translates `config` (JSON or YAML text) written for library `from`.
absl::StatusOr<ImportResult> ImportSchedule(absl::string_view from,
                                            absl::string_view config);

}  // namespace anneal

#endif  // ANNEAL_IMPORTERS_IMPORTER_H_
