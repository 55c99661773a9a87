#pragma once
// Attention steering (docs/attention-control.md "Attention steering"), in the
// spirit of attention-aware intervention (arXiv 2601.09805): does making
// selected heads look harder at a sentence change where the reasoning goes?
// For each target sentence i, the model continues the trace from just after
// it (the prefix s_0 .. s_i, as intervene()'s resample(i + 1))
// `num_rollouts` times plainly and `num_rollouts` times with the heads'
// scaled attention scores toward sentence i's tokens raised by +beta
// (AttentionControl::boost_keys) for every query from the end of sentence i
// on; the series are the outcome shift between the two.
//
// The heads are the trace's top-k receiver heads, or the `heads` option.
// Sentence i's key span is its prefix tokenisation in the rollout prompt:
// [#encode(prompt + text before s_i), #encode(prompt + text through s_i)).
// Files: <output_dir>/attention_steering/plain/resample_<i+1>/ and
// <output_dir>/attention_steering/steered_<i>/resample_<i+1>/ (intervene's
// layout; the control is part of each folder's manifest, so a re-run
// resumes and other heads or another beta are an error). The provider must
// apply attention controls (LocalProvider, or `anchors serve`).
#include <map>
#include <string>
#include <vector>

#include "anchors/methods/method.h"

namespace anchors::rollout {

class AttentionSteeringMethod : public AttributionMethod {
 public:
  std::string name() const override { return "attention_steering"; }
  std::string description() const override;
  // sentences ([] = every sentence but the last), beta, heads, top_k,
  // proximity_ignore, exclude_layer0, and the edit methods' rollout options.
  ValueMap default_options() const override;
  std::map<std::string, std::string> option_docs() const override;
  std::vector<std::string> headline_scores() const override { return {"steering_rate_shift", "steering_kl"}; }
  MethodNeeds needs() const override { return {/*model=*/true, /*rollouts=*/true}; }
  // scores (NaN for sentences not targeted): "steering_rate_shift" (steered
  // minus plain rate of the target label), "steering_kl" (KL of the steered
  // label distribution from the plain one), "steered_rate", "plain_rate",
  // "receiver_score" (what the heads attend to). metadata: "heads" ("l:h,..."),
  // "beta", "output_dir". anchors::Error for no model, no output_dir, a
  // target sentence outside the trace or the last one, or a failed generation.
  Attribution run(const Trace& trace, const Context& context) const override;
};

}  // namespace anchors::rollout
