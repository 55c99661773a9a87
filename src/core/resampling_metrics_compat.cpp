// Compat mode of the resampling metrics (ResamplingMetricsOptions::compat):
// analyze_rollouts.py's semantics where its choices are arbitrary, kept apart
// from the paper's (resampling_metrics.cpp). docs/resampling-metrics.md lists
// every difference.
#include <set>

#include "anchors/core/answers.h"
#include "resampling_metrics_internal.h"

namespace anchors::resampling_detail {
namespace {

// analyze_rollouts.py's chunk_accuracies: is_correct True and answer != "" over
// is_correct not None and answer != ""; 0.0 without data.
double compat_file_accuracy(const SentenceRollouts& file, const Context& ctx) {
  std::size_t total = 0, correct = 0;
  for (const Rollout& r : file.rollouts) {
    const auto c = recorded_correctness(r, ctx);
    if (!r.has_answer() || !c) continue;
    ++total;
    correct += *c ? 1 : 0;
  }
  return total == 0 ? 0.0 : static_cast<double>(correct) / static_cast<double>(total);
}

// analyze_rollouts.py's counterfactual accuracy over its chunk_info records,
// whose answer is normalised and whose is_correct defaults to False.
double compat_info_accuracy(const RolloutSet& set, const Context& ctx) {
  std::size_t total = 0, correct = 0;
  for (const Rollout* r : set) {
    if (normalize_answer(r->answer).empty()) continue;
    ++total;
    correct += recorded_correctness(*r, ctx).value_or(false) ? 1 : 0;
  }
  return total == 0 ? 0.0 : static_cast<double>(correct) / static_cast<double>(total);
}

// analyze_rollouts.py's chunk_info: records whose answer is neither "" nor the
// string "None" (Python's str(None)).
RolloutSet compat_info(const SentenceRollouts& file) {
  RolloutSet out;
  for (const Rollout& r : file.rollouts) {
    if (r.has_answer() && r.answer != "None") out.push_back(&r);
  }
  return out;
}

}  // namespace

// Its chunk_info holds a key for every analysed chunk whose solutions.json
// is a non-empty list, even if every record is an error.
bool MetricsComputation::compat_has_info(std::size_t q) const { return resampled(q).num_records() > 0; }

void MetricsComputation::compat_resampling(std::size_t p, SentenceMetrics& m) {
  const SentenceRollouts& file = resampled(p);
  m.accuracy = file.present ? compat_file_accuracy(file, ctx_) : 0.0;
  m.resampling_importance_accuracy = 0.0;
  m.resampling_importance_kl = 0.0;
  m.resampling_importance_logodds = 0.0;  // the reference has no log-odds: 0.0 like every value it lacks
  // Accuracy: literally chunk_idx + 1, which must be an analysed chunk with a file.
  if (file.present && p + 1 < analysed_.size() && analysed_[p + 1] == analysed_[p] + 1 &&
      resampled(p + 1).present) {
    m.resampling_importance_accuracy = compat_file_accuracy(resampled(p + 1), ctx_) - m.accuracy;
  }
  // KL: the next chunk_info key, over every record's answer ("None" included).
  if (!compat_has_info(p)) return;
  const auto next = next_with(p, [&](std::size_t q) { return compat_has_info(q); });
  if (!next) return;
  m.next_chunk_idx = analysed_[*next];
  m.resampling_importance_kl = kl(all_records(file), all_records(resampled(*next)));
}

void MetricsComputation::compat_counterfactual(std::size_t p, SentenceMetrics& m) {
  m.counterfactual_importance_accuracy = 0.0;
  m.counterfactual_importance_kl = 0.0;
  m.counterfactual_importance_logodds = 0.0;
  m.different_trajectories_fraction = 0.0;
  m.overdeterminedness = 0.0;
  if (!compat_has_info(p)) return;
  const auto next = next_with(p, [&](std::size_t q) { return compat_has_info(q); });
  if (!next) return;  // the reference returns 0 for all four without a next chunk
  const RolloutSet current = compat_info(resampled(p));
  const RolloutSet next_set = compat_info(resampled(*next));
  // The reference compares each record's own chunk_removed field.
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const Rollout* r : current) pairs.emplace_back(r->chunk_removed, r->chunk_resampled);
  const std::vector<double> sims = backend_.paired(pairs);
  RolloutSet different, similar;
  std::set<std::string> distinct_resampled;
  for (std::size_t k = 0; k < current.size(); ++k) {
    (sims[k] < options_.similarity_threshold ? different : similar).push_back(current[k]);
    distinct_resampled.insert(current[k]->chunk_resampled);
  }
  m.num_different = different.size();
  if (!current.empty()) {
    const double size = static_cast<double>(current.size());
    m.different_trajectories_fraction = static_cast<double>(different.size()) / size;
    m.overdeterminedness = 1.0 - static_cast<double>(distinct_resampled.size()) / size;
  }
  if (different.empty() || next_set.empty()) return;
  m.counterfactual_importance_accuracy =
      compat_info_accuracy(different, ctx_) - compat_info_accuracy(next_set, ctx_);
  RolloutSet kept = next_set;
  kept.insert(kept.end(), similar.begin(), similar.end());
  m.counterfactual_importance_kl = kl(different, kept);
}

void MetricsComputation::compat_forced(std::size_t p, SentenceMetrics& m) {
  m.forced_importance_accuracy = 0.0;
  m.forced_importance_kl = 0.0;
  m.forced_importance_logodds = 0.0;
  m.forced_accuracy = 0.0;
  if (!rollouts_.has_forced()) return;
  const SentenceRollouts& file = forced(p);
  m.num_forced = file.num_valid();
  m.num_forced_errors = file.num_errors;
  // Every analysed chunk has a forced accuracy (0.0 without data), so "next"
  // is simply the next analysed chunk.
  m.forced_accuracy = compat_file_accuracy(file, ctx_);
  if (p + 1 >= analysed_.size()) return;
  const SentenceRollouts& next_file = forced(p + 1);
  m.next_forced_chunk_idx = analysed_[p + 1];
  m.forced_importance_accuracy = compat_file_accuracy(next_file, ctx_) - m.forced_accuracy;
  m.forced_importance_kl = kl(all_records(file), all_records(next_file));
}

}  // namespace anchors::resampling_detail
