// ListSchedules filters and page tokens (see list_filter.h).
#include "anneal/server/registry/list_filter.h"

#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "anneal/engine/field_error.h"

namespace anneal {
namespace {

absl::Status BadTerm(absl::string_view term, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("filter: ", why, " in term ", QuoteValue(term),
                   " (supported: labels.KEY = \"VALUE\", labels.KEY:*, "
                   "joined by AND)"));
}

// A stable fingerprint (absl::Hash is seeded per process, so not that).
uint64_t Fingerprint(absl::string_view s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

absl::StatusOr<LabelFilter> LabelFilter::Parse(absl::string_view text) {
  LabelFilter filter;
  if (absl::StripAsciiWhitespace(text).empty()) return filter;
  for (absl::string_view raw : absl::StrSplit(text, " AND ")) {
    absl::string_view term = absl::StripAsciiWhitespace(raw);
    if (!absl::ConsumePrefix(&term, "labels.")) {
      return BadTerm(raw, "expected labels.KEY");
    }
    Term t;
    size_t op = term.find_first_of("=:");
    if (op == absl::string_view::npos) return BadTerm(raw, "expected = or :*");
    t.key = std::string(absl::StripAsciiWhitespace(term.substr(0, op)));
    absl::string_view rest = absl::StripAsciiWhitespace(term.substr(op + 1));
    if (t.key.empty()) return BadTerm(raw, "empty label key");
    if (term[op] == ':') {
      if (rest != "*") return BadTerm(raw, "only :* is supported after :");
      t.any_value = true;
    } else {
      if (rest.size() >= 2 && rest.front() == '"' && rest.back() == '"') {
        rest = rest.substr(1, rest.size() - 2);
      } else if (rest.empty() || absl::StrContains(rest, ' ') ||
                 absl::StrContains(rest, '"')) {
        return BadTerm(raw, "quote the value");
      }
      t.value = std::string(rest);
    }
    filter.terms_.push_back(std::move(t));
  }
  return filter;
}

bool LabelFilter::Matches(
    const google::protobuf::Map<std::string, std::string>& labels) const {
  for (const Term& t : terms_) {
    auto it = labels.find(t.key);
    if (it == labels.end()) return false;
    if (!t.any_value && it->second != t.value) return false;
  }
  return true;
}

std::string EncodePageToken(absl::string_view filter, absl::string_view last) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(absl::Hex(Fingerprint(filter), absl::kZeroPad16), last));
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view token,
                                            absl::string_view filter) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw) || raw.size() < 16) {
    return absl::InvalidArgumentError(
        "page_token: not a token this server issued");
  }
  if (raw.substr(0, 16) !=
      absl::StrCat(absl::Hex(Fingerprint(filter), absl::kZeroPad16))) {
    return absl::InvalidArgumentError(
        "page_token: was issued for a different filter");
  }
  return raw.substr(16);
}

}  // namespace anneal
