#pragma once
// RolloutProvider on our own engine: anchors::model::sample() on a CausalLM
// (docs/rollout-providers.md).
//
//   auto model = anchors::model::CausalLM::load(dir, {.dtype = torch::kBFloat16, .device = torch::kCUDA});
//   anchors::rollout::LocalProvider provider(model);
//   auto completions = provider.complete({.prompt_ids = ids, .n = 100, .max_tokens = 4096, .seed = 7});
//
// The provider keeps the batch-1 KV cache of the last prompt. A request whose
// prompt shares a prefix with the previous one (sentence i+1's prompt shares
// sentence i's up to the removed sentence) truncates the cache to that common
// prefix and runs only the rest of the prompt.
//
// Lane k depends only on (model, prompt, options, seed, k), as documented in
// sampler.h (up to the floating-point effect of a different prefill chunking
// when the cache is reused, which flips a draw only when it lands within
// rounding of a boundary; set reuse_prefix = false to rule it out).
// Thread-safe: requests run one at a time (a mutex).
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "anchors/model/kv_cache.h"
#include "anchors/rollout/provider.h"

namespace anchors::model {
class CausalLM;
class Tokenizer;
}  // namespace anchors::model

namespace anchors::rollout {

struct LocalProviderOptions {
  // Token ids that end a continuation. Empty (default): the model's eos ids
  // (config.json eos_token_id, all of them) and the tokenizer's eos, those
  // inside the vocabulary.
  std::vector<std::int64_t> stop_ids;
  // Text of a completion: decode(ids) without special tokens (the EOS marker
  // is not part of the text), as OpenAI-compatible servers return it. false:
  // special tokens kept.
  bool skip_special_tokens = true;
  // Keep the last prompt's KV cache and reuse its common prefix.
  bool reuse_prefix = true;
};

class LocalProvider : public RolloutProvider {
 public:
  // tokenizer: defaults to model->tokenizer() (may be null: completions then
  // have ids and an empty text, and stop strings are an error).
  explicit LocalProvider(std::shared_ptr<const model::CausalLM> model, LocalProviderOptions options = {},
                         std::shared_ptr<const model::Tokenizer> tokenizer = nullptr);
  ~LocalProvider() override;

  std::string name() const override;
  // The prompt is request.prompt_ids; when those are empty, prompt_text
  // encoded with the tokenizer (special tokens added, as `anchors serve`
  // does). min_p, repetition_penalty and attention_control go to the
  // sampler (sampler.h; the cached prefix keeps only the slots before the
  // control's first query).
  // anchors::Error for an invalid request (see validate_request and
  // model::sample: prompt ids outside the vocabulary, prompt + max_tokens
  // beyond the model's context, stop strings without a tokenizer), a prompt
  // given only as messages, a text prompt without a tokenizer, and non-zero
  // presence_penalty / frequency_penalty (not implemented: refused, never
  // ignored).
  std::vector<Completion> complete(const CompletionRequest& request) override;

  // One forward pass over request.prompt_ids (no KV cache reuse, the model
  // shared with complete() under the same lock; request.attention_control
  // applied), log_softmax of the float32
  // logits, in slices of 256 positions so only 256 x vocabulary floats live at
  // once. anchors::Error for no or out-of-range ids, or more ids than the
  // model's positions.
  std::vector<double> prompt_logprobs(const CompletionRequest& request) override;

  const model::CausalLM& model() const { return *model_; }
  std::shared_ptr<const model::Tokenizer> tokenizer() const { return tokenizer_; }
  const std::vector<std::int64_t>& stop_ids() const { return stop_ids_; }
  // Prompt tokens the last request took from the cache instead of running
  // them (for tests and progress reports).
  std::int64_t last_reused_tokens() const;
  // Forgets the cached prefix.
  void clear_cache();

 private:
  std::shared_ptr<const model::CausalLM> model_;
  std::shared_ptr<const model::Tokenizer> tokenizer_;
  LocalProviderOptions options_;
  std::vector<std::int64_t> stop_ids_;
  mutable std::mutex mutex_;
  model::KVCache cache_;                   // batch 1, holds cached_ids_
  std::vector<std::int64_t> cached_ids_;
  std::int64_t last_reused_ = 0;
};

}  // namespace anchors::rollout
