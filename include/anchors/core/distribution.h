#pragma once
// Answer distributions over rollouts and the smoothed KL divergence between
// them (docs/design.md §3 "Distributions and KL"; docs/distributions.md).
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace anchors {

// The reference's additive smoothing (analyze_rollouts.py
// calculate_kl_divergence with laplace_smooth=False); its laplace_smooth=True
// is alpha = 1.
inline constexpr double kDefaultKlAlpha = 1e-9;

// Counts of normalized answers. Empty answers are not counted (a rollout with
// no answer carries no information about the answer distribution); neither
// are answers that normalize to the empty string.
class AnswerDistribution {
 public:
  AnswerDistribution() = default;
  static AnswerDistribution from_answers(const std::vector<std::string>& answers,
                                         bool normalize = true);

  // Adds `count` occurrences of `answer` (normalized with normalize_answer if
  // `normalize`; pass false for answers that are normalized already); empty
  // answers and count 0 are ignored. anchors::Error if total() would pass
  // SIZE_MAX (the count would wrap); the distribution is then unchanged.
  void add(const std::string& answer, std::size_t count = 1, bool normalize = true);
  // Adds every count of `other`; the same overflow error as add.
  void merge(const AnswerDistribution& other);

  std::size_t total() const { return total_; }
  // Number of distinct answers.
  std::size_t size() const { return counts_.size(); }
  // Exact lookup of an already-normalized answer; 0 if absent.
  std::size_t count(const std::string& normalized_answer) const;
  double probability(const std::string& normalized_answer) const;  // 0 when empty
  const std::map<std::string, std::size_t>& counts() const { return counts_; }
  bool empty() const { return total_ == 0; }

  friend bool operator==(const AnswerDistribution& a, const AnswerDistribution& b) {
    return a.counts_ == b.counts_;
  }
  friend bool operator!=(const AnswerDistribution& a, const AnswerDistribution& b) {
    return !(a == b);
  }

 private:
  std::map<std::string, std::size_t> counts_;
  std::size_t total_ = 0;
};

// KL(P || Q) in nats over the union of answers with additive smoothing alpha:
// p(a) = (c_P(a) + alpha) / (N_P + alpha * V), likewise q; V = |union|.
// Returns 0 if either side is empty; clamps the result at >= 0. With
// alpha = 0 an answer that P has and Q lacks makes the result +infinity.
// anchors::Error if alpha is negative or not finite.
double kl_divergence(const AnswerDistribution& p, const AnswerDistribution& q,
                     double alpha = kDefaultKlAlpha);

// KL between the two Bernoulli distributions of "answer is correct", the
// reference's use_prob_true=True variant: p = (correct_p + alpha) /
// (total_p + 2 alpha), likewise q; KL = p log(p/q) + (1-p) log((1-p)/(1-q)).
// Returns 0 if either total is 0; clamps at >= 0. (The published reference
// data were computed with the answer-distribution kl_divergence above; see
// docs/distributions.md.) anchors::Error if correct > total or alpha is
// negative or not finite.
double kl_divergence_binary(std::size_t correct_p, std::size_t total_p, std::size_t correct_q,
                            std::size_t total_q, double alpha = kDefaultKlAlpha);

}  // namespace anchors
