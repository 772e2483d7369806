// Once<Arg>: a completion that runs exactly once.
//
// The registry answers every request through one. If it is destroyed
// without having run (an exception such as std::bad_alloc unwound past it),
// it runs then, with RESOURCE_EXHAUSTED while unwinding and INTERNAL
// otherwise, so a caller is never left waiting for an answer that will not
// come and nothing it holds (a fence, a call) leaks.
//
//   Once<absl::Status> done = [](absl::Status s) { ... };
//   std::move(done)(absl::OkStatus());  // runs it; later calls do nothing
#ifndef ANNEAL_SERVER_COMMON_ONCE_H_
#define ANNEAL_SERVER_COMMON_ONCE_H_

#include <exception>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace anneal {

template <typename Arg>  // absl::Status or absl::StatusOr<T>
class Once {
 public:
  Once() = default;
  template <typename F>
  Once(F&& f) : fn_(std::forward<F>(f)) {}  // NOLINT: implicit by design
  Once(Once&& other) noexcept : fn_(std::exchange(other.fn_, nullptr)) {}
  Once& operator=(Once&& other) noexcept {
    if (this != &other) {
      Drop();
      fn_ = std::exchange(other.fn_, nullptr);
    }
    return *this;
  }
  Once(const Once&) = delete;
  Once& operator=(const Once&) = delete;
  ~Once() { Drop(); }

  explicit operator bool() const { return fn_ != nullptr; }

  void operator()(Arg arg) && {
    if (fn_ == nullptr) return;
    auto fn = std::exchange(fn_, nullptr);
    std::move(fn)(std::move(arg));
  }

 private:
  void Drop() {
    if (fn_ == nullptr) return;
    auto fn = std::exchange(fn_, nullptr);
    std::move(fn)(Arg(
        std::uncaught_exceptions() > 0
            ? absl::ResourceExhaustedError(
                  "server: out of memory while handling the "
                  "request; retry later")
            : absl::InternalError("server: the request was dropped unanswered "
                                  "(a bug)")));
  }

  absl::AnyInvocable<void(Arg) &&> fn_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_COMMON_ONCE_H_
