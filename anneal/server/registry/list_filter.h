// ListSchedules filters (a subset of AIP-160) and page tokens (AIP-158).
//
// A filter is a conjunction of label terms:
//   labels.team = "vision" AND labels.env:*
// `labels.K = "V"` (quotes optional for simple values) matches the label's
// value; `labels.K:*` matches when the label is present.
#ifndef ANNEAL_SERVER_REGISTRY_LIST_FILTER_H_
#define ANNEAL_SERVER_REGISTRY_LIST_FILTER_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/map.h"

namespace anneal {

class LabelFilter {
 public:
  // INVALID_ARGUMENT "filter: ..." naming the bad term.
  static absl::StatusOr<LabelFilter> Parse(absl::string_view text);

  bool Matches(
      const google::protobuf::Map<std::string, std::string>& labels) const;

  struct Term {
    std::string key;
    bool any_value = false;  // labels.K:*
    std::string value;
  };
  // The terms, all of which must match; none for the empty filter.
  const std::vector<Term>& terms() const { return terms_; }

 private:
  std::vector<Term> terms_;
};

// Opaque page tokens: they carry the last name returned and a fingerprint of
// the filter, so a token reused with another filter is INVALID_ARGUMENT.
std::string EncodePageToken(absl::string_view filter, absl::string_view last);
// Returns the last name returned, or the error naming page_token.
absl::StatusOr<std::string> DecodePageToken(absl::string_view token,
                                            absl::string_view filter);

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_LIST_FILTER_H_
