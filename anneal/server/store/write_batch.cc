// WriteBatch, the mutations a Store applies atomically, the report merge
// both stores share, Store's default Flush and SubmitAndWait (see store.h).
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "anneal/server/store/store.h"

namespace anneal {
namespace {

WriteBatch::Op NewOp(WriteBatch::Kind kind, const std::string& name) {
  WriteBatch::Op op;
  op.kind = kind;
  op.name = name;
  return op;
}

}  // namespace

void WriteBatch::Put(const v1::Schedule& schedule) {
  Op op = NewOp(Kind::kPut, schedule.name());
  schedule.SerializeToString(&op.record);
  ops_.push_back(std::move(op));
}

void WriteBatch::Delete(const std::string& name) {
  ops_.push_back(NewOp(Kind::kDelete, name));
}

void WriteBatch::Advance(const std::string& name, AdvanceRecord record) {
  Op op = NewOp(Kind::kAdvance, name);
  op.value = record.position;
  op.advance = std::move(record);
  ops_.push_back(std::move(op));
}

void WriteBatch::Served(const std::string& name, int64_t mark) {
  Op op = NewOp(Kind::kServed, name);
  op.value = mark;
  ops_.push_back(std::move(op));
}

void WriteBatch::ResetServed(const std::string& name, int64_t mark) {
  Op op = NewOp(Kind::kResetServed, name);
  op.value = mark;
  ops_.push_back(std::move(op));
}

void WriteBatch::Report(const std::string& name, v1::MetricReport report,
                        int64_t keep) {
  Op op = NewOp(Kind::kReport, name);
  op.value = keep;
  op.report = std::move(report);
  ops_.push_back(std::move(op));
}

absl::Status MergeReport(const v1::MetricReport& update,
                         v1::MetricReport* into) {
  int added = 0;
  for (const auto& [key, value] : update.metrics()) {
    if (!into->metrics().contains(key)) ++added;
  }
  const int total = into->metrics_size() + added;
  if (total > kMaxMetricsPerStep) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics: must leave step ", update.step(), " with at most ",
        kMaxMetricsPerStep,
        " metrics (merged with those reported before), got ", total));
  }
  for (const auto& [key, value] : update.metrics()) {
    (*into->mutable_metrics())[key] = value;
  }
  into->set_step(update.step());
  into->set_revision(update.revision());
  *into->mutable_report_time() = update.report_time();
  return absl::OkStatus();
}

absl::Status SubmitAndWait(Store& store, WriteBatch batch) {
  absl::Notification done;
  absl::Status result;
  store.Submit(std::move(batch), [&](absl::Status s) {
    result = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

// Batches commit in submission order, so an empty one is acknowledged after
// every batch before it.
absl::Status Store::Flush() { return SubmitAndWait(*this, WriteBatch()); }

}  // namespace anneal
