#pragma once
// Receiver-head ablation (docs/attention-control.md "Head ablation"): the
// Thought Anchors paper's test of whether receiver heads matter to the
// outcome. The model re-solves the trace's problem `num_rollouts` times in
// each condition: nothing ablated, the receiver heads ablated (their output
// zeroed, AttentionControl::ablate_heads, from token `start` on), and
// `random_draws` times as many random heads drawn from the same layers (never
// a receiver head). Its Attribution compares the accuracies.
//
//   Context c;  c.model = model;  c.provider = provider;  c.output_dir = "runs/ablate";
//   c.options = {{"top_k", 16}, {"num_rollouts", 50}, {"random_draws", 3}};
//   Attribution a = make_method("head_ablation")->run(trace, c);
//   a.metadata["accuracy_receiver"], a.metadata["accuracy_random"]
//
// The receiver heads are this trace's top_k (receiver_heads.h; one forward
// pass), or the `heads` option. Random draw d depends only on (seed, d). The
// rollouts continue the trace's prompt (its problem), through
// intervene(): <output_dir>/head_ablation/<condition>/resample_0/ per
// condition, whose manifest records the control, so a re-run resumes exactly
// and a changed head set is an error, never mixed in. The provider must apply
// attention controls: LocalProvider, or `anchors serve` through
// OpenAIProvider (context.provider; a LocalProvider on context.model when
// null).
#include <map>
#include <string>
#include <vector>

#include "anchors/methods/method.h"

namespace anchors::rollout {

class HeadAblationMethod : public AttributionMethod {
 public:
  std::string name() const override { return "head_ablation"; }
  std::string description() const override;
  // heads, top_k, proximity_ignore, exclude_layer0, random_draws, start, and
  // the rollout options of the edit methods (num_rollouts, target, seed,
  // temperature, top_p, min_p, repetition_penalty, max_tokens, max_positions,
  // batch, kl_alpha).
  ValueMap default_options() const override;
  std::map<std::string, std::string> option_docs() const override;
  MethodNeeds needs() const override { return {/*model=*/true, /*rollouts=*/true}; }
  std::vector<std::string> headline_scores() const override { return {"receiver_score"}; }
  // scores: "receiver_score" (each sentence's mean vertical score under the
  // ablated heads: what they attend to, receiver_heads.h). matrices: "ablation_accuracy", one row per
  // condition (none, receiver, random_0, ...) with columns (rate, matching,
  // labelled, rollouts, errors, kl_from_none). metadata: conditions
  // ("none,receiver,random_0,..."), receiver_heads / random_heads_<d>
  // ("l:h,..."), accuracy_none, accuracy_receiver, accuracy_random (mean over
  // the draws), drop_receiver / drop_random (accuracy_none minus each),
  // output_dir. anchors::Error for no model, no output_dir, heads outside the
  // model, a layer without enough other heads for a random draw, or a failed
  // generation.
  Attribution run(const Trace& trace, const Context& context) const override;
};

}  // namespace anchors::rollout
