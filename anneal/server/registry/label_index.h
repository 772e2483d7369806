// Which schedules carry a label, so that a ListSchedules filter reads the
// schedules that can match, in name order, instead of scanning them all.
//
// A posting is a label key (for `labels.K:*`) or a key and value (for
// `labels.K = "V"`). The index may hold more than the published snapshots
// carry, never less: a label change is added when accepted and the labels
// it replaced are dropped (Retain) once it is published, so the caller
// checks every candidate against its snapshot. Not thread-safe: the
// registry guards it with its map lock.
//
// Names are views: a name must stay valid until it is removed or indexed
// again (Add re-keys it to the new view), which it does when the value
// stored beside it owns it (the registry's entries own their names). A copy
// of the name per posting made the index 330 bytes per one-label schedule.
#ifndef ANNEAL_SERVER_REGISTRY_LABEL_INDEX_H_
#define ANNEAL_SERVER_REGISTRY_LABEL_INDEX_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/map.h"

namespace anneal {

class LabelIndex {
 public:
  using Labels = google::protobuf::Map<std::string, std::string>;
  // Names in order, each with what the caller stores beside it.
  using Postings = absl::btree_map<absl::string_view, std::shared_ptr<void>>;

  // Indexes `name` (and `value`, returned with it by Find) under every
  // label of `labels`, in addition to what it is indexed under already;
  // those postings hold `value` from now on too.
  void Add(absl::string_view name, const std::shared_ptr<void>& value,
           const Labels& labels);
  // Drops the postings of `name` that none of `keep` implies (null entries
  // are skipped).
  void Retain(absl::string_view name, std::vector<const Labels*> keep);
  // Drops every posting of `name`.
  void Remove(absl::string_view name);

  // The names indexed under `key` (with `*value`, unless null), or null if
  // there are none.
  const Postings* Find(absl::string_view key, const std::string* value) const;

  // Postings over all names (for tests and memory accounting).
  int64_t size() const;

 private:
  static std::string KeyOnly(absl::string_view key);
  static std::string KeyValue(absl::string_view key, absl::string_view value);
  void Drop(const std::string* posting, absl::string_view name);

  // Nodes, so that of_name_ can point at the keys.
  absl::node_hash_map<std::string, Postings> postings_;
  // For each name, the keys of the postings it is in (two per label).
  absl::flat_hash_map<absl::string_view,
                      absl::InlinedVector<const std::string*, 2>>
      of_name_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_LABEL_INDEX_H_
