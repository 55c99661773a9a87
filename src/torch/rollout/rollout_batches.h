#pragma once
// Internal to src/torch/rollout: the one loop that turns a prompt into rollout
// records on disk, shared by analyze_problem (resampling from before every
// sentence, forced answers) and intervene (edited prefixes). Missing samples
// of one (chunk, forced) slot of a RolloutStore are generated in seeded
// batches whose lanes depend only on (seed, batch index, lane), labelled by
// the outcome, and appended atomically; a re-run regenerates exactly the
// samples still missing.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "anchors/core/outcome.h"
#include "anchors/core/rollouts.h"
#include "anchors/core/trace.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/provider.h"
#include "anchors/rollout/rollout_store.h"

namespace anchors::rollout::detail {

// What one slot's rollouts continue and how their records are filled.
struct RolloutTask {
  std::size_t chunk = 0;              // chunk_<chunk>/solutions.json of the store
  bool forced = false;                // ... of its forced-answer folder
  std::string head;                   // the prompt as text (prompt + prefix + stub): full_cot = head + completion
  std::vector<std::int64_t> ids;      // head encoded
  // The same prompt as chat messages (a user message, then the assistant's
  // partial message: prefix + stub) for chat-mode providers; empty when the
  // caller knows no user message (then a chat-mode provider refuses).
  std::vector<ChatMessage> messages;
  std::string stub;                   // read before the completion by the outcome (forced stubs)
  std::string chunk_removed, prefix;  // the records' fields of those names
  std::int64_t max_tokens = 0;        // new tokens per rollout; < 1: every batch fails with no_room
  std::string no_room;                // why there is no room left
};

struct SamplingSettings {
  double temperature = 0.6, top_p = 0.95;
  double min_p = 0, repetition_penalty = 1, presence_penalty = 0, frequency_penalty = 0;  // neutral defaults
  std::int64_t batch = 25;            // samples per request
  AttentionControl attention_control;  // every request's (provider.h); empty: none
};

// The settings of an engine's options (AnalyzeOptions, InterventionOptions:
// the same field names).
template <typename Options>
SamplingSettings sampling_settings(const Options& o) {
  SamplingSettings s;
  s.temperature = o.temperature;
  s.top_p = o.top_p;
  s.min_p = o.min_p;
  s.repetition_penalty = o.repetition_penalty;
  s.batch = o.batch;
  return s;
}

// The manifest an engine's run checks each folder it writes against, and
// records in a new one (rollout_store.h): the hash of what the rollouts
// continue (prompt + text: the base solution, or an edit's prefix), the seed,
// and the settings that change a rollout or its record (the engines' option
// names; analyze adds forced_max_tokens). num_rollouts and forced only say how
// many to make, and max_positions is the model's context, which the CLI and
// the registry fill differently: they stay out.
template <typename Options>
RunManifest run_manifest(const std::string& prompt, const std::string& text, const Options& o,
                         const Outcome& outcome) {
  RunManifest m;
  m.base_solution_hash = base_solution_hash(prompt, text);
  m.seed = o.seed;
  m.options = {{"temperature", o.temperature},
               {"top_p", o.top_p},
               {"min_p", o.min_p},
               {"repetition_penalty", o.repetition_penalty},
               {"max_tokens", o.max_tokens},
               {"batch", o.batch},
               {"outcome", outcome.name()}};
  return m;
}

// anchors::Error "<who>: ..." for num_rollouts < 1, batch < 1, max_tokens < 1,
// a temperature that is not >= 0 or a top_p outside (0, 1] — the checks every
// engine makes before any generation.
void check_sampling(const std::string& who, const SamplingSettings& s, std::int64_t num_rollouts,
                    std::int64_t max_tokens);

// `wanted` new tokens, capped so prompt + completion fits max_positions
// (0 = no cap); < 1 when the prompt leaves no room.
std::int64_t capped_max_tokens(std::int64_t wanted, std::size_t prompt_tokens, std::int64_t max_positions);

// Running totals of one call of the engine.
struct RolloutCounts {
  std::int64_t generated = 0;   // samples written as rollouts
  std::int64_t failed = 0;      // samples written as error records (retried by the next run)
  std::string first_failure;    // the first failed request's message
};

// Generates the samples of `task` that `store` still misses out of `wanted`.
// seed(b) is the seed of batch b (samples b*batch .. b*batch+batch-1).
// check_cancel() runs before every request; after_batch(samples) after every
// append. A failed request becomes error records; a provider that returns the
// wrong number of completions is an anchors::Error (retrying cannot help).
void generate_missing(RolloutProvider& provider, RolloutStore& store, const RolloutTask& task,
                      const SamplingSettings& sampling, const Outcome& outcome, const std::string& target,
                      std::int64_t wanted, const std::function<std::uint64_t(std::int64_t)>& seed,
                      RolloutCounts& counts, const std::function<void()>& check_cancel,
                      const std::function<void(std::int64_t)>& after_batch);

// The scenario a trace was made from (metadata "scenario": base_trace_of, or
// set by the caller), parsed; nullopt when it has none.
std::optional<Problem> trace_scenario(const Trace& trace);

// The prompt before a trace's text: `given`, else trace.prompt, else the
// analysis_prompt of its scenario, else the raw reference prompt of
// trace.metadata["problem"]; anchors::Error "<who>: no prompt ..." when there
// is none of them.
std::string trace_prompt(const Trace& trace, const std::string& given, const std::string& who);

// A request for `n` continuations of prompt + `prefix` in all three forms
// (ids by `tokenizer` with its specials, text, the trace's chat messages),
// sampled with `sampling`; max_tokens is capped_max_tokens(max_tokens, ...),
// which is < 1 when the prefix leaves no room (the caller decides what that
// means). The seed is the caller's.
CompletionRequest prefix_request(const Trace& trace, const std::string& prompt, const std::string& prefix,
                                 const model::Tokenizer& tokenizer, const SamplingSettings& sampling, std::int64_t n,
                                 std::int64_t max_tokens, std::int64_t max_positions);

// The chat form of prompt + `assistant_prefix` for chat-mode providers: the
// scenario's turns (problem_messages) or the trace's problem as the user
// message, then the assistant's partial message; empty when the trace names
// neither (a chat-mode provider then refuses).
std::vector<ChatMessage> chat_messages(const Trace& trace, const std::string& assistant_prefix);

// The record's label fields from a text read by `outcome`: answer = label or
// "", is_correct = matches(label, target) when there is a target (false
// without a label), outcome_raw = the evidence.
void label_rollout(const Outcome& outcome, const std::string& text, const std::string& target, Rollout& rollout);

// The first sentence of a continuation (its chunk_resampled).
std::string first_sentence(const std::string& text);

}  // namespace anchors::rollout::detail
