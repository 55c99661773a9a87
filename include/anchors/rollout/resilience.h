#pragma once
// Resilience and counterfactual++ (docs/thought-branches.md): does the model
// *regenerate* a sentence's content when the sentence is removed, and what
// happens to the outcome once that content is really gone? The "fighting
// back" measurement of Thought Branches (Macar, Bogdan, Rajamanoharan & Nanda,
// 2025), registry name "resilience".
//
//   using namespace anchors::rollout;
//   ResilienceOptions o;  o.num_rollouts = 30;  o.sentences = {3, 7};
//   ResilienceResult r = measure_resilience(provider, tokenizer, trace, "", "57", similarity, "runs/res", o);
//   r.sentences[0].persistence;   // share of chains in which sentence 3's content kept coming back
//   r.sentences[0].cfpp;          // outcome rate with sentence 3 kept minus the rate once it is gone
//
// For a target sentence i with text o, each of num_rollouts independent
// *chains* runs rounds t = 1 .. K (K = max_iterations):
//   prefix_1 = the trace text before sentence i
//   round t: c_t = one continuation of prompt + prefix_t (a provider request);
//            split c_t into sentences; j = the one most similar to o
//            (first maximum), found iff similarity(o, c_t[j]) >= threshold;
//            found: prefix_{t+1} = prefix_t + c_t up to the start of c_t[j]
//                   (cut before the reappearance; resample there next round)
//            else : the chain is *abandoned* after t rounds.
//   A chain still finding the content in round K has *persisted*.
// A chain's outcome label is the outcome's reading of its last round's
// continuation. Besides the chains, num_rollouts *kept* rollouts continue the
// trace from right after sentence i (its prefix through sentence i and the
// whitespace after it): the outcome with the sentence present.
//
// Per target sentence (NaN where undefined, e.g. no complete chain, no target):
//   persistence   = #persisted / #complete chains
//   iterations    = mean rounds per complete chain (persisted chains count K)
//   returns       = mean times the content came back per complete chain
//                   (the authors' fighting_back_score)
//   abandoned_rate = outcome rate over the last rounds of abandoned chains
//                   (compat: over every complete chain, as the authors' code)
//   kept_rate     = outcome rate over the kept rollouts
//   cfpp          = kept_rate - abandoned_rate        ("counterfactual++", binary)
//   cfpp_kl       = KL(abandoned labels || kept labels), additive smoothing
//                   kl_alpha (our categorical form; the authors' code has none)
// Rates are #labels matching `target` / #labelled; without a target only the
// KL form is defined. The last sentence has no kept rollouts (nothing follows
// it to resample) and so no cfpp.
//
// Differences from the authors' code (docs/thought-branches.md): one request
// per round (they sample the first sentence with one long generation, drop the
// rest, and continue it with a second: the same distribution at twice the
// cost); the cut is at the matched sentence of the continuation itself (they
// re-segment the whole new reasoning and hope the prefix re-splits the same);
// the embedder is the caller's (they use bert-large-nli-stsb-mean-tokens; τ =
// 0.6 was chosen for it, MiniLM cosines are on another scale); a failed
// request leaves its chain for the next run instead of counting it abandoned.
//
// Files (out_dir, a RolloutStore folder: one writer, manifest checked):
//   chunk_<i>/solutions.json               the kept rollouts of sentence i
//   resilience/sentence_<i>/chain_<r>.json  chain r's rounds, rewritten
//                                          atomically after every round
// Seeds: round 1 of chain r is lane r % batch of a request seeded by (seed,
// i, r / batch); round t > 1 is a request of its own seeded by (seed, i, r,
// t). So a re-run (after a crash or SIGKILL) continues every chain at its
// last finished round and the files equal an uninterrupted run's byte for byte.
//
// Costs: per target sentence, num_rollouts kept samples plus between
// num_rollouts and num_rollouts * K chain samples of up to max_tokens tokens;
// one batched similarity call per round. Needs LibTorch only through the
// tokenizer (part of anchors::anchors).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "anchors/core/attribution.h"
#include "anchors/core/distribution.h"
#include "anchors/core/embedder.h"
#include "anchors/core/outcome.h"
#include "anchors/core/run_control.h"
#include "anchors/core/trace.h"
#include "anchors/methods/method.h"
#include "anchors/rollout/provider.h"

namespace anchors::model {
class Tokenizer;
}

namespace anchors::rollout {

struct ResilienceOptions {
  std::vector<std::int64_t> sentences;  // target sentences; empty = every sentence of the trace
  std::int64_t num_rollouts = 30;       // chains per target, and kept rollouts per target
  std::int64_t max_iterations = 20;     // K: rounds per chain at most
  double similarity_threshold = 0.6;    // "the content came back" at or above this similarity
  double kl_alpha = kDefaultKlAlpha;    // smoothing of cfpp_kl
  bool compat = false;                  // abandoned_rate over every complete chain (the authors' fb_after)
  std::uint64_t seed = 0;
  double temperature = 0.6, top_p = 0.95;
  double min_p = 0, repetition_penalty = 1;  // as AnalyzeOptions
  std::int64_t max_tokens = 16384;      // new tokens per request (capped by max_positions)
  std::int64_t max_positions = 0;       // the model's context; 0 = no cap
  std::int64_t batch = 25;              // samples per request (kept rollouts, first rounds)
  std::shared_ptr<const Outcome> outcome;  // null: BoxedAnswer
  // progress (chains finished + kept rollouts on disk, wanted, "rollouts")
  // after every round and batch; cancellation before every request.
  RunControl control;
};

struct SentenceResilience {
  std::size_t sentence = 0;
  std::string text;                      // the sentence o
  std::int64_t chains = 0;               // complete chains (abandoned or persisted)
  std::int64_t incomplete = 0;           // chains a failed request left for the next run
  std::int64_t persisted = 0, abandoned = 0;
  double persistence = 0, iterations = 0, returns = 0;
  double abandoned_rate = 0, kept_rate = 0, cfpp = 0, cfpp_kl = 0;
  std::map<std::string, std::int64_t> abandoned_labels;  // distribution_key(label) -> count (compat: all chains)
  std::map<std::string, std::int64_t> kept_labels;
};

struct ResilienceResult {
  std::string out_dir;
  std::string outcome;                    // the outcome's name
  std::vector<SentenceResilience> sentences;  // in target order
  std::int64_t generated = 0;             // samples generated by this call
  std::int64_t failed = 0;                // samples whose request failed (retried by the next run)
  Attribution attribution;                // method "resilience": the per-sentence series (see ResilienceMethod)
};

// Runs the measurement (see the top of this header) on `trace` (its sentences
// as given). prompt "" = trace.prompt, or the raw reference prompt of
// trace.metadata["problem"]. target: the label outcome->matches is checked
// against ("" = none: rates are NaN). anchors::Error for bad options or
// sentences, a folder holding another trace's or run's files, a chain file
// made for another sentence text, every request failing, or cancellation.
ResilienceResult measure_resilience(RolloutProvider& provider, const model::Tokenizer& tokenizer, const Trace& trace,
                                    const std::string& prompt, const std::string& target,
                                    SentenceSimilarity& similarity, const std::string& out_dir,
                                    const ResilienceOptions& options);

// The method's options (ResilienceMethod::default_options(), completed with
// defaults) as ResilienceOptions; anchors::Error for unknown names, wrong
// types or bad values.
ResilienceOptions resilience_options(const ValueMap& options);

// Registry name "resilience" (register_builtins() of anchors::anchors). Needs
// Context::provider, Context::similarity and Context::output_dir (tokenizer:
// Context::tokenizer or the model's); the target is the trace's metadata
// "gt_answer" (or the option "target"), the outcome Context::outcome. Series
// (one value per sentence, NaN for sentences not targeted):
// resilience_persistence, resilience_iterations, resilience_returns,
// kept_rate, abandoned_rate, counterfactual_plusplus_importance (these three
// only with a target), counterfactual_plusplus_importance_kl; metadata
// outcome, target, provider, output_dir and incomplete_chains (chains a
// failed request left for the next run: 0 once everything is done).
class ResilienceMethod : public AttributionMethod {
 public:
  std::string name() const override { return "resilience"; }
  std::string description() const override;
  ValueMap default_options() const override;
  std::map<std::string, std::string> option_docs() const override;
  // counterfactual_plusplus_importance, counterfactual_plusplus_importance_kl, resilience_persistence.
  std::vector<std::string> headline_scores() const override;
  MethodNeeds needs() const override { return {/*model=*/false, /*rollouts=*/true, /*similarity=*/true}; }
  Attribution run(const Trace& trace, const Context& context) const override;
};

}  // namespace anchors::rollout
