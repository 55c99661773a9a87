#pragma once
// Internal to src/core: the computation behind compute_resampling_metrics
// (anchors/core/resampling_metrics.h), shared by the two files that implement
// it: resampling_metrics.cpp (the paper's semantics, the matrix, the public
// functions) and resampling_metrics_compat.cpp (compat mode: the authors'
// analyze_rollouts.py, where its choices are arbitrary).
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "anchors/core/resampling_metrics.h"

namespace anchors::resampling_detail {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
using RolloutSet = std::vector<const Rollout*>;

// Similarity backends: the metrics ask for element-wise pairs (counterfactual
// split) and for cross products (matrix); each backend answers both in batches.
class SimilarityBackend {
 public:
  virtual ~SimilarityBackend() = default;
  // result[k] = sim(pairs[k].first, pairs[k].second)
  virtual std::vector<double> paired(const std::vector<std::pair<std::string, std::string>>& pairs) = 0;
  // result[a * rows_b.size() + b] = sim(rows_a[a], rows_b[b])
  virtual std::vector<double> cross(const std::vector<std::string>& rows_a,
                                    const std::vector<std::string>& rows_b) = 0;
};

struct Context {
  const ProblemRollouts& rollouts;
  const ResamplingMetricsOptions& options;
};

// The recorded flag (or the recomputed one) without any fallback: what the
// reference code sees in `sol.get("is_correct")`.
std::optional<bool> recorded_correctness(const Rollout& r, const Context& ctx);
// Every record of a file, errors and empty answers included.
RolloutSet all_records(const SentenceRollouts& file);

// One problem's metrics, sentence by sentence, then the matrix.
class MetricsComputation {
 public:
  MetricsComputation(const ProblemRollouts& rollouts, const ResamplingMetricsOptions& options,
                     SimilarityBackend& backend);
  ResamplingMetrics run();

 private:
  const SentenceRollouts& resampled(std::size_t p) const { return rollouts_.resampled[analysed_[p]]; }
  const SentenceRollouts& forced(std::size_t p) const { return rollouts_.forced[analysed_[p]]; }
  const std::string& text(std::size_t p) const { return rollouts_.chunks[analysed_[p]]; }

  void report();

  // The next analysed position after p whose file satisfies `has_data`.
  template <typename Pred>
  std::optional<std::size_t> next_with(std::size_t p, Pred has_data) const {
    for (std::size_t q = p + 1; q < analysed_.size(); ++q) {
      if (has_data(q)) return q;
    }
    return std::nullopt;
  }

  double kl(const RolloutSet& p, const RolloutSet& q) const;
  SentenceMetrics sentence_metrics(std::size_t p);

  // Paper semantics (resampling_metrics.cpp).
  void paper_resampling_and_counterfactual(std::size_t p, SentenceMetrics& m);
  void paper_forced(std::size_t p, SentenceMetrics& m);

  // analyze_rollouts.py semantics (resampling_metrics_compat.cpp).
  bool compat_has_info(std::size_t q) const;
  void compat_resampling(std::size_t p, SentenceMetrics& m);
  void compat_counterfactual(std::size_t p, SentenceMetrics& m);
  void compat_forced(std::size_t p, SentenceMetrics& m);

  // The sentence-to-sentence matrix (resampling_metrics.cpp; compat mode's
  // few differences are marked there).
  struct FolderMatches {
    std::size_t num_rollouts = 0;  // rollouts with non-empty text
    std::size_t num_steps = 0;
    std::vector<std::size_t> matches;  // per target j (index j - first_target)
  };
  const SentenceRollouts* matrix_folder(std::size_t q) const;
  FolderMatches folder_matches(std::size_t q, std::size_t first_target);
  Matrix matrix();
  void fill_row(Matrix& m, std::size_t i, const FolderMatches& resampled_i, const FolderMatches& kept_i) const;

  const ProblemRollouts& rollouts_;
  const ResamplingMetricsOptions& options_;
  Context ctx_;
  SimilarityBackend& backend_;
  std::vector<std::size_t> analysed_;  // chunk indices of the analysed sentences
  std::size_t done_ = 0;
  std::size_t total_work_ = 0;
};

}  // namespace anchors::resampling_detail
