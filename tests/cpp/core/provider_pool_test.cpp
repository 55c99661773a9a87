// ProviderPool (anchors/rollout/provider_pool.h) over in-test members: load
// spreads, the per-member cap holds, a failing member's request is answered
// by another with the same completions, a failed member sits out its cooldown
// and is probed after it, and every way of giving up is a clear anchors::Error.
// Members block on gates (released by the test) rather than sleep; the only
// timed properties are lower bounds (a cooldown was sat out) and a generous
// upper bound on wait_seconds.
#include "anchors/rollout/provider_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "anchors/core/error.h"
#include "expect_error.h"

namespace anchors::rollout {
namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

// What every healthy member answers: lane k's text names the seed and lane,
// as a reproducible provider's lane depends only on (prompt, seed, k).
std::vector<Completion> echo(const CompletionRequest& r) {
  std::vector<Completion> out;
  for (std::int64_t k = 0; k < r.n; ++k)
    out.push_back({{static_cast<std::int64_t>(r.seed), k},
                   r.prompt_text + " | seed " + std::to_string(r.seed) + " lane " + std::to_string(k),
                   "stop"});
  return out;
}

std::vector<double> echo_logprobs(const CompletionRequest& r) {
  std::vector<double> out{std::nan("")};
  for (std::size_t k = 1; k < r.prompt_ids.size(); ++k) out.push_back(-static_cast<double>(r.prompt_ids[k]));
  return out;
}

CompletionRequest request(std::uint64_t seed, std::int64_t n = 2) {
  CompletionRequest r;
  r.prompt_ids = {1, 2, 3};
  r.prompt_text = "prompt";
  r.n = n;
  r.seed = seed;
  return r;
}

// A member whose behaviour the test sets: echo (the default), fail its first
// `fail_first` calls (always_fail: every call), answer `count_delta` values
// too many, and block every call while its gate is closed. It records its
// calls' start times and how many were in flight at once.
class FakeMember : public RolloutProvider {
 public:
  struct Behaviour {
    int fail_first = 0;
    bool always_fail = false;
    int count_delta = 0;
    bool gate_open = true;
  };
  FakeMember(std::string name, Behaviour b) : name_(std::move(name)), b_(b), open_(b.gate_open) {}

  std::string name() const override { return name_; }
  std::vector<Completion> complete(const CompletionRequest& r) override {
    const bool fail = enter();
    Leave leave{this};
    if (fail) throw Error(name_ + " is down");
    std::vector<Completion> out = echo(r);
    if (b_.count_delta < 0) out.resize(out.size() - static_cast<std::size_t>(-b_.count_delta));
    for (int i = 0; i < b_.count_delta; ++i) out.push_back(out.back());
    return out;
  }
  std::vector<double> prompt_logprobs(const CompletionRequest& r) override {
    const bool fail = enter();
    Leave leave{this};
    if (fail) throw std::runtime_error(name_ + " cannot score");  // a plain std::exception
    return echo_logprobs(r);
  }

  void close() {
    std::lock_guard lock(mutex_);
    open_ = false;
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits (up to 5 s) until `k` calls are in flight at once.
  bool wait_in_flight(int k) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [&] { return in_flight_ >= k; });
  }
  int calls() const {
    std::lock_guard lock(mutex_);
    return static_cast<int>(starts_.size());
  }
  int in_flight() const {
    std::lock_guard lock(mutex_);
    return in_flight_;
  }
  int max_in_flight() const {
    std::lock_guard lock(mutex_);
    return max_in_flight_;
  }
  std::vector<Clock::time_point> starts() const {
    std::lock_guard lock(mutex_);
    return starts_;
  }

 private:
  struct Leave {
    FakeMember* self;
    ~Leave() {
      std::lock_guard lock(self->mutex_);
      --self->in_flight_;
      self->cv_.notify_all();
    }
  };
  // Counts the call, waits for the gate, and says whether it is to fail.
  bool enter() {
    std::unique_lock lock(mutex_);
    const int index = static_cast<int>(starts_.size());
    starts_.push_back(Clock::now());
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    return b_.always_fail || index < b_.fail_first;
  }

  const std::string name_;
  const Behaviour b_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool open_;
  int in_flight_ = 0;
  int max_in_flight_ = 0;
  std::vector<Clock::time_point> starts_;
};

std::shared_ptr<FakeMember> member(const std::string& name, FakeMember::Behaviour b = {}) {
  return std::make_shared<FakeMember>(name, b);
}

// Threads that are joined on scope exit, after `cleanup` (opening gates) runs,
// so that a failed assertion cannot leave a thread blocked forever.
class Threads {
 public:
  explicit Threads(std::function<void()> cleanup = {}) : cleanup_(std::move(cleanup)) {}
  ~Threads() {
    if (cleanup_) cleanup_();
    for (std::thread& t : threads_) t.join();
  }
  void spawn(std::function<void()> f) { threads_.emplace_back(std::move(f)); }

 private:
  std::function<void()> cleanup_;
  std::vector<std::thread> threads_;
};

// The status entry of the member named `name`.
ProviderPool::MemberStatus status_of(const ProviderPool& pool, const std::string& name) {
  for (const auto& s : pool.status())
    if (s.name == name) return s;
  ADD_FAILURE() << "no member " << name;
  return {};
}

TEST(ProviderPoolTest, RejectsBadMembersAndOptions) {
  EXPECT_ANCHORS_ERROR(ProviderPool(std::vector<std::shared_ptr<RolloutProvider>>{}), "ProviderPool", "no members");
  EXPECT_ANCHORS_ERROR(ProviderPool({member("a"), nullptr}), "member 1 is null");
  auto with = [](auto set) {
    ProviderPoolOptions o;
    set(o);
    return ProviderPool({member("a")}, o);
  };
  EXPECT_ANCHORS_ERROR(with([](auto& o) { o.concurrency = 0; }), "concurrency 0 < 1");
  EXPECT_ANCHORS_ERROR(with([](auto& o) { o.cooldown_seconds = -1; }), "cooldown_seconds");
  EXPECT_ANCHORS_ERROR(with([](auto& o) { o.cooldown_max_seconds = INFINITY; }), "cooldown_max_seconds");
  EXPECT_ANCHORS_ERROR(with([](auto& o) { o.wait_seconds = NAN; }), "wait_seconds");
  EXPECT_NO_THROW(with([](auto& o) { o.wait_seconds = 0; }));
}

TEST(ProviderPoolTest, NameJoinsMemberNames) {
  EXPECT_EQ(ProviderPool({member("a"), member("openai:http://x (m)")}).name(), "pool[a, openai:http://x (m)]");
  EXPECT_EQ(ProviderPool({member("solo")}).name(), "pool[solo]");
}

TEST(ProviderPoolTest, SpreadsConcurrentRequestsOverMembers) {
  auto a = member("a"), b = member("b");
  ProviderPool pool({a, b});
  constexpr int kRequests = 20;
  std::atomic<int> next{0}, wrong{0};
  {
    Threads threads;
    for (int t = 0; t < 8; ++t)
      threads.spawn([&] {
        for (int i; (i = next++) < kRequests;)
          if (pool.complete(request(static_cast<std::uint64_t>(i), 3)) != echo(request(static_cast<std::uint64_t>(i), 3)))
            ++wrong;
      });
  }
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(a->calls(), 0);
  EXPECT_GT(b->calls(), 0);
  EXPECT_EQ(a->calls() + b->calls(), kRequests);
  EXPECT_EQ(status_of(pool, "a").requests, a->calls());
  EXPECT_EQ(status_of(pool, "b").requests, b->calls());
  for (const auto& s : pool.status()) {
    EXPECT_TRUE(s.healthy);
    EXPECT_EQ(s.failures, 0);
    EXPECT_EQ(s.in_flight, 0);
  }

  // Sequential requests alternate (ties go round robin).
  const int a_before = a->calls();
  for (int i = 0; i < 10; ++i) pool.complete(request(100));
  EXPECT_EQ(a->calls() - a_before, 5);
}

TEST(ProviderPoolTest, NeverExceedsTheConcurrencyPerMember) {
  auto a = member("a", {.gate_open = false}), b = member("b", {.gate_open = false});
  ProviderPoolOptions o;
  o.concurrency = 3;
  ProviderPool pool({a, b}, o);
  std::atomic<int> next{0}, done{0};
  {
    Threads threads([&] { a->open(), b->open(); });
    for (int t = 0; t < 8; ++t)
      threads.spawn([&] {
        for (int i; (i = next++) < 20;) {
          pool.complete(request(static_cast<std::uint64_t>(i)));
          ++done;
        }
      });
    // 8 callers, room for 3 + 3: both members fill up, two callers wait.
    ASSERT_TRUE(a->wait_in_flight(3));
    ASSERT_TRUE(b->wait_in_flight(3));
    EXPECT_EQ(status_of(pool, "a").in_flight, 3);
    EXPECT_EQ(status_of(pool, "b").in_flight, 3);
    EXPECT_EQ(done.load(), 0);
  }
  EXPECT_EQ(done.load(), 20);
  EXPECT_EQ(a->max_in_flight(), 3);
  EXPECT_EQ(b->max_in_flight(), 3);
  EXPECT_EQ(a->calls() + b->calls(), 20);
}

TEST(ProviderPoolTest, FailingMembersRequestIsAnsweredByAnotherWithIdenticalCompletions) {
  auto dead = member("dead", {.always_fail = true}), good = member("good");
  ProviderPoolOptions o;
  o.cooldown_seconds = 30;  // longer than the test: dead must get nothing more
  ProviderPool pool({dead, good}, o);
  const CompletionRequest r = request(7, 4);
  EXPECT_EQ(pool.complete(r), good->complete(r));  // the round-robin cursor starts at dead
  EXPECT_EQ(dead->calls(), 1);
  const auto s = status_of(pool, "dead");
  EXPECT_FALSE(s.healthy);
  EXPECT_EQ(s.failures, 1);
  EXPECT_EQ(s.requests, 1);
  EXPECT_GT(s.cooldown_left_seconds, 20);
  EXPECT_TRUE(status_of(pool, "good").healthy);

  for (std::uint64_t seed = 0; seed < 6; ++seed) EXPECT_EQ(pool.complete(request(seed)), echo(request(seed)));
  EXPECT_EQ(dead->calls(), 1);  // sitting out its cooldown
}

TEST(ProviderPoolTest, DeadMemberSitsOutEachCooldownThenGetsAProbe) {
  auto dead = member("dead", {.always_fail = true}), good = member("good");
  ProviderPoolOptions o;
  o.cooldown_seconds = 0.02;
  o.cooldown_max_seconds = 0.08;
  ProviderPool pool({dead, good}, o);
  int sent = 0;
  const auto give_up = Clock::now() + std::chrono::seconds(3);
  while (dead->calls() < 5 && Clock::now() < give_up) {
    ASSERT_EQ(pool.complete(request(static_cast<std::uint64_t>(sent))), echo(request(static_cast<std::uint64_t>(sent))));
    ++sent;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // pacing only
  }
  ASSERT_GE(dead->calls(), 5);  // probes after the cooldowns: 0.02 + 0.04 + 0.08 + 0.08 s
  EXPECT_GT(sent, dead->calls());
  EXPECT_EQ(good->calls(), sent);  // every request was answered by good
  // Between two calls to dead lies at least the cooldown its failure started:
  // 0.02 s doubled per consecutive failure, capped at 0.08 s.
  const auto starts = dead->starts();
  for (std::size_t i = 0; i + 1 < starts.size(); ++i) {
    const double cooldown = std::min(0.08, 0.02 * std::pow(2.0, static_cast<double>(i)));
    EXPECT_GE(Seconds(starts[i + 1] - starts[i]).count(), cooldown - 1e-6) << "probe " << i + 1;
  }
  EXPECT_EQ(status_of(pool, "dead").failures, dead->calls());
}

TEST(ProviderPoolTest, MemberRecoversAfterASuccessfulProbe) {
  auto flaky = member("flaky", {.fail_first = 2}), good = member("good");
  ProviderPoolOptions o;
  o.cooldown_seconds = 0.01;
  o.cooldown_max_seconds = 0.01;
  ProviderPool pool({flaky, good}, o);
  const auto give_up = Clock::now() + std::chrono::seconds(3);
  while (flaky->calls() < 3 && Clock::now() < give_up) {
    EXPECT_EQ(pool.complete(request(1)), echo(request(1)));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // pacing only
  }
  ASSERT_EQ(flaky->calls(), 3);  // two failures, then the successful probe
  const auto s = status_of(pool, "flaky");
  EXPECT_TRUE(s.healthy);
  EXPECT_EQ(s.failures, 2);
  EXPECT_EQ(s.cooldown_left_seconds, 0);
  // Healthy again: it takes its share.
  for (int i = 0; i < 10; ++i) pool.complete(request(2));
  EXPECT_EQ(flaky->calls(), 3 + 5);
}

TEST(ProviderPoolTest, OnProbationOneRequestAtATimeUntilTheProbeSucceeds) {
  auto p = member("p", {.fail_first = 1}), g = member("g");
  ProviderPoolOptions o;
  o.concurrency = 4;
  o.cooldown_seconds = 0.01;
  o.cooldown_max_seconds = 0.01;
  ProviderPool pool({p, g}, o);
  EXPECT_EQ(pool.complete(request(0)), echo(request(0)));  // p fails, g answers
  ASSERT_EQ(p->calls(), 1);
  const auto give_up = Clock::now() + std::chrono::seconds(3);
  while (status_of(pool, "p").cooldown_left_seconds > 0 && Clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(status_of(pool, "p").cooldown_left_seconds, 0);
  EXPECT_FALSE(status_of(pool, "p").healthy);  // on probation

  p->close();
  g->close();
  std::atomic<int> done{0};
  {
    Threads threads([&] { p->open(), g->open(); });
    for (int t = 0; t < 6; ++t)
      threads.spawn([&, t] {
        if (pool.complete(request(static_cast<std::uint64_t>(t))) == echo(request(static_cast<std::uint64_t>(t)))) ++done;
      });
    // Fewest-in-flight alone would send p half of them; probation sends it
    // one (the probe) while g fills to its cap.
    ASSERT_TRUE(p->wait_in_flight(1));
    ASSERT_TRUE(g->wait_in_flight(4));
    EXPECT_EQ(p->in_flight(), 1);
    EXPECT_EQ(p->max_in_flight(), 1);
  }
  EXPECT_EQ(done.load(), 6);
  EXPECT_TRUE(status_of(pool, "p").healthy);

  // Healthy again: it takes `concurrency` at once.
  p->close();
  g->close();
  {
    Threads threads([&] { p->open(), g->open(); });
    for (int t = 0; t < 8; ++t) threads.spawn([&] { pool.complete(request(9)); });
    ASSERT_TRUE(p->wait_in_flight(4));
    ASSERT_TRUE(g->wait_in_flight(4));
  }
  EXPECT_EQ(p->max_in_flight(), 4);
}

TEST(ProviderPoolTest, FailuresInFlightTogetherCountAsOneOutage) {
  auto f = member("f", {.always_fail = true, .gate_open = false});
  ProviderPoolOptions o;
  o.concurrency = 3;
  o.cooldown_seconds = 0.5;
  ProviderPool pool({f}, o);
  std::atomic<int> errors{0};
  {
    Threads threads([&] { f->open(); });
    for (int t = 0; t < 3; ++t)
      threads.spawn([&] {
        try {
          pool.complete(request(1));
        } catch (const Error&) {
          ++errors;
        }
      });
    ASSERT_TRUE(f->wait_in_flight(3));
  }
  EXPECT_EQ(errors.load(), 3);
  const auto s = status_of(pool, "f");
  EXPECT_EQ(s.failures, 3);
  EXPECT_FALSE(s.healthy);
  // One cooldown of 0.5 s, not 0.5 * 2 * 2.
  EXPECT_GT(s.cooldown_left_seconds, 0);
  EXPECT_LE(s.cooldown_left_seconds, 0.5);
}

TEST(ProviderPoolTest, EveryMemberFailingGivesAnErrorNamingEach) {
  auto a = member("a", {.always_fail = true}), b = member("b", {.always_fail = true});
  ProviderPool pool({a, b});
  EXPECT_ANCHORS_ERROR(pool.complete(request(1)), "pool: every member failed for this request", "a: a is down",
                       "b: b is down");
  EXPECT_EQ(a->calls(), 1);  // each at most once per request
  EXPECT_EQ(b->calls(), 1);
}

TEST(ProviderPoolTest, InvalidRequestReachesNoMember) {
  auto a = member("a"), b = member("b");
  ProviderPool pool({a, b});
  CompletionRequest r = request(1);
  r.n = 0;
  EXPECT_ANCHORS_ERROR(pool.complete(r), "pool", "n 0 < 1");
  EXPECT_ANCHORS_ERROR(pool.complete(CompletionRequest{}), "pool", "empty prompt");
  CompletionRequest no_ids = request(1);
  no_ids.prompt_ids.clear();
  EXPECT_ANCHORS_ERROR(pool.prompt_logprobs(no_ids), "pool", "prompt_ids");
  EXPECT_EQ(a->calls() + b->calls(), 0);
  for (const auto& s : pool.status()) {
    EXPECT_TRUE(s.healthy);
    EXPECT_EQ(s.requests, 0);
    EXPECT_EQ(s.failures, 0);
  }
  // prompt_logprobs ignores the sampling fields, n among them.
  EXPECT_EQ(pool.prompt_logprobs(r).size(), 3U);
}

TEST(ProviderPoolTest, WrongCompletionCountIsAMemberFailure) {
  auto short_member = member("short", {.count_delta = -1}), good = member("good");
  ProviderPoolOptions o;
  o.cooldown_seconds = 30;
  ProviderPool pool({short_member, good}, o);
  EXPECT_EQ(pool.complete(request(3, 2)), echo(request(3, 2)));
  EXPECT_EQ(short_member->calls(), 1);
  EXPECT_FALSE(status_of(pool, "short").healthy);
  EXPECT_EQ(status_of(pool, "short").failures, 1);

  auto long_member = member("long", {.count_delta = 1});
  ProviderPool alone({long_member});
  EXPECT_ANCHORS_ERROR(alone.complete(request(3, 2)), "every member failed", "long: returned 3 completions for n = 2");
}

TEST(ProviderPoolTest, WaitSecondsBoundsTheWaitForACoolingMember) {
  auto dead = member("dead", {.always_fail = true});
  ProviderPoolOptions o;
  o.cooldown_seconds = 30;
  o.wait_seconds = 0.2;
  ProviderPool pool({dead}, o);
  EXPECT_ANCHORS_ERROR(pool.complete(request(1)), "every member failed", "dead: dead is down");
  const auto start = Clock::now();
  EXPECT_ANCHORS_ERROR(pool.complete(request(1)), "pool: no member could take the request within wait_seconds",
                       "dead: cooling down");
  const double waited = Seconds(Clock::now() - start).count();
  EXPECT_GE(waited, 0.19);
  EXPECT_LT(waited, 2.0);
  EXPECT_EQ(dead->calls(), 1);
}

TEST(ProviderPoolTest, MemberCoolingDownAtTheStartIsEligibleWhenItComesBack) {
  auto flaky = member("flaky", {.fail_first = 1});
  ProviderPoolOptions o;
  o.cooldown_seconds = 0.05;
  o.wait_seconds = 10;
  ProviderPool pool({flaky}, o);
  EXPECT_ANCHORS_ERROR(pool.complete(request(1)), "every member failed", "flaky: flaky is down");
  EXPECT_EQ(pool.complete(request(1)), echo(request(1)));  // waits out the cooldown, then probes
  ASSERT_EQ(flaky->calls(), 2);
  const auto starts = flaky->starts();
  EXPECT_GE(Seconds(starts[1] - starts[0]).count(), 0.05 - 1e-6);
  EXPECT_TRUE(status_of(pool, "flaky").healthy);
}

TEST(ProviderPoolTest, PromptLogprobsRouteAroundFailures) {
  auto dead = member("dead", {.always_fail = true}), scorer = member("scorer");
  ProviderPool pool({dead, scorer});
  const CompletionRequest r = request(0);
  const std::vector<double> got = pool.prompt_logprobs(r);
  ASSERT_EQ(got.size(), 3U);
  EXPECT_TRUE(std::isnan(got[0]));
  EXPECT_EQ(got[1], -2);
  EXPECT_EQ(got[2], -3);
  EXPECT_EQ(dead->calls(), 1);
  EXPECT_FALSE(status_of(pool, "dead").healthy);

  ProviderPool alone({dead});
  // Each pool keeps its own state: dead is not cooling down in this one.
  EXPECT_ANCHORS_ERROR(alone.prompt_logprobs(r), "every member failed", "dead: dead cannot score");
}

}  // namespace
}  // namespace anchors::rollout
