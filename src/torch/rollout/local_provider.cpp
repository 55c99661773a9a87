#include "anchors/rollout/local_provider.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/sampler.h"
#include "anchors/model/tokenizer.h"

namespace anchors::rollout {

LocalProvider::LocalProvider(std::shared_ptr<const model::CausalLM> model, LocalProviderOptions options,
                             std::shared_ptr<const model::Tokenizer> tokenizer)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), options_(std::move(options)) {
  if (!model_) throw Error("LocalProvider: no model");
  if (!tokenizer_) tokenizer_ = model_->tokenizer();
  const std::int64_t vocab = model_->config().vocab_size;
  if (!options_.stop_ids.empty()) {
    for (const std::int64_t id : options_.stop_ids)
      if (id < 0 || id >= vocab) throw Error(fmt::format("LocalProvider: stop id {} outside [0, {})", id, vocab));
    stop_ids_ = options_.stop_ids;
  } else {
    std::vector<std::int64_t> candidates = model_->config().eos_token_ids;
    if (model_->config().eos_token_id) candidates.push_back(*model_->config().eos_token_id);
    if (tokenizer_ && tokenizer_->eos_id()) candidates.push_back(*tokenizer_->eos_id());
    for (const std::int64_t id : candidates)
      if (id >= 0 && id < vocab && std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end())
        stop_ids_.push_back(id);
  }
}

LocalProvider::~LocalProvider() = default;

std::string LocalProvider::name() const { return "local:" + model_->dir(); }

std::int64_t LocalProvider::last_reused_tokens() const {
  std::lock_guard lock(mutex_);
  return last_reused_;
}

void LocalProvider::clear_cache() {
  std::lock_guard lock(mutex_);
  cache_.clear();
  cached_ids_.clear();
}

std::vector<Completion> LocalProvider::complete(const CompletionRequest& request) {
  constexpr const char* kWhere = "LocalProvider";
  // Ids when given; else the text, encoded here. Messages alone are refused:
  // rendering a chat is a prompt-format decision this provider does not make.
  if (request.prompt_ids.empty() && request.prompt_text.empty() && !request.messages.empty())
    throw Error("LocalProvider: the prompt is given only as chat messages; LocalProvider needs prompt_ids (or "
                "prompt_text, which it encodes with its tokenizer)");
  validate_request(request, kWhere);  // ids or text (messages alone were refused above)
  // vLLM's presence / frequency penalties are not implemented by our sampler:
  // refuse them rather than silently sample from another distribution.
  if (request.presence_penalty != 0.0 || request.frequency_penalty != 0.0)
    throw Error(fmt::format("LocalProvider: presence_penalty ({}) and frequency_penalty ({}) are not supported "
                            "(send 0; repetition_penalty is)",
                            request.presence_penalty, request.frequency_penalty));
  model::SamplingOptions o;
  o.temperature = request.temperature;
  o.top_p = request.top_p;
  o.top_k = request.top_k;
  o.min_p = request.min_p;
  o.repetition_penalty = request.repetition_penalty;
  o.max_new_tokens = request.max_tokens;
  o.stop_ids = stop_ids_;
  o.stop_strings = request.stop;
  o.seed = request.seed;
  o.control = request.attention_control;
  std::vector<std::int64_t> encoded;
  if (request.prompt_ids.empty()) {
    if (!tokenizer_) throw Error("LocalProvider: a text prompt needs a tokenizer, and this provider has none");
    // As `anchors serve` and OpenAI-compatible servers do: with the tokenizer's special tokens (e.g. BOS).
    encoded = tokenizer_->encode(request.prompt_text, true).ids;
    if (encoded.empty()) throw Error("LocalProvider: prompt_text encodes to no tokens");
  }
  const std::vector<std::int64_t>& prompt = request.prompt_ids.empty() ? encoded : request.prompt_ids;

  std::lock_guard lock(mutex_);
  model::KVCache* cache = nullptr;
  if (options_.reuse_prefix) {
    // The cache holds cached_ids_; keep the part this prompt shares.
    const auto limit = std::min(cached_ids_.size(), prompt.size());
    std::size_t common = 0;
    while (common < limit && cached_ids_[common] == prompt[common]) ++common;
    common = std::min<std::size_t>(common, static_cast<std::size_t>(cache_.length()));
    cache_.truncate(static_cast<std::int64_t>(common));
    cached_ids_.resize(common);
    // sample() always runs at least the last prompt token, and the slots a control changes.
    last_reused_ = std::min({static_cast<std::int64_t>(common), static_cast<std::int64_t>(prompt.size()) - 1,
                             o.control.first_query()});
    cache = &cache_;
  } else {
    last_reused_ = 0;
  }

  std::vector<model::Sample> samples;
  try {
    samples = model::sample(*model_, prompt, request.n, o, tokenizer_.get(), cache);
  } catch (...) {
    // A pass that failed half-way may leave the cache out of step with cached_ids_.
    cache_.clear();
    cached_ids_.clear();
    throw;
  }
  if (cache != nullptr) cached_ids_.assign(prompt.begin(), prompt.begin() + cache_.length());

  std::vector<Completion> out;
  out.reserve(samples.size());
  for (auto& s : samples) {
    Completion c;
    if (tokenizer_) c.text = options_.skip_special_tokens ? tokenizer_->decode(s.ids, true) : std::move(s.text);
    c.ids = std::move(s.ids);
    c.finish_reason = std::move(s.finish_reason);
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<double> LocalProvider::prompt_logprobs(const CompletionRequest& request) {
  const std::vector<std::int64_t>& ids = request.prompt_ids;
  if (ids.empty()) throw Error("LocalProvider: prompt_logprobs needs the request's prompt_ids");
  const auto n = static_cast<std::int64_t>(ids.size());
  const std::int64_t positions = model_->config().max_position_embeddings;
  if (positions > 0 && n > positions)
    throw Error(fmt::format("LocalProvider: {} prompt tokens exceed the model's {} positions", n, positions));
  torch::NoGradGuard no_grad;
  std::lock_guard lock(mutex_);
  const torch::Device device = model_->device();
  const torch::Tensor input = torch::tensor(ids, torch::kInt64).to(device).unsqueeze(0);
  if (!request.attention_control.every_lane())
    throw Error("LocalProvider: attention_control regions must apply to every lane (lane -1)");
  const model::AttentionControl* control = request.attention_control.empty() ? nullptr : &request.attention_control;
  const torch::Tensor hidden = model_->hidden_states(
      input, torch::arange(n, torch::TensorOptions(torch::kInt64).device(device)), /*cache=*/nullptr, control);
  std::vector<double> out(static_cast<std::size_t>(n), std::nan(""));
  constexpr std::int64_t kSlice = 256;
  // Position k predicts token k + 1.
  for (std::int64_t begin = 0; begin + 1 < n; begin += kSlice) {
    const std::int64_t end = std::min(begin + kSlice, n - 1);
    const torch::Tensor logp =
        torch::log_softmax(model_->project_to_vocab(hidden.slice(1, begin, end)).to(torch::kFloat64), -1)[0];
    const torch::Tensor next = input[0].slice(0, begin + 1, end + 1).unsqueeze(1);
    const torch::Tensor picked = logp.gather(1, next).squeeze(1).cpu().contiguous();
    const double* values = picked.data_ptr<double>();
    for (std::int64_t k = 0; k < end - begin; ++k) out[static_cast<std::size_t>(begin + k + 1)] = values[k];
  }
  return out;
}

}  // namespace anchors::rollout
