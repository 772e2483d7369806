// Fuzz target: a sequence of requests (create, update, restart, delete,
// evaluate, evaluate-range, advance, report, get), decoded from the input,
// against an in-process Registry over the memory store, checking the
// service's invariants after every answer:
//  - no served step changes: every LR answered by Evaluate, a serving
//    EvaluateRange or Advance is answered again bit for bit at that step,
//    by any later read, until the schedule is deleted;
//  - an update or restart at an explicit step that was served is refused;
//  - positions are monotone: each Advance answers a position above the last
//    one, a retried request_id answers its first position, and Get's
//    position and max_step_served never go back (max_step_served is never
//    below a served step).
// A broken invariant aborts with a message.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "anneal/engine/step.h"
#include "anneal/model/spec_text.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/registry/registry_test_util.h"
#include "anneal/server/store/memory/memory_store.h"
#include "anneal/v1/service.pb.h"

namespace anneal {
namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "registry invariant broken: %s\n", what.c_str());
  std::abort();
}

// Reads the input front to back; past its end every read is 0.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint64_t U64(int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | U8();
    return v;
  }
  // Mostly small steps, some near 2^62, a few anything (maybe invalid).
  int64_t Step() {
    switch (U8() % 8) {
      case 0:
        return kMaxStep - static_cast<int64_t>(U8());
      case 1:
        return static_cast<int64_t>(U64(8));
      default:
        return static_cast<int64_t>(U64(2) % 3000);
    }
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

constexpr const char* kSpecs[] = {
    "{max_lr: 0.1, min_lr: 0.0001, warmup: {steps: 2, every_cycle: true}, "
    "warm_restarts: {period: 10, period_mult: 2, peak_decay: 0.8}, "
    "momentum: {base: 0.85, max: 0.95}}",
    "{max_lr: 0.4, one_cycle: {total_steps: 1000, pct_start: 0.3}}",
    "{max_lr: 0.05, cosine: {period: 37}}",
    ("{max_lr: 0.001, sequence: {phases: [{steps: 5, spec: {constant: {}}}, "
     "{spec: {inverse_time_decay: {t0: 100}}}]}}"),
    "{max_lr: 0.1, step_decay: {milestones: [3, 30, 30]}}",
};
constexpr const char* kIds[] = {"a", "b", "c"};

struct Model {  // what was answered, per schedule, since its create
  std::map<int64_t, double> served;
  std::map<std::string, int64_t> advanced;  // request_id -> position
  int64_t position = 0;
  int64_t max_served = -1;
};

class Session {
 public:
  Session() : store_(NewMemoryStore()), registry_(store_.get()) {
    if (!registry_->Load().ok()) Fail("Load of an empty store failed");
    for (const char* text : kSpecs) {
      v1::ScheduleSpec spec;
      if (!ParseMessageText(text, &spec).ok()) Fail("a built-in spec");
      specs_.push_back(spec);
    }
  }

  void Run(Bytes& in) {
    for (int ops = 0; ops < 200 && !in.empty(); ++ops) Op(in);
    // Every served step once more, as an operator would look at it.
    for (auto& [name, model] : models_) {
      for (auto& [step, lr] : model.served) {
        v1::EvaluateRangeRequest req;
        req.set_name(name);
        req.set_start_step(step);
        req.set_count(1);
        req.set_inspect_only(true);
        absl::StatusOr<v1::EvaluateRangeResponse> r =
            EvaluateRangeNow(*registry_, req);
        if (!r.ok())
          Fail("a served step cannot be read: " + r.status().ToString());
        Check(name, step, r->range().lr(0), false);
      }
    }
  }

 private:
  void Check(const std::string& name, int64_t step, double lr, bool serving) {
    if (!std::isfinite(lr) || lr < 0) Fail("LR not finite or negative");
    Model& m = models_[name];
    auto it = m.served.find(step);
    if (it != m.served.end()) {
      if (std::memcmp(&it->second, &lr, sizeof lr) != 0) {
        Fail(name + ": step " + std::to_string(step) + " served " +
             std::to_string(it->second) + ", now " + std::to_string(lr));
      }
    } else if (serving) {
      m.served.emplace(step, lr);
      if (step > m.max_served) m.max_served = step;
    }
  }

  void Op(Bytes& in) {
    const std::string name = std::string("schedules/") +
                             kIds[in.U8() % (sizeof kIds / sizeof *kIds)];
    const uint8_t op = in.U8() % 9;
    const v1::ScheduleSpec& spec = specs_[in.U8() % specs_.size()];
    switch (op) {
      case 0: {
        v1::CreateScheduleRequest req;
        req.set_schedule_id(name.substr(name.find('/') + 1));
        *req.mutable_schedule()->mutable_spec() = spec;
        if (Wait<v1::Schedule>(*registry_, &Registry::Create, req).ok()) {
          models_[name] = Model{};
        }
        break;
      }
      case 1:
      case 2: {
        const bool explicit_step = in.U8() % 2 == 0;
        const int64_t step = in.Step();
        absl::StatusOr<v1::Schedule> r;
        if (op == 1) {
          v1::UpdateScheduleRequest req;
          req.mutable_schedule()->set_name(name);
          *req.mutable_schedule()->mutable_spec() = spec;
          if (explicit_step) req.set_effective_step(step);
          r = Wait<v1::Schedule>(*registry_, &Registry::Update, req);
        } else {
          v1::RestartScheduleRequest req;
          req.set_name(name);
          if (explicit_step) req.set_at_step(step);
          r = Wait<v1::Schedule>(*registry_, &Registry::Restart, req);
        }
        auto it = models_.find(name);
        if (r.ok() && explicit_step && it != models_.end() &&
            step <= it->second.max_served) {
          Fail(name + ": a change at served step " + std::to_string(step) +
               " was accepted");
        }
        break;
      }
      case 3: {
        v1::DeleteScheduleRequest req;
        req.set_name(name);
        if (Wait<google::protobuf::Empty>(*registry_, &Registry::Delete, req)
                .ok()) {
          models_.erase(name);
        }
        break;
      }
      case 4: {
        v1::EvaluateRequest req;
        req.set_name(name);
        req.set_step(in.Step());
        absl::StatusOr<v1::EvaluateResponse> r = EvaluateNow(*registry_, req);
        if (r.ok()) Check(name, req.step(), r->result().lr(), true);
        break;
      }
      case 5: {
        v1::EvaluateRangeRequest req;
        req.set_name(name);
        req.set_start_step(in.Step());
        req.set_count(1 + in.U8() % 200);
        req.set_inspect_only(in.U8() % 4 == 0);
        absl::StatusOr<v1::EvaluateRangeResponse> r =
            EvaluateRangeNow(*registry_, req);
        if (!r.ok()) break;
        const v1::StepRange& range = r->range();
        if (range.lr_size() != req.count()) Fail("EvaluateRange count");
        for (int i = 0; i < range.lr_size(); ++i) {
          Check(name, range.start_step() + i, range.lr(i), !req.inspect_only());
        }
        break;
      }
      case 6: {
        v1::AdvanceRequest req;
        req.set_name(name);
        const uint8_t id = in.U8() % 8;
        if (id != 0) req.set_request_id("r" + std::to_string(id));
        if (in.U8() % 4 == 0) req.set_expected_position(in.U8() % 8);
        absl::StatusOr<v1::AdvanceResponse> r =
            Wait<v1::AdvanceResponse>(*registry_, &Registry::Advance, req);
        if (!r.ok()) break;
        auto it = models_.find(name);
        if (it == models_.end()) Fail(name + ": advanced, but never created");
        Model& m = it->second;
        auto first = m.advanced.find(req.request_id());
        if (!req.request_id().empty() && first != m.advanced.end()) {
          if (r->position() != first->second) {
            Fail(name + ": retried request_id " + req.request_id() +
                 " answered position " + std::to_string(r->position()) +
                 ", first " + std::to_string(first->second));
          }
        } else {
          if (r->position() != m.position + 1) {
            Fail(name + ": Advance answered position " +
                 std::to_string(r->position()) + " after " +
                 std::to_string(m.position));
          }
          m.position = r->position();
          if (!req.request_id().empty()) {
            m.advanced[req.request_id()] = r->position();
          }
        }
        Check(name, r->position(), r->result().lr(), true);
        break;
      }
      case 7: {
        v1::ReportMetricsRequest req;
        req.set_name(name);
        req.set_step(in.Step());
        (*req.mutable_metrics())["loss"] = static_cast<double>(in.U8()) / 7;
        (void)Wait<v1::MetricReport>(*registry_, &Registry::ReportMetrics, req);
        break;
      }
      default: {
        v1::GetScheduleRequest req;
        req.set_name(name);
        absl::StatusOr<v1::Schedule> r = registry_->Get(req);
        auto it = models_.find(name);
        if (r.ok() != (it != models_.end())) {
          Fail(name + ": Get " + r.status().ToString() + ", but the model " +
               (it != models_.end() ? "has it" : "does not"));
        }
        if (!r.ok()) break;
        const Model& m = it->second;
        if (r->position() != m.position) {
          Fail(name + ": Get position " + std::to_string(r->position()) +
               ", advanced to " + std::to_string(m.position));
        }
        if (r->max_step_served() < m.max_served) {
          Fail(name + ": max_step_served " +
               std::to_string(r->max_step_served()) + " below served step " +
               std::to_string(m.max_served));
        }
      }
    }
  }

  std::unique_ptr<Store> store_;
  TestRegistry registry_;
  std::vector<v1::ScheduleSpec> specs_;
  std::map<std::string, Model> models_;
};

}  // namespace
}  // namespace anneal

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  anneal::Bytes in(data, size);
  anneal::Session session;
  session.Run(in);
  return 0;
}
