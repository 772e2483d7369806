// Field-path error messages for spec validation (see field_error.h).
#include "anneal/engine/field_error.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace anneal {

std::string FormatNumber(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Whole numbers below a million read better in full: 10, not 1e+01.
  if (std::fabs(value) < 1e6 && value == std::floor(value)) {
    return absl::StrFormat("%.0f", value);
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

std::string QuoteValue(absl::string_view value, size_t max) {
  const bool cut = value.size() > max;
  absl::string_view shown = cut ? value.substr(0, max) : value;
  if (cut) {
    // Do not end inside a UTF-8 sequence: back off over continuation bytes.
    while (!shown.empty() &&
           (static_cast<unsigned char>(value[shown.size()]) & 0xC0) == 0x80) {
      shown.remove_suffix(1);
    }
  }
  std::string out = "\"";
  for (unsigned char c : shown) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
  if (cut) absl::StrAppend(&out, "... (", value.size(), " bytes)");
  return out;
}

FieldPath FieldPath::Child(absl::string_view name) const {
  if (path_.empty()) return FieldPath(std::string(name));
  return FieldPath(absl::StrCat(path_, ".", name));
}

FieldPath FieldPath::Index(int64_t i) const {
  return FieldPath(absl::StrCat(path_, "[", i, "]"));
}

absl::Status FieldPath::Error(absl::string_view rule) const {
  return absl::InvalidArgumentError(absl::StrCat(path_, ": ", rule));
}

absl::Status RequireFinite(const FieldPath& path, double v) {
  if (std::isfinite(v)) return absl::OkStatus();
  return path.Error(
      absl::StrCat("must be a finite number, got ", FormatNumber(v)));
}

absl::Status RequireAtLeast(const FieldPath& path, double v, double lo) {
  if (absl::Status s = RequireFinite(path, v); !s.ok()) return s;
  if (v >= lo) return absl::OkStatus();
  return path.Error(
      absl::StrCat("must be >= ", FormatNumber(lo), ", got ", FormatNumber(v)));
}

absl::Status RequireAbove(const FieldPath& path, double v, double lo) {
  if (absl::Status s = RequireFinite(path, v); !s.ok()) return s;
  if (v > lo) return absl::OkStatus();
  return path.Error(
      absl::StrCat("must be > ", FormatNumber(lo), ", got ", FormatNumber(v)));
}

absl::Status RequireInRange(const FieldPath& path, double v, double lo,
                            double hi) {
  if (absl::Status s = RequireFinite(path, v); !s.ok()) return s;
  if (v >= lo && v <= hi) return absl::OkStatus();
  return path.Error(absl::StrCat("must be in [", FormatNumber(lo), ", ",
                                 FormatNumber(hi), "], got ", FormatNumber(v)));
}

absl::Status RequireAtLeast(const FieldPath& path, int64_t v, int64_t lo) {
  if (v >= lo) return absl::OkStatus();
  return path.Error(absl::StrCat("must be >= ", lo, ", got ", v));
}

absl::Status RequireAtMost(const FieldPath& path, int64_t v, int64_t hi) {
  if (v <= hi) return absl::OkStatus();
  return path.Error(absl::StrCat("must be <= ", hi, ", got ", v));
}

}  // namespace anneal
