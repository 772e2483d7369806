// SpecCache (see spec_cache.h).
#include "anneal/model/spec_cache.h"

#include <utility>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace anneal {
namespace {

std::string KeyOf(const v1::ScheduleSpec& spec) {
  std::string key;
  {
    google::protobuf::io::StringOutputStream out(&key);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&coded);
  }
  return key;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Schedule>> SpecCache::Compile(
    const v1::ScheduleSpec& spec, const CompileLimits& limits) {
  absl::StatusOr<std::shared_ptr<const Schedule>> compiled =
      Schedule::Compile(spec, limits);
  if (!compiled.ok()) return compiled;
  std::string key = KeyOf(spec);
  absl::MutexLock lock(&mu_);
  std::weak_ptr<const Schedule>& slot = forms_[std::move(key)];
  if (std::shared_ptr<const Schedule> shared = slot.lock()) return shared;
  slot = *compiled;
  if (forms_.size() >= sweep_at_) {
    Sweep();
    sweep_at_ = 2 * forms_.size() + 64;
  }
  return compiled;
}

size_t SpecCache::size() const {
  absl::MutexLock lock(&mu_);
  size_t alive = 0;
  for (const auto& [key, form] : forms_) alive += form.expired() ? 0 : 1;
  return alive;
}

void SpecCache::Sweep() {
  absl::erase_if(forms_, [](const auto& kv) { return kv.second.expired(); });
}

}  // namespace anneal
