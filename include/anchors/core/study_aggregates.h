#pragma once
// The paper's corpus-level figures from a StudyTable (study_table.h), with
// uncertainty: mean score by function tag (or by level, type, model, base
// kind) with bootstrap intervals over problems, the same after removing the
// effect of position, and the agreement between two methods' scores
// (docs/studies.md states every definition; tests/python/test_study.py checks
// each against a pandas reference).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "anchors/core/study_table.h"

namespace anchors {

struct AggregateOptions {
  // Bootstrap resamples of the problems (0: no interval, ci_low/ci_high NaN).
  std::size_t resamples = 1000;
  double confidence = 0.95;  // in (0, 1)
  std::uint64_t seed = 0;
  // Replace each score by its residual from the least-squares line
  // score ~ a + b * position fitted over every row with a finite score (the
  // paper's position-debiased view: late sentences matter less on average).
  bool debias_position = false;
};

// One group's figures.
struct GroupAggregate {
  std::string group;         // the tag (or level, type, ...)
  std::size_t sentences = 0; // rows with a finite score
  std::size_t problems = 0;  // distinct (model, problem) among them
  double mean = 0;           // mean score over those rows (pooled)
  double ci_low = 0, ci_high = 0;  // bootstrap percentile interval of the mean

  // Exact equality, NaN equal to NaN.
  bool operator==(const GroupAggregate& o) const;
};

// Mean of score column `score` (StudyTable::score's names) per value of the
// column `by`: "tag" (a sentence counts under its first tag), "level",
// "type", "model" or "base". Rows whose score is NaN or whose group is ""
// are left out. Groups: for "tag" in function_tag_names() order, then any
// other tag alphabetically; otherwise sorted.
//
// Bootstrap over problems: the clusters are the distinct (model, problem)
// pairs of the rows kept (all groups together), C of them. Resample b
// (0 <= b < resamples) draws C clusters with replacement, draw k being
// cluster splitmix64(seed + b * C + k) mod C (core/hash.h; the clusters in
// sorted order), so a test can redraw them; a group's statistic in that
// resample is the pooled mean over the drawn clusters' rows of the group (a
// cluster drawn twice counts twice), and a resample without such a row is
// skipped for that group. The interval is the (1 - confidence) / 2 and
// (1 + confidence) / 2 percentiles of the statistics, linearly interpolated
// as numpy.percentile's default ("linear"); NaN when no resample has the group.
// anchors::Error for an unknown score or `by`, or confidence outside (0, 1).
// Cost: O(resamples * rows).
std::vector<GroupAggregate> mean_by(const StudyTable& table, const std::string& score, const std::string& by,
                                    const AggregateOptions& options = {});

// Agreement of two score columns within each trace (a trace = the rows of one
// source): Spearman's rank correlation over the sentences where both are
// finite (average ranks for ties; NaN with fewer than 2 such sentences or a
// constant column), and the overlap of their top-k sentences,
// |top_k(a) ∩ top_k(b)| / k' with k' = min(k, those sentences) (ties broken
// by the earlier sentence). anchors::Error for an unknown score or k < 1.
struct TraceAgreement {
  std::string source;   // the trace's folder
  std::string model, problem, base;
  std::size_t sentences = 0;  // where both scores are finite
  double spearman = 0;
  double top_k_overlap = 0;
};
std::vector<TraceAgreement> method_agreement(const StudyTable& table, const std::string& score_a,
                                             const std::string& score_b, std::size_t k = 5);

// Split-half reliability of the receiver heads across traces ("receiver
// heads are consistent across traces"): the traces' per-head kurtosis
// matrices (StudyTable::matrices["receiver_heads.head_kurtosis"], [L x H]
// each, all of one shape) are split in two halves at random, each half's
// per-head mean kurtosis taken (NaN skipped), and the halves correlated
// (Pearson, over the heads finite in both; layer 0 left out unless
// include_layer0, as the receiver-head selection leaves it out).
// Split s (0 <= s < splits) shuffles the traces by Fisher-Yates, k from N-1
// down to 1 swapping k with splitmix64(seed + s * N + k) mod (k + 1); the
// first floor(N / 2) traces are one half, the rest the other. Reported: the
// mean r over splits and its Spearman-Brown correction 2r / (1 + r) (the
// reliability of the full set), and each split's r.
struct ReliabilityOptions {
  std::size_t splits = 100;
  std::uint64_t seed = 0;
  bool include_layer0 = false;
  std::string matrix = "receiver_heads.head_kurtosis";
};
struct SplitHalfReliability {
  std::size_t traces = 0;
  std::size_t heads = 0;          // heads correlated (finite in both halves of the first split)
  double mean_r = 0;              // mean over splits (NaN splits skipped)
  double spearman_brown = 0;      // 2 mean_r / (1 + mean_r)
  std::vector<double> split_r;    // one per split
};
// anchors::Error when the table has fewer than 4 traces with that matrix,
// matrices of different shapes, or splits == 0.
SplitHalfReliability receiver_head_reliability(const StudyTable& table, const ReliabilityOptions& options = {});

}  // namespace anchors
