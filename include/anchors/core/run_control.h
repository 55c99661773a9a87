#pragma once
// The one convention for long-running work: every function that can take long
// (the methods, the metrics, the white-box passes, rollout generation) takes a
// RunControl, reports progress through it and stops at its cancellation flag.
//
//   std::atomic<bool> stop{false};
//   anchors::RunControl control;
//   control.progress = [](std::size_t done, std::size_t total, const std::string& unit) { ... };
//   control.cancel = &stop;          // stop = true from another thread
//
// Costs nothing when empty. progress is called from the running thread (keep
// it cheap); done counts up to total in units the callee names ("sentences",
// "rollouts", "layers", "traces", "steps"). A cancelled call throws
// anchors::Error("<who>: cancelled ...") at its next check point and leaves
// what it wrote to disk resumable.
#include <atomic>
#include <cstddef>
#include <functional>
#include <string>

#include "anchors/core/error.h"

namespace anchors {

struct RunControl {
  std::function<void(std::size_t done, std::size_t total, const std::string& unit)> progress;
  const std::atomic<bool>* cancel = nullptr;

  bool cancelled() const { return cancel != nullptr && cancel->load(); }
  void report(std::size_t done, std::size_t total, const std::string& unit) const {
    if (progress) progress(done, total, unit);
  }
  // anchors::Error("<who>: cancelled") when the flag is set.
  void check(const std::string& who) const {
    if (cancelled()) throw Error(who + ": cancelled");
  }
};

}  // namespace anchors
