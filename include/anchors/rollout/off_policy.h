#pragma once
// Off-policy edits (docs/thought-branches.md, "Off-policy edits"): insert or
// substitute a text at a sentence, roll out from the edited prefix, and say
// both how much the outcome moved and how unlikely the model finds the text
// -- the Thought Branches point that hand-written edits are off-policy and
// behave differently from what the model itself would write. Registry name
// "off_policy".
//
// For every target sentence i and edit e (a text inserted after s_i, or
// substituted for it) the method runs rollout::intervene (the prefixes of
// intervention.h) with num_rollouts rollouts, and num_rollouts *kept*
// rollouts from right after s_i (resample(i + 1); none for the last
// sentence). Per sentence and edit:
//   <e>_rate_shift   rate(edit) - rate(kept)                 (with a target)
//   <e>_kl           KL(edit labels || kept labels), α = kl_alpha
//   <e>_logprob      mean log-probability per token of the edit's text under
//                    the model, in place (prompt + edited prefix), over the
//                    tokens overlapping the text (RolloutProvider::prompt_logprobs)
// and kept_rate, original_logprob (the same mean for s_i itself, before its
// own position: what an on-policy sentence scores), mean_rate_shift and
// mean_kl (over the edits: how far perturbing the sentence moves the outcome).
// NaN for sentences not targeted. The edits, by name:
//   wait, think                    "Wait," / "<think>" inserted after s_i (the
//                                  authors' wait / think injections)
//   question, doubt, alternative,  the authors' hand-written chain disruptions,
//   pause, ethical, consequence,   inserted after s_i
//   self_preservation
//   insert_<k>, substitute_<k>     the option texts insert_texts[k] /
//                                  substitute_texts[k] (JSON lists of strings)
//   donor_<name>                   with a donor trace: its sentence most
//                                  similar to the disruption <name> (cosine >=
//                                  donor_threshold), inserted: the authors'
//                                  "cross-model" insertion of a sentence some
//                                  model really wrote
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "anchors/core/trace.h"
#include "anchors/methods/method.h"

namespace anchors::rollout {

// The authors' fixed texts (measure_determination.py), by edit name.
const std::vector<std::pair<std::string, std::string>>& fixed_insertions();

// One edit of the method, resolved to its text.
struct OffPolicyEdit {
  std::string name;  // wait, insert_0, donor_doubt, ...
  std::string text;
  bool substitute = false;  // replaces s_i instead of following it
};

// Registry name "off_policy" (register_builtins() of anchors::anchors). Needs
// Context::provider, Context::output_dir and (for donor insertions)
// Context::similarity; the tokenizer is Context::tokenizer or the model's.
// anchors::Error for an unknown edit name, texts that are not a JSON list of
// non-empty strings, a donor file that cannot be read, or (with logprobs) a
// provider that cannot score prompts.
class OffPolicyMethod : public AttributionMethod {
 public:
  std::string name() const override { return "off_policy"; }
  std::string description() const override;
  ValueMap default_options() const override;
  std::map<std::string, std::string> option_docs() const override;
  // mean_rate_shift (with a target), mean_kl, original_logprob.
  std::vector<std::string> headline_scores() const override;
  MethodNeeds needs() const override { return {/*model=*/false, /*rollouts=*/true, /*similarity=*/false}; }
  Attribution run(const Trace& trace, const Context& context) const override;
};

}  // namespace anchors::rollout
