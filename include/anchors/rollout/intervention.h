#pragma once
// Prefix interventions (docs/interventions.md): edit a base trace at one
// sentence, then sample N continuations of the edited prefix — the primitive
// of the Thought Branches methods (hand-written insertions, substitutions,
// deletions, cross-model insertions). Every edit is compared with the plain
// resampling from the same sentence ("baseline": the prefix before sentence i,
// unedited).
//
//   using namespace anchors::rollout;
//   std::vector<Intervention> edits = {{InterventionKind::kInsert, 5, "Wait, let me re-check."},
//                                      {InterventionKind::kDelete, 3, ""}};
//   InterventionOptions o;  o.num_rollouts = 50;  o.outcome = outcome;
//   InterventionResult r = intervene(provider, tokenizer, trace, prompt, "57", edits, "runs/edits", o);
//   r.edits[0].rate - r.edits[0].baseline_rate;     // the outcome shift of the insertion
//
// The rollout prefix of an edit at sentence i (s_k = the trace's sentences as
// given, gap_i = the whitespace between s_i and s_{i+1}, " " after the last):
//   resample(i)       s_0 .. s_{i-1}                     (the baseline)
//   truncate(i)       s_0 .. s_i, then the outcome's forced_stub(): the
//                     chain cut after s_i, the model made to answer at once
//   insert(i, t)      s_0 .. s_i, t, gap_i               (t right after s_i)
//   substitute(i, t)  s_0 .. s_{i-1}, t, gap_i           (t in place of s_i)
//   delete(i)         s_0 .. s_{i-1}, s_{i+1}, gap_{i+1} (s_i skipped; i < last)
// always cut from the trace text itself (original whitespace kept). The prompt
// ids are tokenizer.encode(prompt + prefix [+ stub]): token-exact for
// providers that take ids. (Without the stub, truncate(i) would be
// resample(i+1).)
//
// Files: <out_dir>/<id>/ holds intervention.json (kind, sentence, text, the
// prefix) and chunk_0/solutions.json (the math-rollouts record format), id =
// "<kind>_<sentence>[_<fnv1a of text, 8 hex>]". The seeds of an edit depend
// only on (seed, id, batch): re-running resumes exactly the missing samples
// (atomic writes, as RolloutStore); a folder made for another trace or
// prompt is an error. Each edit's folder is written through a RolloutStore
// that holds its writer lock for the whole call and checks its manifest.json
// (hash of prompt + prefix, seed, sampling options, outcome): another process
// writing it at the same time, or a later run with another seed or option,
// is an anchors::Error naming the holder or the field.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "anchors/core/attention_control.h"
#include "anchors/core/distribution.h"
#include "anchors/core/outcome.h"
#include "anchors/core/run_control.h"
#include "anchors/core/trace.h"
#include "anchors/rollout/provider.h"

namespace anchors::model {
class Tokenizer;
}

namespace anchors::rollout {

enum class InterventionKind { kResample, kInsert, kSubstitute, kDelete, kTruncate };

// "resample", "insert", "substitute", "delete", "truncate"; anchors::Error for others.
std::string to_string(InterventionKind kind);
InterventionKind intervention_kind(const std::string& name);

struct Intervention {
  InterventionKind kind = InterventionKind::kResample;
  std::size_t sentence = 0;  // index into the trace's sentences
  std::string text;          // insert / substitute: the text (non-empty); others: ""
  bool operator==(const Intervention& o) const {
    return kind == o.kind && sentence == o.sentence && text == o.text;
  }
};

// The edited solution prefix (see the table above; truncate's stub is not
// part of it); anchors::Error for a
// sentence outside the trace, delete of the last sentence, insert/substitute
// without text, or text given to the other kinds.
std::string intervened_prefix(const Trace& trace, const Intervention& intervention);

// "<kind>_<sentence>" or "<kind>_<sentence>_<8 hex of fnv1a64(text)>".
std::string intervention_id(const Intervention& intervention);

struct InterventionOptions {
  std::int64_t num_rollouts = 50;   // per edit (and per baseline)
  bool baseline = true;             // also resample(i) for every edited sentence i
  std::uint64_t seed = 0;
  double temperature = 0.6, top_p = 0.95;
  double min_p = 0, repetition_penalty = 1;  // as AnalyzeOptions
  std::int64_t max_tokens = 16384;
  std::int64_t max_positions = 0;   // the model's context; 0 = no cap
  std::int64_t batch = 25;
  std::shared_ptr<const Outcome> outcome;  // null: BoxedAnswer
  // Attention changed while every rollout is generated (heads ablated, keys
  // suppressed or boosted; core/attention_control.h), part of each folder's
  // manifest; the provider must apply it (provider.h). Empty: none.
  AttentionControl attention_control;
  // progress (samples done, samples wanted, "rollouts") after every batch;
  // cancellation before every request.
  RunControl control;
};

// One edit's rollouts, read back from disk.
struct EditOutcome {
  Intervention intervention;
  std::string id;
  std::string prefix;                     // intervened_prefix
  std::string dir;                        // <out_dir>/<id>
  std::int64_t num_rollouts = 0;          // records that are rollouts
  std::int64_t num_errors = 0;            // error records (retried by the next run)
  std::int64_t num_labelled = 0;          // rollouts with a label
  std::int64_t num_matching = 0;          // ... that match the target
  std::map<std::string, std::int64_t> labels;  // distribution_key(label) -> count
  double rate = 0;                        // num_matching / num_labelled (NaN without labels or target)
  // The baseline resample(sentence) (NaN / empty when baseline is off or the
  // edit is itself a resample).
  double baseline_rate = 0;
  double rate_shift = 0;                  // rate - baseline_rate
  double kl_from_baseline = 0;            // KL(labels ‖ baseline labels), α = 1e-9 smoothing
};

// The edit's labels as a distribution (keys as counted: not normalised again).
AnswerDistribution label_distribution(const EditOutcome& edit);

struct InterventionResult {
  std::string out_dir;
  std::string outcome;                    // the outcome's name
  std::vector<EditOutcome> edits;         // in the order given
  std::vector<EditOutcome> baselines;     // one per distinct edited sentence, by sentence
  std::int64_t generated = 0;             // samples generated by this call
};

// Runs `interventions` on `trace` (its sentences as given; they must lie in
// trace.text): prompt ids = tokenizer.encode(prompt + intervened_prefix).
// prompt "" = trace.prompt, or when that is empty the raw reference prompt of
// trace.metadata["problem"] (as analyze_problem).
// target: the label outcome->matches is checked against ("" = none).
// anchors::Error for bad interventions or options, an out_dir holding
// another trace's edits, every request failing, or cancellation.
InterventionResult intervene(RolloutProvider& provider, const model::Tokenizer& tokenizer, const Trace& trace,
                             const std::string& prompt, const std::string& target,
                             const std::vector<Intervention>& interventions, const std::string& out_dir,
                             const InterventionOptions& options);

}  // namespace anchors::rollout
