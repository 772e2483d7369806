// A fixed pool of threads for the server's heavy work.
//
// gRPC runs every handler on a few threads of its own. A handler that
// computes for long (a big Simulate, an Update's compile, a List over
// thousands of schedules) or waits would hold one of them, and health checks
// and Evaluate calls would queue behind it. Such work runs here instead,
// and gRPC's threads only hand it over.
//
//   WorkPool pool({.threads = 2, .max_queued = 256});
//   if (!pool.TryRun([call] { Heavy(call); })) Refuse(call);  // full
//   pool.Run([call] { Continue(call); });  // never refused
#ifndef ANNEAL_SERVER_COMMON_WORK_POOL_H_
#define ANNEAL_SERVER_COMMON_WORK_POOL_H_

#include <cstdint>
#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace anneal {

// Where the registry runs continuations (a read that waited for a fence or
// for its served mark): never on the store's thread.
class Executor {
 public:
  using Task = absl::AnyInvocable<void() &&>;
  virtual ~Executor() = default;
  // Runs `task` soon, on some other thread; never refuses.
  virtual void Run(Task task) = 0;
};

class WorkPool final : public Executor {
 public:
  struct Options {
    int threads = 2;
    // New work TryRun accepts while this much waits (Run ignores it:
    // continuations of work already admitted are never refused).
    int64_t max_queued = 256;
  };

  explicit WorkPool(Options options);
  // Runs what is queued, then joins the threads.
  ~WorkPool() override;
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  void Run(Task task) override;
  // Queues `task` unless max_queued tasks wait already; false then.
  bool TryRun(Task task);

  int64_t queued() const;

 private:
  void Loop();

  const Options options_;
  mutable absl::Mutex mu_;
  absl::CondVar work_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_COMMON_WORK_POOL_H_
