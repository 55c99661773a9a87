#include "anchors/rollout/provider_pool.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "anchors/core/error.h"

namespace anchors::rollout {
namespace {

using Clock = std::chrono::steady_clock;

// Seconds as a steady_clock duration. Validated options are finite and >= 0;
// the clamp (about 30 years) keeps a huge value from overflowing the clock's
// integer ticks.
Clock::duration seconds_to_duration(double seconds) {
  const double clamped = std::min(std::max(seconds, 0.0), 1e9);
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(clamped));
}

double duration_to_seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

void check_seconds(double value, const char* field) {
  if (!std::isfinite(value) || value < 0)
    throw Error(fmt::format("ProviderPool: {} {} must be finite and >= 0", field, value));
}

}  // namespace

struct ProviderPool::Impl {
  struct Member {
    std::shared_ptr<RolloutProvider> provider;
    std::string name;
    int in_flight = 0;
    std::int64_t requests = 0;
    std::int64_t failures = 0;
    int consecutive_failures = 0;   // > 0: cooling down or on probation
    Clock::time_point cooldown_until{};
    bool probe_in_flight = false;
    // Incremented by every failure that starts a cooldown. A request carries
    // the epoch it was sent in: a failure from an older epoch belongs to an
    // outage already being sat out (requests in flight together fail
    // together), and a success from an older epoch is no probe.
    std::uint64_t epoch = 0;
  };

  ProviderPoolOptions options;
  std::vector<Member> members;
  mutable std::mutex mutex;
  std::condition_variable changed;  // a slot freed or a probe finished
  std::size_t next = 0;             // round-robin cursor for ties

  bool cooling(const Member& m, Clock::time_point now) const {
    return m.consecutive_failures > 0 && now < m.cooldown_until;
  }

  bool can_take(const Member& m, Clock::time_point now) const {
    if (m.in_flight >= options.concurrency) return false;
    if (m.consecutive_failures == 0) return true;
    return now >= m.cooldown_until && !m.probe_in_flight;  // on probation: one probe at a time
  }

  // The member for the next attempt, or members.size() when none of the
  // untried ones can take it now. Fewest in flight; ties: the first at or
  // after the round-robin cursor.
  std::size_t pick(const std::vector<bool>& tried, Clock::time_point now) const {
    const std::size_t count = members.size();
    std::size_t best = count;
    for (std::size_t step = 0; step < count; ++step) {
      const std::size_t i = (next + step) % count;
      if (tried[i] || !can_take(members[i], now)) continue;
      if (best == count || members[i].in_flight < members[best].in_flight) best = i;
    }
    return best;
  }

  std::string failures_text(const std::vector<bool>& tried, const std::vector<std::string>& errors) const {
    std::string out;
    for (std::size_t i = 0; i < members.size(); ++i) {
      if (!tried[i]) continue;
      if (!out.empty()) out += "; ";
      out += members[i].name + ": " + errors[i];
    }
    return out;
  }

  // Why each untried member could not take the request (lock held).
  std::string busy_text(const std::vector<bool>& tried, Clock::time_point now) const {
    std::string out;
    for (std::size_t i = 0; i < members.size(); ++i) {
      if (tried[i]) continue;
      const Member& m = members[i];
      if (!out.empty()) out += "; ";
      if (cooling(m, now))
        out += fmt::format("{}: cooling down for {:.3g} s more", m.name, duration_to_seconds(m.cooldown_until - now));
      else if (m.consecutive_failures > 0 && m.probe_in_flight)
        out += fmt::format("{}: probe in flight", m.name);
      else
        out += fmt::format("{}: {} requests in flight", m.name, m.in_flight);
    }
    return out;
  }

  // Sends the request to members in turn until `attempt` returns on one.
  // `attempt` calls the member and checks its answer, throwing on a bad one;
  // any std::exception from it is that member's failure.
  void route(const std::function<void(RolloutProvider&)>& attempt) {
    const std::size_t count = members.size();
    std::vector<bool> tried(count, false);
    std::vector<std::string> errors(count);
    std::size_t failed = 0;
    Clock::duration wait_left = seconds_to_duration(options.wait_seconds);
    for (;;) {
      std::size_t chosen = count;
      std::uint64_t epoch = 0;
      bool probe = false;
      {
        std::unique_lock lock(mutex);
        for (;;) {
          const Clock::time_point now = Clock::now();
          chosen = pick(tried, now);
          if (chosen < count) break;
          // Nothing to wait for: every member has failed this request once.
          if (failed == count)
            throw Error("pool: every member failed for this request: " + failures_text(tried, errors));
          if (wait_left <= Clock::duration::zero()) {
            std::string message = fmt::format("pool: no member could take the request within wait_seconds = {} ({})",
                                              options.wait_seconds, busy_text(tried, now));
            if (failed > 0) message += "; failed for this request: " + failures_text(tried, errors);
            throw Error(message);
          }
          // Wake when a slot frees (notified) or the first cooldown of an
          // untried member ends, whichever comes first, within the budget.
          Clock::time_point wake = now + wait_left;
          for (std::size_t i = 0; i < count; ++i)
            if (!tried[i] && cooling(members[i], now)) wake = std::min(wake, members[i].cooldown_until);
          changed.wait_until(lock, wake);
          wait_left -= Clock::now() - now;
        }
        Member& m = members[chosen];
        ++m.in_flight;
        ++m.requests;
        probe = m.consecutive_failures > 0;
        if (probe) m.probe_in_flight = true;
        epoch = m.epoch;
        next = (chosen + 1) % count;
      }

      std::string error;
      try {
        attempt(*members[chosen].provider);
      } catch (const std::exception& e) {
        error = e.what();
        if (error.empty()) error = "failed (an exception without a message)";
      } catch (...) {
        // Not a failure of the member's service (e.g. thread cancellation):
        // free the slot and let it pass.
        release(chosen, probe);
        throw;
      }

      if (error.empty()) {
        std::lock_guard lock(mutex);
        Member& m = members[chosen];
        --m.in_flight;
        if (probe) m.probe_in_flight = false;
        if (epoch == m.epoch) m.consecutive_failures = 0;
        changed.notify_all();
        return;
      }
      {
        std::lock_guard lock(mutex);
        Member& m = members[chosen];
        --m.in_flight;
        if (probe) m.probe_in_flight = false;
        ++m.failures;
        if (epoch == m.epoch) {
          ++m.epoch;
          ++m.consecutive_failures;
          // cooldown_seconds * 2^(f-1); the exponent's cap only keeps ldexp finite.
          const int doublings = std::min(m.consecutive_failures - 1, 1000);
          const double cooldown =
              std::min(options.cooldown_max_seconds, std::ldexp(options.cooldown_seconds, doublings));
          m.cooldown_until = Clock::now() + seconds_to_duration(cooldown);
        }
        tried[chosen] = true;
        errors[chosen] = std::move(error);
        ++failed;
        changed.notify_all();  // a freed slot, for requests on other members' behalf
      }
    }
  }

  void release(std::size_t chosen, bool probe) {
    std::lock_guard lock(mutex);
    --members[chosen].in_flight;
    if (probe) members[chosen].probe_in_flight = false;
    changed.notify_all();
  }
};

ProviderPool::ProviderPool(std::vector<std::shared_ptr<RolloutProvider>> members, ProviderPoolOptions options)
    : options_(options), impl_(std::make_unique<Impl>()) {
  if (members.empty()) throw Error("ProviderPool: no members (give at least one provider)");
  for (std::size_t i = 0; i < members.size(); ++i)
    if (!members[i]) throw Error(fmt::format("ProviderPool: member {} is null", i));
  if (options.concurrency < 1) throw Error(fmt::format("ProviderPool: concurrency {} < 1", options.concurrency));
  check_seconds(options.cooldown_seconds, "cooldown_seconds");
  check_seconds(options.cooldown_max_seconds, "cooldown_max_seconds");
  check_seconds(options.wait_seconds, "wait_seconds");
  impl_->options = options;
  impl_->members.reserve(members.size());
  for (auto& provider : members) {
    Impl::Member m;
    m.name = provider->name();
    m.provider = std::move(provider);
    impl_->members.push_back(std::move(m));
  }
}

ProviderPool::~ProviderPool() = default;

std::string ProviderPool::name() const {
  std::string out = "pool[";
  for (std::size_t i = 0; i < impl_->members.size(); ++i) {
    if (i > 0) out += ", ";
    out += impl_->members[i].name;
  }
  return out + "]";
}

std::vector<Completion> ProviderPool::complete(const CompletionRequest& request) {
  validate_request(request, "pool");
  std::vector<Completion> out;
  impl_->route([&](RolloutProvider& member) {
    std::vector<Completion> got = member.complete(request);
    if (static_cast<std::int64_t>(got.size()) != request.n)
      throw Error(fmt::format("returned {} completions for n = {}", got.size(), request.n));
    out = std::move(got);
  });
  return out;
}

std::vector<double> ProviderPool::prompt_logprobs(const CompletionRequest& request) {
  // The sampling fields are ignored here (RolloutProvider::prompt_logprobs),
  // so only the prompt ids are checked.
  if (request.prompt_ids.empty()) throw Error("pool: prompt_logprobs needs the request's prompt_ids");
  for (std::size_t i = 0; i < request.prompt_ids.size(); ++i)
    if (request.prompt_ids[i] < 0)
      throw Error(fmt::format("pool: prompt id {} at index {} is negative", request.prompt_ids[i], i));
  std::vector<double> out;
  impl_->route([&](RolloutProvider& member) {
    std::vector<double> got = member.prompt_logprobs(request);
    if (got.size() != request.prompt_ids.size())
      throw Error(
          fmt::format("returned {} log-probabilities for {} prompt ids", got.size(), request.prompt_ids.size()));
    out = std::move(got);
  });
  return out;
}

std::vector<ProviderPool::MemberStatus> ProviderPool::status() const {
  std::lock_guard lock(impl_->mutex);
  const Clock::time_point now = Clock::now();
  std::vector<MemberStatus> out;
  out.reserve(impl_->members.size());
  for (const Impl::Member& m : impl_->members) {
    MemberStatus s;
    s.name = m.name;
    s.in_flight = m.in_flight;
    s.requests = m.requests;
    s.failures = m.failures;
    s.healthy = m.consecutive_failures == 0;
    s.cooldown_left_seconds = impl_->cooling(m, now) ? duration_to_seconds(m.cooldown_until - now) : 0.0;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace anchors::rollout
