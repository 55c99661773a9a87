#pragma once
// Black-box resampling metrics of one problem's rollouts (docs/design.md §3
// "Resampling"; docs/resampling-metrics.md has every definition and every
// difference from the authors' analyze_rollouts.py / step_attribution.py).
//
// Notation, per analysed sentence i (positions in ResamplingMetrics::sentences):
//   R_i   valid rollouts (non-empty answer) of chunk_i/solutions.json;
//   n     the next analysed sentence after i with at least one valid rollout;
//   T_r   a rollout's first resampled sentence (its chunk_resampled);
//   D_i   rollouts of R_i with cosine(S_i, T_r) < threshold, S_i the others;
//   F_i   valid forced-answer rollouts, with its own "next with data".
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "anchors/core/attribution.h"
#include "anchors/core/embedder.h"
#include "anchors/core/matrix.h"
#include "anchors/core/outcome.h"
#include "anchors/core/rollouts.h"
#include "anchors/core/run_control.h"
#include "anchors/core/segmentation.h"

namespace anchors {

// Where a rollout's correctness comes from.
enum class Correctness {
  // The recorded is_correct field; a rollout without one is compared with the
  // problem's gt_answer (answers_equivalent), or left out of accuracies when
  // there is no gt_answer.
  kRecorded,
  // Always answers_equivalent(answer, gt_answer), ignoring is_correct (the
  // authors' check_answer uses SymPy, which this library does not).
  kRecomputed,
};

// Sentence splitting for the steps of a rollout in the sentence-to-sentence
// matrix: the reference chunker without the analysis' short-chunk drop.
SegmentOptions default_rollout_segmentation();

struct ResamplingMetricsOptions {
  // τ: a resampled sentence with cosine < τ to the original is "different";
  // a rollout "contains" sentence S_j if one of its sentences has cosine ≥ τ.
  double similarity_threshold = 0.8;
  // Additive smoothing of the answer-distribution KL (as the reference).
  double kl_alpha = 1e-9;
  // Chunks shorter than this many code points are not analysed (as the
  // reference analysis); their rollouts are still read.
  std::size_t min_sentence_chars = 4;
  // Reproduce analyze_rollouts.py / step_attribution.py exactly where their
  // choices are arbitrary or buggy (0.0 instead of "no value", "next chunk"
  // rules, "None" answers, ...; see docs/resampling-metrics.md). Off: the
  // paper's definitions, NaN where a metric has no data.
  bool compat = false;
  Correctness correctness = Correctness::kRecorded;
  // What the labels are (outcome.h). Null: \boxed{} answers (answers_equivalent,
  // normalize_answer), as the paper. Otherwise a recomputed or missing
  // is_correct is outcome->matches(answer, gt_answer) and the label
  // distributions count outcome->distribution_key(answer) (compat mode keeps
  // the reference's \boxed{} counting for its KL).
  std::shared_ptr<const Outcome> outcome;
  // The S×S matrix costs one similarity per (target sentence, rollout
  // sentence) pair; switch it off when only per-sentence metrics are wanted.
  bool compute_matrix = true;
  SegmentOptions rollout_segmentation = default_rollout_segmentation();
  // Pairs per SentenceSimilarity::similarities() call (bounds memory), and
  // texts per Embedder::embed() call on the Embedder path.
  std::size_t similarity_batch_pairs = 65536;
  std::size_t embed_batch_size = 64;
  // progress(done, total, "steps") after each unit of work; cancellation
  // between units.
  RunControl control;
};

// Per-sentence results. Metrics are NaN where they have no value (no rollouts,
// no later sentence with data, no forced rollouts); in compat mode 0.0, as the
// reference writes.
struct SentenceMetrics {
  static constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

  std::size_t chunk_idx = 0;  // index in chunks.json and of the chunk_i folder
  std::string text;           // the sentence (chunks.json entry)

  double accuracy = kNoValue;  // acc(R_i)
  double resampling_importance_accuracy = kNoValue;      // acc(R_n) − acc(R_i)
  double resampling_importance_kl = kNoValue;            // KL(P(R_i) ‖ P(R_n))
  double counterfactual_importance_accuracy = kNoValue;  // acc(D_i) − acc(R_n)
  double counterfactual_importance_kl = kNoValue;        // KL(P(D_i) ‖ P(R_n ∪ S_i))
  double forced_importance_accuracy = kNoValue;          // acc(F_n) − acc(F_i)
  double forced_importance_kl = kNoValue;                // KL(P(F_i) ‖ P(F_n))
  double different_trajectories_fraction = kNoValue;     // |D_i| / |R_i|
  double overdeterminedness = kNoValue;                  // 1 − |distinct T_r| / |R_i|
  double forced_accuracy = kNoValue;                     // acc(F_i)
  // Log-odds forms of the three accuracy importances, for binary outcomes
  // (Thought Branches): lo(X) = ln((k + ½) / (m − k + ½)) over the m decided
  // rollouts of X of which k match the target (the ½ keeps 0 % and 100 %
  // finite). Same sign convention as the accuracy forms; NaN where they are
  // NaN; 0.0 in compat mode (the reference has no such metric).
  double resampling_importance_logodds = kNoValue;       // lo(R_n) − lo(R_i)
  double counterfactual_importance_logodds = kNoValue;   // lo(D_i) − lo(R_n)
  double forced_importance_logodds = kNoValue;           // lo(F_n) − lo(F_i)

  std::size_t num_rollouts = 0;        // |R_i| (valid: non-empty answer)
  std::size_t num_without_answer = 0;  // non-error records without an answer
  std::size_t num_errors = 0;          // error records (never counted as wrong)
  std::size_t num_different = 0;       // |D_i|
  std::size_t num_forced = 0;          // |F_i|
  std::size_t num_forced_errors = 0;
  std::optional<std::size_t> next_chunk_idx;         // chunk_idx of n, if any
  std::optional<std::size_t> next_forced_chunk_idx;  // same for the forced rollouts
};

struct ResamplingMetrics {
  std::string problem_id;
  std::vector<SentenceMetrics> sentences;  // analysed sentences, in order
  // M[i][j] (rows: source i, columns: target j, positions in `sentences`) =
  // matchrate(rollouts of sentence i+1's folder, which keep S_i)
  // − matchrate(rollouts of sentence i's folder, which resample S_i), j > i.
  // NaN elsewhere and where a side has no rollouts (compat: 0.0). Empty when
  // options.compute_matrix is off.
  Matrix sentence_to_sentence;
  ResamplingMetricsOptions options;

  // A per-sentence series by the metric's name ("accuracy",
  // "counterfactual_importance_kl", ...); anchors::Error for an unknown name.
  std::vector<double> series(const std::string& name) const;
  static const std::vector<std::string>& series_names();
};

// Similarities through `similarity` (a TableSimilarity of precomputed values,
// an EmbeddingSimilarity, ...), requested in batches.
ResamplingMetrics compute_resampling_metrics(const ProblemRollouts& rollouts,
                                             SentenceSimilarity& similarity,
                                             const ResamplingMetricsOptions& options = {});

// Same, embedding texts directly with `embedder` (e.g. all-MiniLM-L6-v2):
// each rollout sentence is embedded once and only while its chunk is being
// processed, so memory stays bounded on full-size rollout folders (an
// EmbeddingSimilarity would cache millions of embeddings). Cosines are
// bit-identical to cosine_similarity().
ResamplingMetrics compute_resampling_metrics(const ProblemRollouts& rollouts, Embedder& embedder,
                                             const ResamplingMetricsOptions& options = {});

// The metrics as an Attribution (method "resampling"): one score series per
// metric and count (see ResamplingMetrics::series_names), the matrix as
// "sentence_to_sentence", the options used, and problem_id / compat metadata.
// Scores index the analysed sentences.
Attribution to_attribution(const ResamplingMetrics& metrics);

}  // namespace anchors
