#pragma once
// The on-policy intervention (docs/thought-branches.md, "On-policy
// intervention"): to put content with a target meaning in place of a
// sentence, let the model write it -- sample candidate sentences from the
// prefix before s_i and keep the one closest to the target -- then roll out
// from there, and compare with the off-policy edit that substitutes the
// target text itself. Registry name "on_policy".
//
// For every target sentence i and target t (text T_t):
//   candidates  `candidates` continuations of prompt + (text before s_i), of
//               at most candidate_tokens new tokens, seeded by (seed, i, t);
//               their first sentences (segmentation.h), distinct
//   chosen      the candidate with the highest similarity to T_t (ties: the
//               higher mean log-probability, when the provider can score);
//               "found" iff that similarity >= min_similarity. With
//               search_sentences k > 1, a chosen candidate below it is kept
//               (with the whitespace the model wrote after it) and the next
//               sentence is searched from prefix + kept text, seeded by
//               (seed, i, t, round), up to k sentences: the replacement of
//               s_i is the kept sentences and the last chosen one
//   on-policy   substitute(i, chosen) rolled out num_rollouts times (found only)
//   off-policy  substitute(i, T_t) rolled out num_rollouts times
//   kept        resample(i + 1), as off_policy.h
// Series per sentence (NaN elsewhere; prefix on_<t>_ / off_<t>_ for the two
// edits): _rate_shift (with a target) and _kl against the kept rollouts,
// _logprob (the text's mean log-probability per token in place),
// on_<t>_similarity (the last chosen candidate's), on_<t>_sentences (the
// sentences the search wrote), original_logprob, kept_rate,
// mean_rate_shift / mean_kl over all edits of the sentence. Metadata
// on_<t>_<i>: the chosen replacement text. Targets: the authors' disruption texts
// by name (option targets, off_policy.h's names) and target_texts (a JSON
// list; named target_<k>).
#include <map>
#include <string>
#include <vector>

#include "anchors/methods/method.h"

namespace anchors::rollout {

// Registry name "on_policy". Needs Context::provider, Context::similarity and
// Context::output_dir (tokenizer: Context::tokenizer or the model's).
// anchors::Error for unknown target names, target_texts that are not a JSON
// list of non-empty strings, no target at all, or (with logprobs) a provider
// that cannot score prompts.
class OnPolicyMethod : public AttributionMethod {
 public:
  std::string name() const override { return "on_policy"; }
  std::string description() const override;
  ValueMap default_options() const override;
  std::map<std::string, std::string> option_docs() const override;
  // mean_rate_shift (with a target), mean_kl, original_logprob.
  std::vector<std::string> headline_scores() const override;
  MethodNeeds needs() const override { return {/*model=*/false, /*rollouts=*/true, /*similarity=*/true}; }
  Attribution run(const Trace& trace, const Context& context) const override;
};

}  // namespace anchors::rollout
