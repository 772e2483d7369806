// WriteBatch, the mutations a Store applies atomically, and Store's default
// Flush (see store.h).
#include "absl/synchronization/notification.h"
#include "server/store.h"

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

void WriteBatch::Served(const std::string& name, int64_t max_step_served) {
  Op op = NewOp(Kind::kServed, name);
  op.value = max_step_served;
  ops_.push_back(std::move(op));
}

absl::Status Store::Flush() {
  absl::Notification flushed;
  absl::Status result;
  Submit(WriteBatch(), [&](absl::Status s) {
    result = std::move(s);
    flushed.Notify();
  });
  flushed.WaitForNotification();
  return result;
}

}  // namespace anneal
