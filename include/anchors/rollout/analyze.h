#pragma once
// The end-to-end black-box pipeline (docs/design.md §3 "Resampling";
// docs/rollout-providers.md, section "anchors analyze"): from a problem to the
// math-rollouts folder, the reference-schema files and our result JSON.
//
//   auto model = anchors::model::CausalLM::load(dir);
//   anchors::rollout::LocalProvider provider(model);
//   anchors::EmbeddingSimilarity similarity(anchors::model::BertEmbedder::load(minilm_dir));
//   anchors::rollout::AnalyzeOptions options;  options.num_rollouts = 100;  options.forced = true;
//   auto done = anchors::rollout::analyze_problem(provider, *model->tokenizer(), problem, "out",
//                                                 similarity, options);
//   // done.problem_dir: out/correct_base_solution/problem_N (chunk_i/solutions.json,
//   // chunks_labeled.json, step_importance.json, summary.json, result.json)
//
// The steps, each taking and returning values (analyze_problem runs them in
// order; make_method("resampling") with a provider in its Context runs 3-7 on
// the caller's trace):
//  1. prompt = analysis_prompt(problem, options.prompt).
//  2. base_trace: the base solution already on disk (reused, never
//     regenerated), options.base_solution, or one completion (seed derived
//     from options.seed and the attempt) regenerated until it has a sentence
//     and matches options.base. Writes nothing.
//  3. The store: the problem's folder holding this base solution, else
//     <out>/<kind>_base_solution/problem_N with problem.json,
//     base_solution.json and chunks.json (the trace's sentences, as given).
//     This run is its only writer through step 7 (the folder's lock), and
//     its manifest.json must record this base solution, seed and generation
//     settings (rollout_store.h): another writer at the same time, or a later
//     run with another seed or option, is an anchors::Error, never mixed in.
//  4. The plan: for every sentence i (and, with `forced`, its forced pass) the
//     prompt + trace text before sentence i, encoded; batch seeds depend only
//     on (seed, i, forced, batch index).
//  5. Generation of what the store misses (RolloutStore: a re-run regenerates
//     exactly the samples still missing).
//  6. Reading the store back, 7. the metrics, written atomically with the
//     reference-schema files; the "resampling" attribution of the trace.
//
// Needs LibTorch only through the caller's provider and tokenizer (part of
// anchors::anchors).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "anchors/core/attribution.h"
#include "anchors/core/embedder.h"
#include "anchors/core/outcome.h"
#include "anchors/core/resampling_metrics.h"
#include "anchors/core/rollouts.h"
#include "anchors/core/run_control.h"
#include "anchors/core/trace.h"
#include "anchors/methods/resampling.h"
#include "anchors/rollout/provider.h"

namespace anchors::model {
class Tokenizer;
}

namespace anchors::rollout {

struct AnalyzeOptions {
  std::int64_t num_rollouts = 100;  // per sentence (and per sentence for the forced rollouts)
  bool forced = false;              // also the forced-answer rollouts
  std::uint64_t seed = 0;
  double temperature = 0.6, top_p = 0.95;
  // min-p (0 = off) and the repetition penalty (1 = off), passed to the
  // provider (LocalProvider samples with them; OpenAIProvider sends them).
  double min_p = 0, repetition_penalty = 1;
  // New tokens per rollout; capped so prompt + completion fits max_positions.
  std::int64_t max_tokens = 16384;
  // The model's context (max_position_embeddings); 0 = no cap.
  std::int64_t max_positions = 0;
  // "any" | "correct" | "incorrect": the base trace is regenerated (next
  // attempt's seed) until it matches, at most base_attempts times. "correct" /
  // "incorrect" need problem.gt_answer.
  std::string base = "any";
  std::int64_t base_attempts = 10;
  // A base solution of the caller's (the text after the prompt: chain of
  // thought and answer) instead of a generated one; `base` must then be "any"
  // or match its correctness. A folder that already holds another base
  // solution for the problem is an error.
  std::optional<std::string> base_solution;
  // The prompt before the solution; "" = the raw reference prompt of the
  // problem (model::render_prompt_text(kRaw, problem.text)).
  std::string prompt;
  std::int64_t batch = 25;          // samples per request
  // The "resampling" method's scoring options by name
  // (resampling_scoring_options(): similarity_threshold, kl_alpha,
  // min_sentence_chars, compat, correctness, compute_matrix); those not given
  // take their defaults. Checked before any generation.
  ValueMap scoring;
  // New tokens of a forced-answer rollout (the answer after the stub).
  std::int64_t forced_max_tokens = 32;
  // What a rollout ended in (outcome.h): its label becomes the record's
  // "answer" and matches(label, problem.gt_answer) its "is_correct"; forced
  // rollouts continue after outcome->forced_stub(). Null: BoxedAnswer.
  std::shared_ptr<const Outcome> outcome;
  // progress (rollouts on disk that count, rollouts wanted, "rollouts") once
  // before the first batch and after every batch; cancellation before every
  // request (anchors::Error "analyze: cancelled ..."; what is on disk stays
  // resumable).
  RunControl control;
};

struct AnalyzeResult {
  std::string problem_dir;  // <out_root>/<kind>_base_solution/problem_N
  std::string forced_dir;   // its forced-answer sibling ("" without forced)
  std::string result_path;  // <problem_dir>/result.json
  AnalysisResult result;    // the trace (as given, or base_trace's) + its "resampling" attribution
  ResamplingMetrics metrics;
  bool base_reused = false;       // the base solution was already on disk
  std::int64_t generated = 0;     // samples generated by this call
  std::int64_t failed = 0;        // error records left on disk (retried by the next run)
};

// The stub appended after sentences 0..i-1 for forced-answer rollouts of
// \boxed{} answers (outcome.h; other outcomes bring their own forced_stub()).
using anchors::kForcedAnswerStub;

// "problem_N" with N = FNV-1a 64 of the problem text modulo 10^8: the same
// problem always lands in the same folder (so a re-run resumes it).
std::string problem_folder_name(const Problem& problem);

// The seed of batch `batch_index` of sentence `sentence` (splitmix64 mixing).
std::uint64_t rollout_batch_seed(std::uint64_t seed, std::size_t sentence, bool forced, std::int64_t batch_index);

// Step 1: `prompt`, or when empty: for a scenario (Problem::is_scenario())
// its prompt in its "prompt_format" (docs/thought-branches.md "Scenario
// files": "thought_branches", the default, is scenario_prompt(problem), the
// authors' text layout; "raw", "deepseek_r1" and "qwen3" render the
// scenario's turns, problem_messages(problem), with the model's chat format,
// model::render_chat_prompt_text), else the raw reference prompt of the
// problem (model::render_prompt_text(kRaw, problem.text)). anchors::Error
// naming the field or the roles for an unknown prompt_format or turns the
// format cannot render (raw: one user turn only).
std::string analysis_prompt(const Problem& problem, const std::string& prompt);

// What a scenario says its rollouts end in: its "outcome" spec
// (outcome_from_spec, with "judge_model", "judge_prompt" and "judge_labels"
// for a judge). Null for a problem, or a scenario without "outcome".
// anchors::Error naming the field for a bad spec or a field of the wrong type.
std::shared_ptr<const Outcome> scenario_outcome(const Problem& problem);

// The outcome a black-box method uses: Context::outcome, else the outcome of
// the scenario in the trace's metadata "scenario" (base_trace_of and the
// importer put it there), else null (the engines' default, BoxedAnswer).
std::shared_ptr<const Outcome> method_outcome(const Context& context, const Trace& trace);

// The trace of a base solution as analyze makes it: prompt (step 1), text =
// solution, answer = the outcome's label, sentences = split_sentences with
// nothing dropped (the reference's chunks), metadata problem_id, problem,
// gt_answer (when known) and is_correct ("true" / "false", when known).
Trace base_trace_of(const Problem& problem, const std::string& prompt, const std::string& solution,
                    const Outcome& outcome);

// Step 2 (see above). anchors::Error for invalid options or problem (as
// analyze_problem), a folder holding another problem, base solution or
// prompt, a failed base request and a base that never matched.
struct BaseTrace {
  Trace trace;
  bool reused = false;  // read from a folder under out_root
};
BaseTrace base_trace(RolloutProvider& provider, const model::Tokenizer& tokenizer, const Problem& problem,
                     const std::string& out_root, const AnalyzeOptions& options);

// Steps 3-7 on `trace`, whose metadata names the problem ("problem",
// "gt_answer") and whose prompt is Trace::prompt (analysis_prompt when empty):
// rollouts for every sentence as given, scored with options.scoring. Writes
// no result.json. anchors::Error, besides analyze_problem's provider errors,
// for a trace without sentences, a sentence shorter than min_sentence_chars (4
// code points by default), a trace without metadata "problem", and a folder
// that holds another base solution, prompt or sentences of the problem.
AnalyzeResult resample_trace(RolloutProvider& provider, const model::Tokenizer& tokenizer, const Trace& trace,
                             const std::string& out_root, SentenceSimilarity& similarity,
                             const AnalyzeOptions& options);

// Steps 1-7 and result.json. anchors::Error for invalid options or problem (empty text, num_rollouts < 1,
// batch < 1, base not any/correct/incorrect, base correct/incorrect without a
// gt_answer, ...), for a base trace that never matched, and for cancellation.
// Provider failures during resampling become error records (retried next run)
// and are counted in AnalyzeResult::failed; a failure of the base request is
// an error, and so is a call in which every request failed (a provider that
// does not work: the error records stay for the next run) or a provider that
// returns a different number of completions than asked (a broken provider).
AnalyzeResult analyze_problem(RolloutProvider& provider, const model::Tokenizer& tokenizer, const Problem& problem,
                              const std::string& out_root, SentenceSimilarity& similarity,
                              const AnalyzeOptions& options);

// make_method("resampling") once anchors::register_builtins() has run: the
// core's ResamplingMethod, which also generates. With Context::rollouts it
// scores them; otherwise, with Context::provider, it runs resample_trace's
// steps with Context::tokenizer (or the model's), Context::output_dir,
// Context::similarity, Context::outcome, Context::control and the options
// (analyze_options). Byte-identical rollouts to analyze_problem for the same
// trace and options.
class GeneratingResamplingMethod : public ResamplingMethod {
 protected:
  Attribution generate_and_score(const Trace& trace, const Context& context) const override;
};

// The "resampling" method's options as AnalyzeOptions: the generation ones
// (resampling_generation_options(), completed with defaults) as fields, the
// scoring ones in AnalyzeOptions::scoring; anchors::Error for unknown names
// or wrong types.
AnalyzeOptions analyze_options(const ValueMap& options);

}  // namespace anchors::rollout
