// Group commit, written once for every Store backend (leveldb's
// DBImpl::Write is the model).
//
// Submit() only queues. One thread takes everything queued (up to
// max_group_ops, at least one batch), hands it to the backend to apply in
// one transaction, and then runs the `done` callbacks in submission order,
// outside the lock, so N concurrent writers pay for one fsync instead of N.
//
// A backend failure puts the queue in the failed state of store.h: every
// later batch fails with the same error without reaching the backend, until
// Resume() finds (with the backend's probe) that it can commit again.
#ifndef ANNEAL_SERVER_STORE_COMMIT_QUEUE_H_
#define ANNEAL_SERVER_STORE_COMMIT_QUEUE_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "anneal/server/store/store.h"

namespace anneal {

class CommitQueue {
 public:
  // What a store plugs in. Called on the queue's thread only.
  class Backend {
   public:
    virtual ~Backend() = default;
    // Applies the non-empty batches of `group` in one transaction. On OK,
    // results[i] is batch i's own outcome (a batch that fails on its own is
    // rolled back alone); an error means nothing of the group was
    // committed.
    virtual absl::Status Commit(absl::Span<const WriteBatch* const> group,
                                absl::Span<absl::Status> results) = 0;
    // A real write, committed: OK if the backend can commit again.
    virtual absl::Status Probe() = 0;
  };

  struct Options {
    // Upper bound on the ops applied in one transaction. A group always
    // takes at least one batch, however large; the cap bounds how long the
    // batches queued behind a big group wait for their own commit.
    int max_group_ops = 4096;
    std::string thread_name = "anneal-store";
  };

  // `backend` must outlive the queue.
  CommitQueue(Backend* backend, Options options);
  // Commits (or fails) everything queued, then stops the thread.
  ~CommitQueue();
  CommitQueue(const CommitQueue&) = delete;
  CommitQueue& operator=(const CommitQueue&) = delete;

  void Submit(WriteBatch batch, Store::Done done);
  // Store::Resume.
  absl::Status Resume();
  StoreStats stats() const;

 private:
  struct Pending {
    WriteBatch batch;
    Store::Done done;
    bool probe = false;  // Resume's marker
  };

  void Loop();
  // Moves the next group off the queue: a probe alone, or queued batches,
  // oldest first, up to max_group_ops (at least one). False once stopping
  // and drained.
  bool NextGroup(std::vector<Pending>* group);
  // Commits `group` (or fails it, while failed) and runs its callbacks.
  void Run(std::vector<Pending>& group);

  Backend* const backend_;
  const Options options_;

  mutable absl::Mutex mu_;
  absl::CondVar work_;  // signalled when queue_ grows or stopping_ is set
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  StoreStats stats_ ABSL_GUARDED_BY(mu_);
  // The failure every batch gets while the store is failed (thread only).
  absl::Status failure_;

  std::thread thread_;  // last: Loop uses every member above
};

// A Store whose writes go through a CommitQueue over `Backend`, which it
// owns: every backend derives from it and adds its reads (LoadAll,
// ReadReports). The queue is destroyed, and so drained, before the backend.
class QueuedStore : public Store {
 public:
  void Submit(WriteBatch batch, Done done) final {
    queue_.Submit(std::move(batch), std::move(done));
  }
  absl::Status Resume() final { return queue_.Resume(); }
  StoreStats stats() const final { return queue_.stats(); }

 protected:
  QueuedStore(std::unique_ptr<CommitQueue::Backend> backend,
              CommitQueue::Options options)
      : backend_(std::move(backend)),
        queue_(backend_.get(), std::move(options)) {}

 private:
  std::unique_ptr<CommitQueue::Backend> backend_;  // the queue's thread only
  CommitQueue queue_;  // declared last: destroyed (drained) first
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_STORE_COMMIT_QUEUE_H_
