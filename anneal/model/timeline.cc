// A schedule's timeline of segments, compiled (see timeline.h).
#include "anneal/model/timeline.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "anneal/model/spec_cache.h"
#include "google/protobuf/util/message_differencer.h"

namespace anneal {

Timeline::Part Timeline::PartOf(const v1::Segment& segment,
                                std::shared_ptr<const Schedule> compiled) {
  Part part;
  part.from = segment.from_step();
  part.origin = segment.time_origin();
  part.cycle_offset = segment.cycle_offset();
  part.lr_level = segment.lr_level();
  part.restart = segment.kind() == v1::Segment::RESTART;
  part.schedule = std::move(compiled);
  return part;
}

void Timeline::Add(Part part) {
  if (!parts_.empty()) {
    parts_.back().end = part.from;
    parts_.back().next_restarts = part.restart;
    if (parts_.back().schedule == part.schedule) {
      parts_.push_back(std::move(part));
      return;  // shared: its tables are counted once
    }
  }
  table_bytes_ += part.schedule->table_bytes();
  parts_.push_back(std::move(part));
}

absl::StatusOr<std::shared_ptr<const Timeline>> Timeline::Build(
    const google::protobuf::RepeatedPtrField<v1::Segment>& segments,
    const CompileLimits& limits, SpecCache* cache) {
  auto timeline = std::shared_ptr<Timeline>(new Timeline());
  if (segments.empty() || segments[0].from_step() != 0) {
    return absl::InternalError("timeline: must start with a segment at step 0");
  }
  timeline->parts_.reserve(segments.size());
  for (int i = 0; i < segments.size(); ++i) {
    const v1::Segment& s = segments[i];
    if (i > 0 && s.from_step() <= segments[i - 1].from_step()) {
      return absl::InternalError(absl::StrCat("timeline: segment ", i,
                                              " does not start after the "
                                              "previous one"));
    }
    std::shared_ptr<const Schedule> compiled;
    if (i > 0 && google::protobuf::util::MessageDifferencer::Equals(
                     s.spec(), segments[i - 1].spec())) {
      compiled = timeline->parts_.back().schedule;
    } else {
      auto built = cache ? cache->Compile(s.spec(), limits)
                         : Schedule::Compile(s.spec(), limits);
      if (!built.ok()) return built.status();
      compiled = *std::move(built);
    }
    timeline->Add(PartOf(s, std::move(compiled)));
  }
  return std::shared_ptr<const Timeline>(std::move(timeline));
}

std::shared_ptr<const Timeline> Timeline::Append(
    const Timeline& base, const v1::Segment& segment,
    std::shared_ptr<const Schedule> compiled) {
  auto timeline = std::shared_ptr<Timeline>(new Timeline());
  timeline->parts_.reserve(base.parts_.size() + 1);
  for (const Part& part : base.parts_) {
    if (part.from >= segment.from_step()) break;
    Part kept = part;
    kept.end = kMaxStep + 1;
    kept.next_restarts = false;
    timeline->Add(std::move(kept));
  }
  timeline->Add(PartOf(segment, std::move(compiled)));
  return timeline;
}

size_t Timeline::SegmentAt(int64_t step) const {
  auto it =
      std::upper_bound(parts_.begin(), parts_.end(), step,
                       [](int64_t s, const Part& p) { return s < p.from; });
  return static_cast<size_t>(it - parts_.begin()) - 1;
}

void Timeline::Globalize(const Part& part, int64_t step, StepResult* r) {
  r->step = step;
  r->cycle += part.cycle_offset;
  r->restart = (r->cycle > 0 && r->step_in_cycle == 0) ||
               (part.restart && step == part.from);
  if (part.next_restarts && step == part.end - 1) r->snapshot = true;
}

absl::StatusOr<StepResult> Timeline::Evaluate(const StepQuery& query) const {
  if (query.step < 0 || query.step > kMaxStep) {
    return absl::InvalidArgumentError(
        absl::StrCat("step: must be in [0, 2^62], got ", query.step));
  }
  const Part& part = parts_[SegmentAt(query.step)];
  StepQuery local = query;
  local.step = query.step - part.origin;
  local.lr_level = part.lr_level;
  absl::StatusOr<StepResult> r = part.schedule->Evaluate(local);
  if (r.ok()) Globalize(part, query.step, &*r);
  return r;
}

StepResult Timeline::At(int64_t step) const {
  const Part& part = parts_[SegmentAt(step)];
  StepResult r = part.schedule->At(step - part.origin, part.lr_level);
  Globalize(part, step, &r);
  return r;
}

absl::Status Timeline::EvaluateRange(
    int64_t start, int64_t count, const StepQuery& options,
    absl::FunctionRef<void(const StepResult&)> visit) const {
  if (start < 0 || start > kMaxStep) {
    return absl::InvalidArgumentError(
        absl::StrCat("start_step: must be in [0, 2^62], got ", start));
  }
  if (count < 0 || count > kMaxStep - start + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "count: must be in [0, 2^62 - start_step + 1], got ", count));
  }
  int64_t step = start;
  const int64_t end = start + count;
  for (size_t i = SegmentAt(start); step < end; ++i) {
    const Part& part = parts_[i];
    const int64_t n = std::min(end, part.end) - step;
    int64_t t = step;
    StepQuery local_options = options;
    local_options.lr_level = part.lr_level;
    absl::Status s = part.schedule->EvaluateRange(
        step - part.origin, n, local_options, [&](const StepResult& local) {
          StepResult r = local;
          Globalize(part, t++, &r);
          visit(r);
        });
    if (!s.ok()) return s;
    step += n;
  }
  return absl::OkStatus();
}

}  // namespace anneal
