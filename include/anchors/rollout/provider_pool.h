#pragma once
// One RolloutProvider over several (docs/rollout-providers.md, "Provider
// pools"): requests are spread over the members, a member that fails sits out
// a cooldown while the others answer, and a request that fails on one member
// is retried on another.
//
//   std::vector<std::shared_ptr<anchors::rollout::RolloutProvider>> members;
//   for (const char* url : {"http://gpu0:8000", "http://gpu1:8000"})
//     members.push_back(std::make_shared<anchors::rollout::OpenAIProvider>(
//         anchors::rollout::OpenAIOptions{.base_url = url, .model = "qwen"}));
//   anchors::rollout::ProviderPool pool(members, {.concurrency = 8});
//   auto completions = pool.complete({.prompt_ids = ids, .n = 50, .seed = 3});  // from any thread
//
// Members must serve the same model with the same tokenizer (the pool cannot
// check it). A request is sent whole to one member -- n is never split, so
// every lane keeps its seed -- and lane k depends only on (prompt, options,
// seed, k) on every member, so which member answers does not change the
// result: the pool is as reproducible as its members are across each other
// (`anchors serve` instances of one model folder are; vLLM engines are on one
// engine configuration).
//
// Routing (one mutex and condition variable; members are called outside it):
//   - A member *can take* a request when it is not cooling down, has fewer
//     than `concurrency` requests of the pool in flight and, while on
//     probation (below), has no probe in flight. Among those, the one with
//     the fewest in flight gets it; ties go round robin, so load spreads.
//   - When none can, the caller waits until a slot frees or a cooldown ends.
//     The time a request spends waiting, over all its attempts, is bounded by
//     wait_seconds; the time members spend answering is not (their own
//     timeouts bound that).
//   - A member's answer is a failure when it throws (anchors::Error or another
//     std::exception) or returns the wrong number of values (complete: n
//     completions; prompt_logprobs: one per prompt id). The member then cools
//     down for cooldown_seconds * 2^(f-1), at most cooldown_max_seconds, after
//     its f-th consecutive failure. Requests that were already in flight on it
//     and fail too are part of the same outage: they count in `failures` but
//     neither extend the cooldown nor double it. When the cooldown ends the
//     member is on probation: one request at a time goes to it (the probe);
//     the probe's success makes it healthy again (failure count reset), its
//     failure starts the next, doubled, cooldown.
//   - The failed request is retried on another member, each member at most
//     once per request (a member cooling down when the request starts is
//     eligible once its cooldown ends within the wait). Once it has failed on
//     every member: anchors::Error "pool: every member failed for this
//     request: <name>: <its error>; ...".
//   - The request is validated first (validate_request; prompt_logprobs: the
//     prompt ids): an invalid request is the caller's fault, an anchors::Error
//     that reaches no member and marks none unhealthy. A request that is valid
//     here but that every member rejects (e.g. an HTTP 400 for a prompt longer
//     than the servers' context) does put each member into a cooldown.
//   - An exception that is not a std::exception passes through unchanged (the
//     member's slot is freed; its health is not touched).
//
// Costs: O(members) per routing decision under the lock; the pool adds no
// copies of prompts or completions. Members see at most `concurrency`
// requests of this pool at once (a member's own limit, e.g.
// OpenAIOptions::max_concurrency, still applies below that; OpenAIProvider
// retries each request against its server before the pool sees a failure).
//
// Plain C++: this header needs no LibTorch. Safe to call from several threads.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "anchors/rollout/provider.h"

namespace anchors::rollout {

struct ProviderPoolOptions {
  int concurrency = 4;               // requests of this pool in flight per member, >= 1
  double cooldown_seconds = 5;       // a failed member sits out this long, doubled per consecutive failure
  double cooldown_max_seconds = 60;  // cap of the doubling
  // How long one request may wait, in all, for a member that can take it
  // before it gives up with anchors::Error (0: do not wait).
  double wait_seconds = 600;
};

class ProviderPool : public RolloutProvider {
 public:
  // One member's state, for progress displays (status()).
  struct MemberStatus {
    std::string name;                    // the member's name()
    int in_flight = 0;                   // requests of this pool it is answering now
    std::int64_t requests = 0;           // requests sent to it since construction
    std::int64_t failures = 0;           // of those, how many failed (threw or miscounted)
    bool healthy = true;                 // false from a failure until a later probe succeeds
    double cooldown_left_seconds = 0;    // > 0 while it sits out; 0 when it can be sent requests
  };

  // anchors::Error for no members, a null member, concurrency < 1, or a
  // negative or non-finite number of seconds. Reads each member's name() once.
  explicit ProviderPool(std::vector<std::shared_ptr<RolloutProvider>> members, ProviderPoolOptions options = {});
  ~ProviderPool() override;
  ProviderPool(const ProviderPool&) = delete;
  ProviderPool& operator=(const ProviderPool&) = delete;

  // "pool[<member name>, <member name>, ...]"
  std::string name() const override;
  // request.n completions in lane order, from one member (routing above).
  // anchors::Error "pool: ..." for an invalid request, when the request failed
  // on every member, or when no member could take it within wait_seconds.
  std::vector<Completion> complete(const CompletionRequest& request) override;
  // One log-probability per prompt id, from one member, routed as complete().
  // anchors::Error for a request without prompt_ids (or with a negative id);
  // a member that cannot score prompts counts as a failing member.
  std::vector<double> prompt_logprobs(const CompletionRequest& request) override;

  // Every member's state, in construction order (a consistent snapshot).
  std::vector<MemberStatus> status() const;
  const ProviderPoolOptions& options() const { return options_; }

 private:
  struct Impl;
  ProviderPoolOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace anchors::rollout
