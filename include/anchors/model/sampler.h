#pragma once
// Batched stochastic decoding with a shared prefix (docs/design.md §3 "Resampling";
// docs/sampler.md).
//
//   anchors::model::SamplingOptions opts;            // T 0.6, top-p 0.95
//   opts.stop_ids = {eos};
//   opts.seed = 7;
//   auto rollouts = anchors::model::sample(*model, prompt_ids, 100, opts, model->tokenizer().get());
//
// The prompt is prefilled once (batch 1), its KV cache is fanned out to the n
// lanes, and every decoding step runs all unfinished lanes in one batched
// forward pass. Finished lanes are dropped from the batch (their cache rows are
// compacted away), so they cost nothing afterwards.
//
// Reproducibility: lane k draws its uniforms from its own CPU torch::Generator
// seeded from (seed, k), one uniform per generated token, and picks the token by
// inverse CDF over the probability-sorted, truncated distribution. A lane's
// result therefore depends only on the model, the prompt, the options, the seed
// and k -- not on n or on which other lanes are still running -- up to the
// floating-point differences a different batch size may cause in the logits
// (which flip a draw only when it lands within rounding of a boundary).
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "anchors/core/attention_control.h"
#include "anchors/core/span.h"
#include "anchors/model/kv_cache.h"

namespace anchors::model {

class CausalLM;
class Tokenizer;

struct SamplingOptions {
  double temperature = 0.6;    // 0: argmax (equals CausalLM::generate_greedy), else softmax(logits / T)
  double top_p = 0.95;         // nucleus, in (0, 1]; 1: off
  std::int64_t top_k = 0;      // 0: off; applied before top_p (top-p then sees the renormalised top-k)
  // In [0, 1]; 0: off. After temperature, top-k and top-p (transformers'
  // order): keep the tokens whose probability is >= min_p times the most
  // likely token's. Since the most likely token survives top-k and top-p,
  // this is the intersection with {p >= min_p * p_max} of the full softmax.
  double min_p = 0;
  // > 0; 1: off. CTRL-style (transformers' RepetitionPenaltyLogitsProcessor),
  // per lane, on the raw logits before temperature: the logit of every token id
  // present in the prompt or the lane's generated tokens is divided by the
  // penalty when positive and multiplied by it when negative. Also applied at
  // temperature 0 (argmax of the penalised logits, as HF's greedy search does).
  double repetition_penalty = 1;
  std::int64_t max_new_tokens = 256;
  std::vector<std::int64_t> stop_ids;     // e.g. eos; the stop token is kept in Sample::ids
  std::vector<std::string> stop_strings;  // needs a tokenizer; the completing token is kept
  std::uint64_t seed = 0;
  // The memory one call may use for its lanes, in bytes: the n lanes are
  // decoded in consecutive batches of as many as fit (sampler_detail::lane_bytes
  // each), which gives the same samples as one batch (lane k draws from its own
  // generator). 0: half of the memory available when the call starts on the
  // model's device (MemAvailable of /proc/meminfo; free CUDA memory).
  std::int64_t max_batch_bytes = 0;
  // Attention changed while generating (attention_control.h): heads ablated,
  // keys suppressed or boosted, from a slot on (slots count prompt tokens
  // then generated ones). Its regions must apply to every lane (kEveryLane):
  // sample() makes the lanes. The prompt slots before control.first_query()
  // are computed as without it, so only those come from (and stay in) a
  // prefix cache. Empty: plain attention.
  AttentionControl control;
};

struct Sample {
  std::vector<std::int64_t> ids;  // the new tokens only
  std::string text;               // tokenizer->decode(ids) (special tokens kept) when a tokenizer is given
  std::vector<CharSpan> offsets;  // one per id: its byte span in text (tokens sharing a character share its span)
  std::string finish_reason;      // "stop" (stop id or stop string) or "length"
};

// n samples continuing `prompt`. anchors::Error for an empty prompt, n < 1,
// temperature < 0 or not finite, top_p outside (0, 1], top_k < 0, min_p
// outside [0, 1], repetition_penalty not finite or <= 0,
// max_new_tokens < 0, prompt / stop ids outside the vocabulary, an attention
// control with a region for one lane or outside the model's heads / layers,
// stop strings
// without a tokenizer (or empty ones), prompt + max_new_tokens beyond
// max_position_embeddings, or a prefix cache that is not a batch-1 cache of at
// most prompt.size() slots; also, before anything larger than the batch-1
// prefill is allocated, when one lane (or the n results) would not fit the
// memory budget (max_batch_bytes), with both figures and how to raise it.
//
// prefix_cache (optional): a batch-1 KVCache whose length() slots hold the keys
// and values of prompt[0, length()) -- the caller guarantees the ids match (the
// cache does not record them), computed without attention control. Only the
// rest of the prompt is run, and on return the cache holds exactly the whole
// prompt (prompt.size() slots), ready for the next call -- or, when
// options.control starts at a slot c inside the prompt, its first c slots
// (the part the control leaves unchanged; the controlled rest is run on a
// copy). To go from sentence i's prompt to sentence i+1's (which shares its
// first k tokens), call cache.truncate(k) first (or nothing when prompt i+1
// simply extends prompt i). An empty KVCache is a valid start.
std::vector<Sample> sample(const CausalLM& model, const std::vector<std::int64_t>& prompt, std::int64_t n,
                           const SamplingOptions& options, const Tokenizer* tokenizer = nullptr,
                           KVCache* prefix_cache = nullptr);

// Runs `ids` through the model on top of a batch-1 (or empty) cache, at
// positions cache.length() + arange, with `control` (null: none) applied;
// returns the logits [V] (float32) after the last id. extend_prefix(model,
// cache, prompt) is what sample() does with its prefix cache.
torch::Tensor extend_prefix(const CausalLM& model, KVCache& cache, const std::vector<std::int64_t>& ids,
                            const AttentionControl* control = nullptr);

namespace sampler_detail {
// Bytes one lane of sample() holds at once with a KV cache of `slots`
// positions (the prefill cache's capacity, at least prompt + max_new_tokens):
// the cache twice (it and the compacted copy made when lanes finish), a few
// float32/float64 rows of the vocabulary and its generator. An estimate of
// the working set, not of the allocator's peak.
std::int64_t lane_bytes(const CausalLM& model, std::int64_t slots);
// max_batch_bytes's default on `device`: half of MemAvailable (CPU) or of the
// free CUDA memory, now.
std::int64_t default_batch_budget(const torch::Device& device);

// The truncated next-token distribution sample() draws from for logits [V]
// (already penalised, see apply_repetition_penalty): float64 probabilities
// [V], zero outside the kept set (top-k, top-p, min-p), summing to 1
// (temperature > 0; a one-hot argmax at 0). For tests and for the analyses
// that need it. Cost: a softmax and at most a sort of the vocabulary.
torch::Tensor truncated_distribution(const torch::Tensor& logits, double temperature, double top_p,
                                     std::int64_t top_k, double min_p = 0.0);
// logits [V] or [R, V] as float64 with the repetition penalty applied to the
// ids in `history` (duplicates and order do not matter; every row gets the
// same history). penalty 1 returns the float64 logits unchanged.
// anchors::Error for an id outside [0, V) or a penalty that is not > 0.
torch::Tensor apply_repetition_penalty(const torch::Tensor& logits, const std::vector<std::int64_t>& history,
                                       double penalty);
// The generator of lane `lane` for `seed` (CPU).
torch::Generator lane_generator(std::uint64_t seed, std::int64_t lane);
// One token from logits [V] with the lane's generator (consumes one uniform
// when temperature > 0, none for argmax).
std::int64_t draw(const torch::Tensor& logits, double temperature, double top_p, std::int64_t top_k,
                  torch::Generator& generator, double min_p = 0.0);
}  // namespace sampler_detail

}  // namespace anchors::model
