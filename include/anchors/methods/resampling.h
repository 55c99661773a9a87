#pragma once
// The black-box resampling method (registry name "resampling") over rollouts
// already on disk: wraps compute_resampling_metrics so it can be listed and run
// like every other method, and builds the Trace those rollouts belong to.
#include "anchors/core/resampling_metrics.h"
#include "anchors/core/rollouts.h"
#include "anchors/core/trace.h"
#include "anchors/methods/method.h"

namespace anchors {

// The base solution of `rollouts` as a Trace: sentences from the reference
// segmentation of base_solution.json's solution, checked against the analysed
// chunks of chunks.json when the resampling attribution is built (sentences
// shorter than min_sentence_chars are dropped, as the analysis does), metadata
// from problem.json and base_solution.json.
Trace trace_from_rollouts(const ProblemRollouts& rollouts, std::size_t min_sentence_chars = 4);

// The method's options (completed with defaults, see ResamplingMethod) as
// ResamplingMetricsOptions; anchors::Error for unknown names or bad values.
ResamplingMetricsOptions resampling_metrics_options(const ValueMap& options);

// `metrics` as the "resampling" attribution of `trace`, with the options used;
// anchors::Error if the trace's sentences are not the analysed sentences.
Attribution resampling_attribution(const Trace& trace, const ResamplingMetrics& metrics, const ValueMap& options);

class ResamplingMethod : public AttributionMethod {
 public:
  std::string name() const override { return "resampling"; }
  std::string description() const override;
  // similarity_threshold, kl_alpha, min_sentence_chars, compat, correctness
  // ("recorded" | "recomputed"), compute_matrix — see ResamplingMetricsOptions.
  ValueMap default_options() const override;
  // Needs context.rollouts and context.similarity; the trace's sentences must be
  // the rollouts' analysed sentences (see trace_from_rollouts). With
  // context.outcome, the rollouts are re-labelled with it first (metadata
  // "outcome" names it).
  Attribution run(const Trace& trace, const Context& context) const override;
};

}  // namespace anchors
