// Which schedules carry a label, so that a ListSchedules filter reads the
// schedules that can match, in name order, instead of scanning them all.
//
// A posting is a label key (for `labels.K:*`) or a key and value (for
// `labels.K = "V"`). The index may hold more than the published snapshots
// carry, never less: a label change is added when accepted and the labels
// it replaced are dropped (Retain) once it is published, so the caller
// checks every candidate against its snapshot. Not thread-safe: the
// registry guards it with its map lock.
#ifndef ANNEAL_SERVER_REGISTRY_LABEL_INDEX_H_
#define ANNEAL_SERVER_REGISTRY_LABEL_INDEX_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/map.h"

namespace anneal {

class LabelIndex {
 public:
  using Labels = google::protobuf::Map<std::string, std::string>;
  // Names in order, each with what the caller stores beside it.
  using Postings = std::map<std::string, std::shared_ptr<void>>;

  // Indexes `name` (and `value`, returned with it by Find) under every
  // label of `labels`, in addition to what it is indexed under already.
  void Add(const std::string& name, const std::shared_ptr<void>& value,
           const Labels& labels);
  // Drops the postings of `name` that none of `keep` implies (null entries
  // are skipped).
  void Retain(const std::string& name, std::vector<const Labels*> keep);
  // Drops every posting of `name`.
  void Remove(const std::string& name);

  // The names indexed under `key` (with `*value`, unless null), or null if
  // there are none.
  const Postings* Find(absl::string_view key, const std::string* value) const;

  // Postings over all names (for tests and memory accounting).
  int64_t size() const;

 private:
  static std::string KeyOnly(absl::string_view key);
  static std::string KeyValue(absl::string_view key, absl::string_view value);
  void Drop(const std::string& posting, const std::string& name);

  absl::flat_hash_map<std::string, Postings> postings_;
  // For each name, the postings it is in.
  absl::flat_hash_map<std::string, std::vector<std::string>> of_name_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_LABEL_INDEX_H_
