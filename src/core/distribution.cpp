// Answer distributions and the smoothed KL divergence
// (include/anchors/core/distribution.h, docs/distributions.md).
//
// Same formulas as the reference (analyze_rollouts.py calculate_kl_divergence,
// both of its variants); the only choices of ours are the input checks and
// how a zero-probability term is treated when alpha = 0 (0 log 0 = 0 and
// p log(p/0) = +inf, the mathematical limits, instead of a Python
// ZeroDivisionError / math domain error).
#include "anchors/core/distribution.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>

#include <fmt/format.h>

#include "anchors/core/answers.h"
#include "anchors/core/error.h"

namespace anchors {
namespace {

void check_alpha(double alpha, const char* function) {
  if (!std::isfinite(alpha) || alpha < 0) {
    throw Error(fmt::format("{}: alpha must be finite and >= 0, got {}", function, alpha));
  }
}

// One term p log(p / q) with its limits: 0 when p = 0, +inf when q = 0 < p.
double kl_term(double p, double q) {
  if (p <= 0) return 0.0;
  if (q <= 0) return std::numeric_limits<double>::infinity();
  return p * std::log(p / q);
}

// Every count is at most the total, so checking the total once before any
// change keeps all of them from wrapping.
void check_total(std::size_t total, std::size_t added, const char* function) {
  if (added > std::numeric_limits<std::size_t>::max() - total) {
    throw Error(fmt::format("{}: adding {} to a total of {} overflows the count (at most {})", function, added,
                            total, std::numeric_limits<std::size_t>::max()));
  }
}

}  // namespace

AnswerDistribution AnswerDistribution::from_answers(const std::vector<std::string>& answers,
                                                    bool normalize) {
  AnswerDistribution d;
  for (const auto& a : answers) d.add(a, 1, normalize);
  return d;
}

void AnswerDistribution::add(const std::string& answer, std::size_t count, bool normalize) {
  if (count == 0) return;
  std::string key = normalize ? normalize_answer(answer) : answer;
  if (key.empty()) return;
  check_total(total_, count, "AnswerDistribution::add");
  counts_[std::move(key)] += count;
  total_ += count;
}

void AnswerDistribution::merge(const AnswerDistribution& other) {
  check_total(total_, other.total_, "AnswerDistribution::merge");
  for (const auto& [answer, c] : other.counts_) counts_[answer] += c;
  total_ += other.total_;
}

std::size_t AnswerDistribution::count(const std::string& normalized_answer) const {
  const auto it = counts_.find(normalized_answer);
  return it == counts_.end() ? 0 : it->second;
}

double AnswerDistribution::probability(const std::string& normalized_answer) const {
  if (total_ == 0) return 0.0;
  return static_cast<double>(count(normalized_answer)) / static_cast<double>(total_);
}

double kl_divergence(const AnswerDistribution& p, const AnswerDistribution& q, double alpha) {
  check_alpha(alpha, "kl_divergence");
  if (p.empty() || q.empty()) return 0.0;

  std::set<std::string> support;
  for (const auto& [answer, c] : p.counts()) support.insert(answer);
  for (const auto& [answer, c] : q.counts()) support.insert(answer);
  const double v = static_cast<double>(support.size());
  const double total_p = static_cast<double>(p.total()) + alpha * v;
  const double total_q = static_cast<double>(q.total()) + alpha * v;

  double kl = 0.0;
  for (const auto& answer : support) {
    const double pa = (static_cast<double>(p.count(answer)) + alpha) / total_p;
    const double qa = (static_cast<double>(q.count(answer)) + alpha) / total_q;
    kl += kl_term(pa, qa);
  }
  // Rounding can leave a tiny negative sum for (near-)identical distributions.
  return std::max(0.0, kl);
}

double kl_divergence_binary(std::size_t correct_p, std::size_t total_p, std::size_t correct_q,
                            std::size_t total_q, double alpha) {
  check_alpha(alpha, "kl_divergence_binary");
  if (correct_p > total_p || correct_q > total_q) {
    throw Error(fmt::format(
        "kl_divergence_binary: correct count exceeds total (P: {}/{}, Q: {}/{})", correct_p,
        total_p, correct_q, total_q));
  }
  if (total_p == 0 || total_q == 0) return 0.0;
  // Both outcomes are computed from counts rather than as 1 - p, which would
  // lose most digits of a probability near alpha / N.
  const double np = static_cast<double>(total_p) + 2 * alpha;
  const double nq = static_cast<double>(total_q) + 2 * alpha;
  const double p_true = (static_cast<double>(correct_p) + alpha) / np;
  const double p_false = (static_cast<double>(total_p - correct_p) + alpha) / np;
  const double q_true = (static_cast<double>(correct_q) + alpha) / nq;
  const double q_false = (static_cast<double>(total_q - correct_q) + alpha) / nq;
  return std::max(0.0, kl_term(p_true, q_true) + kl_term(p_false, q_false));
}

}  // namespace anchors
