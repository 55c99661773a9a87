#pragma once
// Internal to src/torch/rollout: what the Thought Branches methods that roll
// out from edited prefixes share (off_policy.h, on_policy.h; resilience.h
// uses the target list): their common options, the target sentences, the
// edit texts given as JSON lists, the rollout settings as InterventionOptions,
// and the mean log-probability of a text in place.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "anchors/core/attribution.h"
#include "anchors/core/trace.h"
#include "anchors/core/value.h"
#include "anchors/methods/method.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/intervention.h"
#include "anchors/rollout/provider.h"

namespace anchors::rollout::detail {

// The rollout options every edit method has, with defaults and docs:
// num_rollouts (30), kl_alpha, target, seed, temperature, top_p, min_p,
// repetition_penalty, max_tokens, max_positions, batch.
ValueMap edit_rollout_options();
std::map<std::string, std::string> edit_rollout_option_docs();

// The sentences of option "sentences" (empty: all S), checked: anchors::Error
// "<who>: sentence N is not in the trace" / "is given twice".
std::vector<std::size_t> target_sentences(const IntList& given, std::size_t S, const std::string& who);

// The fixed texts (off_policy.h's fixed_insertions()) named in the
// comma-separated `names`, in that order (empty names skipped); with
// disruptions_only, "wait" and "think" are not among them. anchors::Error
// "<who>: unknown <what> \"x\" (known: ...)" for any other name.
std::vector<std::pair<std::string, std::string>> named_fixed_texts(const std::string& names, bool disruptions_only,
                                                                   const std::string& who, const std::string& what);

// A JSON list of non-empty strings ("" = none); anchors::Error naming the option otherwise.
std::vector<std::string> text_list(const std::string& who, const std::string& option, const std::string& value);

// The rollout options of resolved option map `o` as InterventionOptions (no
// baseline: the methods compare with the kept rollouts, resample(i + 1)),
// with the context's outcome and control.
InterventionOptions intervention_options(const ValueMap& o, const Context& context, const std::string& who);

// Option "target", else the trace's metadata gt_answer, else "".
std::string method_target(const ValueMap& o, const Trace& trace);

// The tokenizer of the context (its own, else the model's); anchors::Error naming `who` without one.
std::shared_ptr<const model::Tokenizer> context_tokenizer(const Context& context, const std::string& who);

// The mean log-probability per token of bytes [begin, end) of `prefix`, in
// place after `prompt` (provider.prompt_logprobs over encode(prompt + prefix),
// tokens overlapping the range; span_logprob).
double text_logprob(RolloutProvider& provider, const model::Tokenizer& tokenizer, const std::string& prompt,
                    const std::string& prefix, std::size_t begin, std::size_t end);

// One edit of a sentence, by the name its series get.
struct NamedEdit {
  std::string name;           // e.g. "doubt": series doubt_rate_shift, doubt_kl, doubt_logprob
  Intervention intervention;  // insert(i, text) or substitute(i, text)
};

// The part the edit methods share: for every target sentence i and its edits,
// the text's mean log-probability in place (<name>_logprob, and
// original_logprob for s_i itself; first, so a provider that cannot score
// fails before any generation; only when `logprobs`), then intervene() over
// every edit and the kept rollouts resample(i + 1) (none for the last
// sentence), then <name>_kl = KL(edit ‖ kept), <name>_rate_shift and kept_rate
// (with a target), and their means over each sentence's edits (mean_kl,
// mean_rate_shift). Series are NaN where not defined; `a` gets them.
void run_edits(const std::map<std::size_t, std::vector<NamedEdit>>& edits, const Trace& trace, const Context& context,
               const model::Tokenizer& tokenizer, const std::string& prompt, const std::string& target,
               const InterventionOptions& options, double kl_alpha, bool logprobs, Attribution& a);

}  // namespace anchors::rollout::detail
