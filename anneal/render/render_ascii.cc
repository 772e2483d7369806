// ASCII chart renderer (see render.h): `annealctl preview -o ascii`.
//
// The plot area is `width` columns by `height` rows. Each column stands for a
// bucket of consecutive steps and draws the whole min..max extent of lr in the
// bucket (joined to the previous bucket's last value), so a warm restart shows
// as a vertical bar even when thousands of steps share one column. Columns
// whose bucket holds a restart get a '^' on the row under the x axis.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "anneal/render/render.h"

namespace anneal {
namespace {

// Bounds that keep a silly --width/--height from allocating gigabytes.
constexpr int kMaxWidth = 1000;
constexpr int kMaxHeight = 500;

// Drops the zero padding and '+' of printf exponents: "1e-03" -> "1e-3".
std::string TidyExponent(std::string s) {
  const size_t e = s.find('e');
  if (e == std::string::npos) return s;
  std::string mantissa = s.substr(0, e);
  std::string exponent = s.substr(e + 1);
  bool negative = false;
  if (!exponent.empty() && (exponent[0] == '-' || exponent[0] == '+')) {
    negative = exponent[0] == '-';
    exponent.erase(0, 1);
  }
  exponent.erase(
      0, std::min(exponent.find_first_not_of('0'), exponent.size() - 1));
  return mantissa + "e" + (negative ? "-" : "") + exponent;
}

// `v` with `digits` significant digits in whichever of fixed or exponent
// notation is shorter (fixed on ties): 0.1, 0.05, 1e-3, 2.5e-5.
std::string Compact(double v, int digits) {
  if (v == 0 || !std::isfinite(v)) return absl::StrFormat("%g", v);
  std::string fixed = TidyExponent(absl::StrFormat("%.*g", digits, v));
  std::string sci = TidyExponent(absl::StrFormat("%.*e", digits - 1, v));
  // %e keeps trailing zeros in the mantissa ("1.00e-3"); %g does not.
  const size_t e = sci.find('e');
  size_t end = sci.find_last_not_of('0', e - 1);
  if (sci[end] == '.') --end;
  sci = sci.substr(0, end + 1) + sci.substr(e);
  return sci.size() < fixed.size() ? sci : fixed;
}

// Writes `text` into `line` at `pos`, growing it as needed.
void Put(std::string* line, size_t pos, const std::string& text) {
  if (line->size() < pos + text.size()) line->resize(pos + text.size(), ' ');
  line->replace(pos, text.size(), text);
}

void TrimRight(std::string* s) {
  const size_t end = s->find_last_not_of(' ');
  s->erase(end == std::string::npos ? 0 : end + 1);
}

}  // namespace

void RenderAscii(const std::vector<StepResult>& steps, int width, int height,
                 std::ostream& out) {
  if (steps.empty()) {
    out << "(no steps)\n";
    return;
  }
  width = std::clamp(width, 1, kMaxWidth);
  height = std::clamp(height, 1, kMaxHeight);
  const int64_t n = static_cast<int64_t>(steps.size());

  // The lr range, ignoring anything non-finite so one bad value cannot turn
  // every row index into garbage.
  double lo = INFINITY;
  double hi = -INFINITY;
  for (const StepResult& r : steps) {
    if (!std::isfinite(r.lr)) continue;
    lo = std::min(lo, r.lr);
    hi = std::max(hi, r.lr);
  }
  if (lo > hi) {
    out << "(no finite lr values in " << n << " steps)\n";
    return;
  }
  const double flat_value = hi;
  const bool flat = !(hi - lo > 1e-12 * std::max(std::fabs(lo), std::fabs(hi)));
  if (flat) {
    // A flat line goes mid-chart, with +-50% around it for the labels,
    // rather than dividing by a zero range.
    const double half = flat_value == 0 ? 1 : std::fabs(flat_value) * 0.5;
    lo = flat_value - half;
    hi = flat_value + half;
  }
  const auto row_of = [&](double v) {
    if (flat || height == 1) return (height - 1) / 2;
    // Halves keep hi - lo finite for any finite lr.
    double f = (hi * 0.5 - v * 0.5) / (hi * 0.5 - lo * 0.5) * (height - 1);
    if (!std::isfinite(f)) f = 0;
    return static_cast<int>(std::clamp(std::lround(f), 0L, long{height - 1}));
  };

  // Buckets by index, not by step value, so huge or sparse step numbers
  // cannot overflow. With fewer steps than columns a step spans several
  // columns; it is only "new" (for restart marks) in the first of them.
  std::vector<std::string> grid(height, std::string(width, ' '));
  std::string marks(width, ' ');
  int64_t restarts = 0;
  int64_t seen_until = 0;  // steps[0, seen_until) already had their columns
  double previous = NAN;
  for (int c = 0; c < width; ++c) {
    const int64_t begin = c * n / width;
    const int64_t end = std::max(begin + 1, (c + 1) * n / width);
    double bmin = previous;
    double bmax = previous;
    for (int64_t i = begin; i < end; ++i) {
      const double v = steps[i].lr;
      if (!std::isfinite(v)) continue;
      bmin = std::isnan(bmin) ? v : std::min(bmin, v);
      bmax = std::isnan(bmax) ? v : std::max(bmax, v);
      previous = v;
    }
    for (int64_t i = std::max(begin, seen_until); i < end; ++i) {
      if (!steps[i].restart) continue;
      marks[c] = '^';
      ++restarts;
    }
    seen_until = std::max(seen_until, end);
    if (std::isnan(bmin)) continue;
    for (int r = row_of(bmax); r <= row_of(bmin); ++r) grid[r][c] = '*';
  }

  // Y labels on about every fourth row, always the top and bottom one. More
  // digits only when neighbouring labels would otherwise read the same.
  const int intervals = std::max(1, (height - 1) / 4);
  std::vector<int> label_rows;
  for (int k = 0; k <= intervals; ++k) {
    const int r = static_cast<int>(
        std::lround(static_cast<double>(k) * (height - 1) / intervals));
    if (label_rows.empty() || label_rows.back() != r) label_rows.push_back(r);
  }
  // A flat line's row is labelled with its exact value, which the rows'
  // evenly spaced values would only approximate.
  if (flat) label_rows = {0, row_of(flat_value), height - 1};
  label_rows.erase(std::unique(label_rows.begin(), label_rows.end()),
                   label_rows.end());
  const auto value_at = [&](int r) {
    // A weighted mean cannot overflow where hi - lo could.
    const double t = height == 1 ? 0 : static_cast<double>(r) / (height - 1);
    return hi * (1 - t) + lo * t;
  };
  std::vector<std::string> labels(height);
  for (int digits = 2; digits <= 8; ++digits) {
    bool distinct = true;
    for (size_t k = 0; k < label_rows.size(); ++k) {
      labels[label_rows[k]] = Compact(value_at(label_rows[k]), digits);
      if (k > 0 && labels[label_rows[k]] == labels[label_rows[k - 1]]) {
        distinct = false;
      }
    }
    if (distinct) break;
  }
  if (flat) labels[row_of(flat_value)] = Compact(flat_value, 6);
  size_t label_width = 0;
  for (const std::string& l : labels)
    label_width = std::max(label_width, l.size());

  for (int r = 0; r < height; ++r) {
    std::string line(label_width - labels[r].size(), ' ');
    line += labels[r];
    line += labels[r].empty() ? " |" : " +";
    line += grid[r];
    TrimRight(&line);
    out << line << '\n';
  }
  const std::string indent(label_width + 2, ' ');
  out << std::string(label_width + 1, ' ') << '+' << std::string(width, '-')
      << '\n';
  if (restarts > 0) {
    std::string line = indent + marks;
    TrimRight(&line);
    out << line << '\n';
  }

  // Step labels at the start, middle and end; the end label is right-aligned
  // under the last column and wins over the middle one when they collide.
  std::string axis;
  const std::string first = absl::StrCat(steps.front().step);
  const std::string last = absl::StrCat(steps.back().step);
  Put(&axis, 0, first);
  size_t last_pos = width > static_cast<int>(last.size())
                        ? static_cast<size_t>(width) - last.size()
                        : 0;
  if (n > 1) {
    last_pos = std::max(last_pos, first.size() + 1);
    const int mid_col = width / 2;
    const std::string mid =
        absl::StrCat(steps[static_cast<size_t>(mid_col * n / width)].step);
    const size_t mid_pos = mid_col > static_cast<int>(mid.size() / 2)
                               ? mid_col - mid.size() / 2
                               : 0;
    if (mid != first && mid != last && mid_pos > first.size() &&
        mid_pos + mid.size() < last_pos) {
      Put(&axis, mid_pos, mid);
    }
    Put(&axis, last_pos, last);
  }
  out << indent << axis << '\n';

  std::string legend = absl::StrFormat("%slr against step, %d step%s", indent,
                                       n, n == 1 ? "" : "s");
  if (restarts > 0) {
    absl::StrAppendFormat(&legend, "; ^ marks a restart (%d)", restarts);
  }
  out << legend << '\n';
  // The thermostat's noise is not plotted (its scale is unrelated to lr's):
  // a line gives its first, last and extreme values.
  const StepResult* first_noise = nullptr;
  const StepResult* last_noise = nullptr;
  double noise_lo = 0, noise_hi = 0;
  for (const StepResult& r : steps) {
    if (!r.has_noise_std) continue;
    if (first_noise == nullptr) {
      first_noise = &r;
      noise_lo = noise_hi = r.noise_std;
    }
    last_noise = &r;
    noise_lo = std::min(noise_lo, r.noise_std);
    noise_hi = std::max(noise_hi, r.noise_std);
  }
  if (first_noise != nullptr) {
    out << absl::StrFormat(
        "%snoise_std %.6g at step %d, %.6g at step %d (min %.6g, max %.6g)\n",
        indent, first_noise->noise_std, first_noise->step,
        last_noise->noise_std, last_noise->step, noise_lo, noise_hi);
  }
}

}  // namespace anneal
