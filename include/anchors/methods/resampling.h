#pragma once
// The black-box resampling method (registry name "resampling"): scores rollouts
// already on disk (compute_resampling_metrics) and, linked with anchors::anchors
// (rollout::GeneratingResamplingMethod, registered by register_builtins()),
// generates them first; and the Trace those rollouts belong to.
#include "anchors/core/resampling_metrics.h"
#include "anchors/core/rollouts.h"
#include "anchors/core/trace.h"
#include "anchors/methods/method.h"

namespace anchors {

// The base solution of `rollouts` as a Trace: sentences from the reference
// segmentation of base_solution.json's solution, checked against the analysed
// chunks of chunks.json when the resampling attribution is built (sentences
// shorter than min_sentence_chars are dropped, as the analysis does), metadata
// from problem.json and base_solution.json. For an agentic folder
// (rollouts.problem.is_scenario()) the sentences are the analysed chunks of
// chunks.json themselves, located in the solution (chunked_solution,
// rollouts.h; metadata "text_source" says when the text had to be rebuilt from
// the chunks), and metadata adds "scenario", "nickname" and "behavior";
// anchors::Error naming chunks.json if its chunks cannot be placed.
Trace trace_from_rollouts(const ProblemRollouts& rollouts, std::size_t min_sentence_chars = 4);

// The method's options (completed with defaults, see ResamplingMethod) as
// ResamplingMetricsOptions; anchors::Error for unknown names or bad values.
ResamplingMetricsOptions resampling_metrics_options(const ValueMap& options);

// `metrics` as the "resampling" attribution of `trace`, with the scoring options
// used (the generation options go into metadata, where the generator puts
// them); anchors::Error if the trace's sentences are not the analysed sentences.
Attribution resampling_attribution(const Trace& trace, const ResamplingMetrics& metrics, const ValueMap& options);

// The options that change the scores (ResamplingMetricsOptions), with defaults:
// similarity_threshold, kl_alpha, min_sentence_chars, compat, correctness
// ("recorded" | "recomputed"), compute_matrix.
ValueMap resampling_scoring_options();
// The options that change the rollouts (rollout::AnalyzeOptions), with
// defaults: num_rollouts, forced, seed, temperature, top_p, min_p,
// repetition_penalty, max_tokens, max_positions, batch, forced_max_tokens.
ValueMap resampling_generation_options();

class ResamplingMethod : public AttributionMethod {
 public:
  std::string name() const override { return "resampling"; }
  std::string description() const override;
  // resampling_scoring_options() and resampling_generation_options().
  ValueMap default_options() const override;
  std::map<std::string, std::string> option_docs() const override;
  // counterfactual_importance_kl (the paper's headline), then
  // resampling_importance_kl, counterfactual_importance_accuracy.
  std::vector<std::string> headline_scores() const override;
  MethodNeeds needs() const override { return {/*model=*/false, /*rollouts=*/true, /*similarity=*/true}; }
  // With context.rollouts: scores them; the trace's sentences must be the
  // rollouts' analysed sentences (see trace_from_rollouts). With
  // context.outcome, the rollouts are re-labelled with it first (metadata
  // "outcome" names it). Without rollouts but with context.provider: generates
  // them (generate_and_score) into context.output_dir, then scores them.
  // context.similarity is needed either way.
  Attribution run(const Trace& trace, const Context& context) const override;

 protected:
  // Generation needs a tokenizer and so anchors::anchors: this core version is
  // an anchors::Error saying so; rollout::GeneratingResamplingMethod overrides it.
  virtual Attribution generate_and_score(const Trace& trace, const Context& context) const;
};

}  // namespace anchors
