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
// Steps:
//  1. prompt = options.prompt, or render_prompt_text(kRaw, problem.text);
//     ids = encode(prompt, special tokens).
//  2. Base trace: options.base_solution, or one completion (seed derived from
//     options.seed and the attempt), regenerated until it has a sentence and
//     matches options.base;
//     problem.json, base_solution.json and chunks.json are written. A base
//     solution already on disk is reused, never regenerated.
//  3. For every sentence i in order: rollouts from prompt + solution text before
//     sentence i (and, with `forced`, the forced-answer rollouts), in batches
//     whose seeds depend only on (seed, i, forced, batch index): a re-run
//     regenerates exactly the samples still missing (RolloutStore).
//  4. Metrics with the given similarity, written atomically.
//
// Needs LibTorch only through the caller's provider and tokenizer (part of
// anchors::anchors).
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "anchors/core/attribution.h"
#include "anchors/core/embedder.h"
#include "anchors/core/outcome.h"
#include "anchors/core/resampling_metrics.h"
#include "anchors/core/rollouts.h"
#include "anchors/rollout/provider.h"

namespace anchors::model {
class Tokenizer;
}

namespace anchors::rollout {

// After every batch of rollouts (and once before the first).
struct AnalyzeProgress {
  std::size_t sentences_done = 0;   // sentences whose rollouts (and forced rollouts) are complete
  std::size_t sentences_total = 0;
  std::int64_t rollouts_done = 0;   // records on disk that count (valid or without answer), all sentences
  std::int64_t rollouts_total = 0;  // num_rollouts × sentences (× 2 with forced)
  std::int64_t rollouts_generated = 0;  // by this call
  std::int64_t failed = 0;          // samples whose request failed in this call (error records)
  double rollouts_per_second = 0;   // of this call
  double eta_seconds = 0;           // remaining samples / rate; 0 while unknown
  std::size_t sentence = 0;         // the sentence being worked on
  bool forced = false;              // ... its forced-answer rollouts
};

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
  double similarity_threshold = 0.8;
  // New tokens of a forced-answer rollout (the answer after the stub).
  std::int64_t forced_max_tokens = 32;
  // What a rollout ended in (outcome.h): its label becomes the record's
  // "answer" and matches(label, problem.gt_answer) its "is_correct"; forced
  // rollouts continue after outcome->forced_stub(). Null: BoxedAnswer.
  std::shared_ptr<const Outcome> outcome;
  std::function<void(const AnalyzeProgress&)> progress;
  // Checked between batches; when set, analyze_problem throws anchors::Error
  // ("cancelled") and what is on disk stays resumable.
  const std::atomic<bool>* cancel = nullptr;
};

struct AnalyzeResult {
  std::string problem_dir;  // <out_root>/<kind>_base_solution/problem_N
  std::string forced_dir;   // its forced-answer sibling ("" without forced)
  std::string result_path;  // <problem_dir>/result.json
  AnalysisResult result;    // trace_from_rollouts + the "resampling" attribution
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

// anchors::Error for invalid options or problem (empty text, num_rollouts < 1,
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

}  // namespace anchors::rollout
