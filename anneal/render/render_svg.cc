// SVG plot renderer (see render.h): `annealctl preview -o svg`.
//
// One self-contained 900x420 document with no scripts, CSS or external fonts,
// so it looks the same in a browser, an image viewer or rsvg-convert. Curves
// are downsampled to the min and max of each pixel column: a million steps
// give the same picture (restart cliffs included) as a few thousand points.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "anneal/render/render.h"

namespace anneal {
namespace {

constexpr int kWidth = 900;
constexpr int kHeight = 420;
// Curves stay this far inside the frame so a peak never hides in its border.
constexpr double kInset = 8;
// Above this many restart (or snapshot) marks, full-size marks would paint
// the plot over; they shrink to faint ticks along the bottom instead.
constexpr size_t kManyMarks = 200;

constexpr char kLrColour[] = "#1f77b4";
constexpr char kMomentumColour[] = "#e8710a";
constexpr char kRestartColour[] = "#d62728";
constexpr char kSnapshotColour[] = "#2ca02c";
constexpr char kChangeColour[] = "#9467bd";
constexpr char kCurrentColour[] = "#222222";
constexpr char kReportedColour[] = "#8c564b";

std::string Escape(const std::string& text) { return MarkupEscape(text); }

// Cuts `s` to about `max_bytes` without splitting a UTF-8 sequence.
std::string Truncate(const std::string& s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end) + "...";
}

// `v` in exponent notation with `digits` significant digits at most and no
// padding: 1e-3, 2.5e-5, 4.6e18.
std::string Sci(double v, int digits) {
  const std::string s = absl::StrFormat("%.*e", digits - 1, v);
  const size_t e = s.find('e');
  size_t end = s.find_last_not_of('0', e - 1);
  if (s[end] == '.') --end;
  std::string exponent = s.substr(e + 1);
  const bool negative = exponent[0] == '-';
  exponent.erase(0, 1);  // the sign
  exponent.erase(
      0, std::min(exponent.find_first_not_of('0'), exponent.size() - 1));
  return absl::StrCat(s.substr(0, end + 1), negative ? "e-" : "e", exponent);
}

// Picks among 1/2/5 x 10^k: 5-8 ticks if some step gives that (then the one
// widening the range least), otherwise the count nearest to it.
double TickScore(int64_t count, double stretch) {
  if (count >= 5 && count <= 8) return stretch;
  return 100 + std::fabs(static_cast<double>(count) - 6.5);
}

// A value axis (lr, momentum): [lo, hi] widened to multiples of `step`.
struct ValueAxis {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> ticks;
};

// Half of hi - lo: finite for any finite lo and hi, which hi - lo is not.
double HalfSpan(double lo, double hi) { return hi * 0.5 - lo * 0.5; }

// True when [lo, hi] is too narrow to divide into ticks.
bool Degenerate(double lo, double hi) {
  return !(HalfSpan(lo, hi) > 0.5e-9 * std::max(std::fabs(lo), std::fabs(hi)));
}

ValueAxis NiceValueAxis(double lo, double hi) {
  if (Degenerate(lo, hi)) {
    // Callers widen flat ranges themselves; this only keeps garbage input
    // from producing billions of ticks.
    const double pad = lo != 0 ? std::fabs(lo) * 0.1 : 1;
    hi = lo + pad;
    lo -= pad;
  }
  ValueAxis best;
  double best_score = std::numeric_limits<double>::infinity();
  const double half = HalfSpan(lo, hi);
  const int e = static_cast<int>(std::floor(std::log10(half / 3)));
  for (int k = e - 1; k <= e + 1; ++k) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double step = m * std::pow(10.0, k);
      const double first = std::floor(lo / step + 1e-9);
      const double last = std::ceil(hi / step - 1e-9);
      const int64_t count = static_cast<int64_t>(last - first) + 1;
      if (count > 100) continue;
      const double score =
          TickScore(count, (last - first) * (step * 0.5) / half);
      if (score > best_score) continue;  // ties go to the larger step
      best_score = score;
      best = {first * step, last * step, step, {}};
      // Multiplying (not accumulating) keeps 0.3 from becoming 0.30000000004.
      for (int64_t i = 0; i < count; ++i) {
        const double tick = (first + i) * step;
        if (std::isfinite(tick)) best.ticks.push_back(tick);
      }
    }
  }
  return best;
}

// Labels for one value axis, all in the same notation: fixed while that
// stays short (0.02, 0.85), exponent otherwise (2e-5, 1.5e-4).
std::vector<std::string> ValueLabels(const ValueAxis& axis) {
  const double biggest = std::max(std::fabs(axis.lo), std::fabs(axis.hi));
  const int digits =
      std::clamp(static_cast<int>(std::floor(std::log10(biggest) + 1e-9) -
                                  std::floor(std::log10(axis.step) + 1e-9)) +
                     1,
                 1, 15);
  std::vector<std::string> fixed, sci;
  bool use_fixed = true;
  for (double v : axis.ticks) {
    if (std::fabs(v) < axis.step * 1e-6) v = 0;
    fixed.push_back(absl::StrFormat("%.*g", digits, v));
    sci.push_back(v == 0 ? "0" : Sci(v, digits));
    if (fixed.back().size() > 6 || fixed.back().find('e') != std::string::npos)
      use_fixed = false;
  }
  return use_fixed ? fixed : sci;
}

// The step axis, in exact integers: steps up to 2^62 are not doubles.
struct StepAxis {
  int64_t lo = 0, hi = 0;
  std::vector<int64_t> ticks;
};

// Distance b - a for a <= b, exact even when it does not fit in int64.
uint64_t Span(int64_t a, int64_t b) {
  return static_cast<uint64_t>(b) - static_cast<uint64_t>(a);
}

int64_t FloorMultiple(int64_t v, int64_t step) {
  int64_t q = v / step;
  if (v % step != 0 && v < 0) --q;
  return q * step;
}

StepAxis NiceStepAxis(int64_t min, int64_t max) {
  StepAxis best{min, max, {min}};
  if (min == max) return best;
  constexpr int64_t kTop = std::numeric_limits<int64_t>::max();
  constexpr int64_t kBottom = std::numeric_limits<int64_t>::min();
  const double range = static_cast<double>(Span(min, max));
  double best_score = std::numeric_limits<double>::infinity();
  const int e = static_cast<int>(std::floor(std::log10(range / 6)));
  for (int k = std::max(0, e - 1); k <= std::min(18, e + 1); ++k) {
    int64_t power = 1;
    for (int i = 0; i < k; ++i) power *= 10;
    for (int64_t m : {1, 2, 5}) {
      const int64_t step = m * power;
      // Round the ends out to a tick only when that costs <= 5% of the
      // width: 0..199 becomes 0..200, but 5..204 stays as it is.
      int64_t lo = min, hi = max;
      if (min >= kBottom + step) {
        const int64_t l = FloorMultiple(min, step);
        if (Span(l, min) <= 0.05 * range) lo = l;
      }
      if (max <= kTop - step) {
        const int64_t h =
            FloorMultiple(max, step) + (max % step != 0 ? step : 0);
        if (Span(max, h) <= 0.05 * range) hi = h;
      }
      int64_t first = FloorMultiple(lo, step);
      if (first < lo) {
        if (first > kTop - step) continue;
        first += step;
      }
      const uint64_t count = first > hi ? 0 : Span(first, hi) / step + 1;
      const double score =
          TickScore(static_cast<int64_t>(std::min<uint64_t>(count, 1000)),
                    static_cast<double>(Span(lo, hi)) / range);
      if (score > best_score) continue;
      best_score = score;
      best = {lo, hi, {}};
      for (uint64_t i = 0; i < count; ++i) {
        best.ticks.push_back(static_cast<int64_t>(
            static_cast<uint64_t>(first) + i * static_cast<uint64_t>(step)));
      }
    }
  }
  return best;
}

// 250000 -> "250k", 1500000 -> "1.5M", 2e18 -> "2e18"; anything that would
// lose digits that way stays a plain integer.
std::string StepLabel(int64_t v) {
  const double a = std::fabs(static_cast<double>(v));
  if (a >= 1e12) {
    int64_t unit = 1;
    for (double u = a / 100; u >= 10; u /= 10) unit *= 10;
    if (v % unit == 0) return Sci(static_cast<double>(v), 3);
  }
  for (auto [unit, suffix] : {std::pair<int64_t, const char*>{1000000000, "B"},
                              {1000000, "M"},
                              {1000, "k"}}) {
    if (a >= unit && a < 1000.0 * unit && v % (unit / 1000) == 0) {
      return absl::StrFormat("%g%s", static_cast<double>(v) / unit, suffix);
    }
  }
  return absl::StrCat(v);
}

// Rough width in pixels of `text` at 12px sans-serif: no font metrics in an
// SVG we write blind, but the legend must not run into itself.
double TextWidth(const std::string& text) {
  double width = 0;
  for (char c : text) {
    if (c == 'm' || c == 'w' || c == 'M' || c == 'W') {
      width += 10;
    } else if (c == 'i' || c == 'l' || c == 't' || c == 'f' || c == 'j' ||
               c == 'r' || c == ' ' || c == '.') {
      width += 4;
    } else {
      width += 7;
    }
  }
  return width;
}

// Min/max per pixel column, in step order, for one curve. With no more than
// two steps per column every point is kept as it is.
template <typename Value, typename MapX, typename MapY>
std::string PolylinePoints(const std::vector<StepResult>& steps, Value value,
                           MapX map_x, MapY map_y, double plot_width) {
  std::string points;
  const auto emit = [&](const StepResult& r) {
    absl::StrAppendFormat(&points, "%s%.1f,%.1f", points.empty() ? "" : " ",
                          map_x(r.step), map_y(value(r)));
  };
  const bool thin = steps.size() > 2 * plot_width;
  int64_t column = std::numeric_limits<int64_t>::min();
  const StepResult* low = nullptr;
  const StepResult* high = nullptr;
  const auto flush = [&] {
    if (low == nullptr) return;
    const StepResult* a = low < high ? low : high;
    const StepResult* b = low < high ? high : low;
    emit(*a);
    if (b != a) emit(*b);
  };
  for (const StepResult& r : steps) {
    if (!std::isfinite(value(r))) continue;
    if (!thin) {
      emit(r);
      continue;
    }
    const int64_t c = static_cast<int64_t>(std::floor(map_x(r.step)));
    if (c != column) {
      flush();
      column = c;
      low = high = &r;
    } else {
      if (value(r) < value(*low)) low = &r;
      if (value(r) > value(*high)) high = &r;
    }
  }
  if (thin) flush();
  return points;
}

}  // namespace

std::string MarkupEscape(const std::string& text) {
  std::string out = absl::StrReplaceAll(text, {{"&", "&amp;"},
                                               {"<", "&lt;"},
                                               {">", "&gt;"},
                                               {"\"", "&quot;"},
                                               {"'", "&apos;"}});
  // Control characters are not allowed anywhere in XML 1.0.
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return out;
}

void RenderSvg(const std::vector<StepResult>& steps, const std::string& title,
               std::ostream& out) {
  RenderSvg(steps, title, SvgMarks(), out);
}

void RenderSvg(const std::vector<StepResult>& steps, const std::string& title,
               const SvgMarks& marks, std::ostream& out) {
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << absl::StrFormat(
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
             "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"Helvetica, "
             "Arial, sans-serif\" font-size=\"12\">\n",
             kWidth, kHeight, kWidth, kHeight)
      << "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
      << "<text x=\"84\" y=\"28\" font-size=\"16\" font-weight=\"bold\" "
         "fill=\"#222222\">"
      << Escape(Truncate(title, 100)) << "</text>\n";

  // Value ranges, skipping non-finite values so they cannot reach the output
  // as "nan" coordinates.
  double lr_lo = INFINITY, lr_hi = -INFINITY;
  double m_lo = INFINITY, m_hi = -INFINITY;
  int64_t s_lo = std::numeric_limits<int64_t>::max();
  int64_t s_hi = std::numeric_limits<int64_t>::min();
  size_t restarts = 0;
  for (const StepResult& r : steps) {
    s_lo = std::min(s_lo, r.step);
    s_hi = std::max(s_hi, r.step);
    if (r.restart) ++restarts;
    if (std::isfinite(r.lr)) {
      lr_lo = std::min(lr_lo, r.lr);
      lr_hi = std::max(lr_hi, r.lr);
    }
    if (r.has_momentum && std::isfinite(r.momentum)) {
      m_lo = std::min(m_lo, r.momentum);
      m_hi = std::max(m_hi, r.momentum);
    }
  }
  if (lr_lo > lr_hi) {
    out << absl::StrFormat(
        "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"18\" "
        "fill=\"#888888\">%s</text>\n</svg>\n",
        kWidth / 2, kHeight / 2,
        steps.empty() ? "no steps" : "no finite lr values");
    return;
  }
  // A reported metric takes the right axis; momentum is drawn otherwise.
  std::vector<std::pair<int64_t, double>> reported;
  double r_lo = INFINITY, r_hi = -INFINITY;
  for (const auto& [step, value] : marks.reported) {
    if (step < s_lo || step > s_hi || !std::isfinite(value)) continue;
    reported.emplace_back(step, value);
    r_lo = std::min(r_lo, value);
    r_hi = std::max(r_hi, value);
  }
  const bool has_reported = !reported.empty();
  if (has_reported) {
    m_lo = r_lo;
    m_hi = r_hi;
  }
  const bool momentum = has_reported || (steps[0].has_momentum && m_lo <= m_hi);
  const char* right_colour = has_reported ? kReportedColour : kMomentumColour;
  const std::string right_name =
      has_reported ? Truncate(marks.reported_name, 24) : "momentum";

  const double left = 84, top = 62, bottom = kHeight - 56;
  const double right = kWidth - (momentum ? 72 : 30);
  const double plot_width = right - left;

  // The lr axis starts at 0 unless the curve lives far above it (then 0
  // would squash it flat); a constant lr gets a 0-based axis too.
  if (lr_lo >= 0 && (lr_lo <= 0.4 * lr_hi || Degenerate(lr_lo, lr_hi))) {
    lr_lo = 0;
  }
  if (Degenerate(lr_lo, lr_hi) && lr_hi <= 0) lr_hi = lr_lo + 1;
  const ValueAxis y = NiceValueAxis(lr_lo, lr_hi);
  ValueAxis y2;
  if (momentum) {
    // A constant momentum gets a band around it rather than no axis.
    const double pad = Degenerate(m_lo, m_hi) ? 0.05 : 0;
    y2 = NiceValueAxis(m_lo - pad, m_hi + pad);
  }
  const StepAxis x = NiceStepAxis(s_lo, s_hi);

  const double x_span = static_cast<double>(Span(x.lo, x.hi));
  const auto map_x = [&](int64_t s) {
    if (x.lo == x.hi) return left + plot_width / 2;
    return left + static_cast<double>(Span(x.lo, s)) / x_span * plot_width;
  };
  const auto map_value = [&](const ValueAxis& a, double v) {
    // Clamped: the axis may stop short of a value beyond +-1e308.
    double f = (v * 0.5 - a.lo * 0.5) / HalfSpan(a.lo, a.hi);
    f = std::isfinite(f) ? std::clamp(f, -0.02, 1.02) : 0;
    return bottom - kInset - f * (bottom - top - 2 * kInset);
  };
  const auto map_lr = [&](double v) { return map_value(y, v); };
  const auto map_m = [&](double v) { return map_value(y2, v); };

  // Labels relative to an offset when plain ones would not fit side by side
  // (a preview of steps near 2^62).
  std::vector<std::string> x_labels;
  bool offset = false;
  for (int64_t t : x.ticks) {
    x_labels.push_back(StepLabel(t));
    offset = offset || x_labels.back().size() > 10;
  }
  if (offset) {
    for (size_t i = 0; i < x.ticks.size(); ++i) {
      x_labels[i] = absl::StrCat(
          "+", StepLabel(static_cast<int64_t>(Span(x.lo, x.ticks[i]))));
    }
  }

  // Grid and frame.
  out << "<g stroke=\"#e8e8e8\" stroke-width=\"1\">\n";
  for (double v : y.ticks) {
    out << absl::StrFormat(
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
        "y2=\"%.1f\"/>\n",
        left, map_lr(v), right, map_lr(v));
  }
  for (int64_t t : x.ticks) {
    out << absl::StrFormat(
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
        "y2=\"%.1f\"/>\n",
        map_x(t), top, map_x(t), bottom);
  }
  out << "</g>\n";

  // Restarts, at most one per pixel column.
  std::vector<double> restart_x;
  for (const StepResult& r : steps) {
    if (!r.restart) continue;
    const double px = map_x(r.step);
    if (restart_x.empty() || std::lround(px) != std::lround(restart_x.back()))
      restart_x.push_back(px);
  }
  const bool many_restarts = restart_x.size() > kManyMarks;
  if (!restart_x.empty()) {
    out << absl::StrFormat(
        "<g stroke=\"%s\" stroke-width=\"1\" %s>\n", kRestartColour,
        many_restarts ? "opacity=\"0.35\""
                      : "opacity=\"0.65\" stroke-dasharray=\"4 3\"");
    for (double px : restart_x) {
      out << absl::StrFormat(
          "<line class=\"restart\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
          "y2=\"%.1f\"/>\n",
          px, many_restarts ? bottom - 6 : top, px, bottom);
    }
    out << "</g>\n";
  }

  // Changes to the timeline and the step the job is at.
  for (const auto& [step, label] : marks.changes) {
    if (step < x.lo || step > x.hi) continue;
    const double px = map_x(step);
    out << absl::StrFormat(
        "<line class=\"change\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
        "y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\" "
        "stroke-dasharray=\"2 2\"/><text x=\"%.1f\" y=\"%.1f\" "
        "font-size=\"10\" fill=\"%s\">%s</text>\n",
        px, top, px, bottom, kChangeColour, px + 3, top + 11, kChangeColour,
        Escape(Truncate(label, 20)));
  }
  if (marks.current && *marks.current >= x.lo && *marks.current <= x.hi) {
    const double px = map_x(*marks.current);
    out << absl::StrFormat(
        "<line class=\"current\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
        "y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1\"/>\n",
        px, top, px, bottom, kCurrentColour);
  }

  // The curves: momentum (or the reported metric) underneath, lr on top.
  if (has_reported) {
    std::string points;
    for (const auto& [step, value] : reported) {
      absl::StrAppendFormat(&points, "%s%.1f,%.1f", points.empty() ? "" : " ",
                            map_x(step), map_m(value));
    }
    out << absl::StrFormat(
        "<polyline class=\"reported\" fill=\"none\" stroke=\"%s\" "
        "stroke-width=\"1.5\" points=\"%s\"/>\n",
        kReportedColour, points);
  } else if (momentum) {
    out << absl::StrFormat(
        "<polyline class=\"momentum\" fill=\"none\" stroke=\"%s\" "
        "stroke-width=\"1.5\" stroke-dasharray=\"6 4\" points=\"%s\"/>\n",
        kMomentumColour,
        PolylinePoints(
            steps, [](const StepResult& r) { return r.momentum; }, map_x, map_m,
            plot_width));
  }
  out << absl::StrFormat(
      "<polyline class=\"lr\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
      "stroke-linejoin=\"round\" points=\"%s\"/>\n",
      kLrColour,
      PolylinePoints(
          steps, [](const StepResult& r) { return r.lr; }, map_x, map_lr,
          plot_width));
  if (steps.size() == 1) {  // a one-point polyline draws nothing
    out << absl::StrFormat(
        "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n",
        map_x(steps[0].step), map_lr(steps[0].lr), kLrColour);
  }

  // Snapshots: a dot on the curve, at most one per pixel column.
  std::vector<const StepResult*> snapshots;
  for (const StepResult& r : steps) {
    if (!r.snapshot || !std::isfinite(r.lr)) continue;
    if (snapshots.empty() || std::lround(map_x(r.step)) !=
                                 std::lround(map_x(snapshots.back()->step)))
      snapshots.push_back(&r);
  }
  if (!snapshots.empty()) {
    const bool many = snapshots.size() > kManyMarks;
    out << absl::StrFormat(
        "<g fill=\"%s\" stroke=\"#ffffff\" "
        "stroke-width=\"%s\" opacity=\"%s\">\n",
        kSnapshotColour, many ? "0" : "1", many ? "0.5" : "1");
    for (const StepResult* r : snapshots) {
      out << absl::StrFormat(
          "<circle class=\"snapshot\" cx=\"%.1f\" "
          "cy=\"%.1f\" r=\"%s\"/>\n",
          map_x(r->step), map_lr(r->lr), many ? "1.5" : "3.5");
    }
    out << "</g>\n";
  }

  // Frame, ticks and tick labels.
  out << absl::StrFormat(
      "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
      "fill=\"none\" stroke=\"#555555\"/>\n",
      left, top, plot_width, bottom - top);
  out << "<g fill=\"#333333\">\n";
  const std::vector<std::string> y_labels = ValueLabels(y);
  for (size_t i = 0; i < y.ticks.size(); ++i) {
    const double py = map_lr(y.ticks[i]);
    out << absl::StrFormat(
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
        "stroke=\"#555555\"/><text x=\"%.1f\" y=\"%.1f\" "
        "text-anchor=\"end\">%s</text>\n",
        left - 5, py, left, py, left - 8, py + 4, y_labels[i]);
  }
  for (size_t i = 0; i < x.ticks.size(); ++i) {
    const double px = map_x(x.ticks[i]);
    out << absl::StrFormat(
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
        "stroke=\"#555555\"/><text x=\"%.1f\" y=\"%.1f\" "
        "text-anchor=\"middle\">%s</text>\n",
        px, bottom, px, bottom + 5, px, bottom + 19, x_labels[i]);
  }
  if (momentum) {
    const std::vector<std::string> labels = ValueLabels(y2);
    for (size_t i = 0; i < y2.ticks.size(); ++i) {
      const double py = map_m(y2.ticks[i]);
      out << absl::StrFormat(
          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
          "stroke=\"%s\"/><text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">%s</text>\n",
          right, py, right + 5, py, right_colour, right + 8, py + 4,
          right_colour, labels[i]);
    }
  }
  out << "</g>\n";

  // Axis titles.
  const double mid_y = (top + bottom) / 2;
  out << absl::StrFormat(
      "<g font-size=\"13\" fill=\"#333333\" text-anchor=\"middle\">\n"
      "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n"
      "<text transform=\"translate(18 %.1f) rotate(-90)\">learning "
      "rate</text>\n",
      (left + right) / 2, bottom + 42.0,
      offset ? absl::StrCat("step (offset from ", x.lo, ")") : "step", mid_y);
  if (momentum) {
    out << absl::StrFormat(
        "<text transform=\"translate(%d %.1f) rotate(90)\" "
        "fill=\"%s\">%s</text>\n",
        kWidth - 16, mid_y, right_colour, Escape(right_name));
  }
  out << "</g>\n";

  // Legend, one row between the title and the plot; a summary on its right.
  double lx = left;
  const auto entry = [&](const std::string& sample, const std::string& text) {
    out << sample
        << absl::StrFormat(
               "<text x=\"%.1f\" y=\"50\" fill=\"#333333\">%s</text>\n",
               lx + 28, text);
    lx += 28 + TextWidth(text) + 24;
  };
  const auto sample_line = [&](const char* colour, const char* extra) {
    return absl::StrFormat(
        "<line x1=\"%.1f\" y1=\"46\" x2=\"%.1f\" y2=\"46\" stroke=\"%s\" %s/>",
        lx, lx + 22, colour, extra);
  };
  entry(sample_line(kLrColour, "stroke-width=\"2\""), "learning rate");
  if (has_reported) {
    entry(sample_line(kReportedColour, "stroke-width=\"1.5\""),
          Escape(right_name));
  } else if (momentum) {
    entry(sample_line(kMomentumColour,
                      "stroke-width=\"1.5\" stroke-dasharray=\"6 4\""),
          "momentum");
  }
  if (!marks.changes.empty()) {
    entry(sample_line(kChangeColour, "stroke-dasharray=\"2 2\""), "change");
  }
  if (!restart_x.empty()) {
    entry(sample_line(kRestartColour, "stroke-dasharray=\"4 3\""), "restart");
  }
  if (!snapshots.empty()) {
    entry(absl::StrFormat("<circle cx=\"%.1f\" cy=\"46\" r=\"3.5\" "
                          "fill=\"%s\"/>",
                          lx + 11, kSnapshotColour),
          "snapshot");
  }
  out << absl::StrFormat(
      "<text x=\"%.1f\" y=\"50\" text-anchor=\"end\" fill=\"#777777\">%d "
      "step%s, %d restart%s</text>\n",
      right, steps.size(), steps.size() == 1 ? "" : "s", restarts,
      restarts == 1 ? "" : "s");
  out << "</svg>\n";
}

}  // namespace anneal
