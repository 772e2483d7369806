// Renderers of an evaluated step range (annealctl's preview and lr): CSV and
// JSON for scripts, an ASCII chart for the terminal, an SVG plot for people.
// All take the steps in order and write to a stream; none evaluates
// anything or touches a file.
#ifndef ANNEAL_RENDER_RENDER_H_
#define ANNEAL_RENDER_RENDER_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "anneal/engine/step.h"

namespace anneal {

// `text` escaped for XML and HTML content and attribute values (& < > " '),
// with control characters, which XML 1.0 does not allow, as spaces.
std::string MarkupEscape(const std::string& text);

// Checks a format: csv, json, ascii or svg (the error names -o/--output).
absl::Status CheckFormat(const std::string& format);

// Renders `steps` in `format` (checked) to `out`; `title` labels the SVG
// plot.
absl::Status RenderSteps(const std::vector<StepResult>& steps,
                         const std::string& format, const std::string& title,
                         std::ostream& out);

// One row per step under the header
//
//   step,lr,momentum,beta1_bias_correction,cycle,step_in_cycle,
//     cycle_length,phase,restart,snapshot        (one line in the output)
//
// Momentum columns are empty when not scheduled, restart and snapshot are
// 0/1, and numbers round-trip exactly (%.17g). When any step carries the
// thermostat's noise_std, a last column `noise_std` is added.
void RenderCsv(const std::vector<StepResult>& steps, std::ostream& out);

// A JSON array of StepResult objects (protobuf's JSON mapping, snake_case).
void RenderJson(const std::vector<StepResult>& steps, std::ostream& out);

// A terminal chart of lr against step: `width` x `height` characters of plot
// area, y axis labels, restarts marked below the axis, and a noise_std line
// under the legend when the steps carry the thermostat's noise.
void RenderAscii(const std::vector<StepResult>& steps, int width, int height,
                 std::ostream& out);

// A standalone SVG document: lr (and momentum on a right axis when
// scheduled) against step, with axes, ticks, restarts and snapshots marked.
void RenderSvg(const std::vector<StepResult>& steps, const std::string& title,
               std::ostream& out);

// What a plot of a served schedule adds (the status page's).
struct SvgMarks {
  // Steps where the timeline changed, each with a short label ("update",
  // "restart"): labelled vertical lines.
  std::vector<std::pair<int64_t, std::string>> changes;
  // The highest step served: a solid vertical line.
  std::optional<int64_t> current;
  // A reported training metric, (step, value) in step order, on the right
  // axis in place of momentum; points outside the steps' range are left
  // out.
  std::string reported_name;
  std::vector<std::pair<int64_t, double>> reported;
};
void RenderSvg(const std::vector<StepResult>& steps, const std::string& title,
               const SvgMarks& marks, std::ostream& out);

}  // namespace anneal

#endif  // ANNEAL_RENDER_RENDER_H_
