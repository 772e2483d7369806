// For model tests: a schedule resource as CreateSchedule makes it (one
// CREATE segment), from a spec or its relaxed text, and its timeline
// compiled.
//
//   v1::Schedule s = CreatedSchedule("{max_lr: 0.1, cosine: {period: 10}}");
//   std::shared_ptr<const Timeline> t = CompiledTimeline(s);
#ifndef ANNEAL_MODEL_TESTING_CREATED_SCHEDULE_H_
#define ANNEAL_MODEL_TESTING_CREATED_SCHEDULE_H_

#include <memory>
#include <string>

#include "anneal/engine/testing/spec_from_text.h"
#include "anneal/model/timeline.h"
#include "anneal/v1/resources.pb.h"
#include "gtest/gtest.h"

namespace anneal {

inline v1::Schedule CreatedSchedule(const v1::ScheduleSpec& spec) {
  v1::Schedule s;
  s.set_name("schedules/t");
  *s.mutable_spec() = spec;
  v1::Segment* first = s.add_timeline();
  *first->mutable_spec() = spec;
  first->set_kind(v1::Segment::CREATE);
  return s;
}

inline v1::Schedule CreatedSchedule(const std::string& spec_text) {
  return CreatedSchedule(SpecFromText(spec_text));
}

// Null (and a test failure) if it does not compile.
inline std::shared_ptr<const Timeline> CompiledTimeline(const v1::Schedule& s) {
  auto t = Timeline::Build(s.timeline());
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : nullptr;
}

}  // namespace anneal

#endif  // ANNEAL_MODEL_TESTING_CREATED_SCHEDULE_H_
