#include "anchors/model/head_influence.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <set>

#include "anchors/core/attention_control.h"
#include "anchors/core/error.h"
#include "anchors/model/causal_lm.h"

namespace anchors::model {
namespace {

constexpr const char* kWho = "head_influence";
constexpr std::int64_t kLogitBudget = std::int64_t{1} << 26;  // logits alive at once (256 MiB of float32)

// Next-token losses [B, T] float64 of `ids` [B, T] from hidden states [B, T, hidden]:
// loss[b][t] = -log p(ids[b][t] | ids[b][:t]) for t >= 1, NaN at t = 0.
torch::Tensor token_losses(const CausalLM& model, const torch::Tensor& hidden, const torch::Tensor& ids) {
  const std::int64_t B = hidden.size(0), T = hidden.size(1), V = model.config().vocab_size;
  torch::Tensor out = torch::full({B, T}, std::numeric_limits<double>::quiet_NaN(), torch::kFloat64);
  const std::int64_t slice = std::max<std::int64_t>(1, kLogitBudget / std::max<std::int64_t>(1, B * V));
  for (std::int64_t begin = 0; begin + 1 < T; begin += slice) {
    const std::int64_t count = std::min(slice, T - 1 - begin);
    const torch::Tensor log_probs = torch::log_softmax(model.project_to_vocab(hidden.narrow(1, begin, count)), -1);
    const torch::Tensor next = ids.narrow(1, begin + 1, count).unsqueeze(-1).to(log_probs.device());
    out.narrow(1, begin + 1, count).copy_(-log_probs.gather(-1, next).squeeze(-1).to(torch::kCPU, torch::kFloat64));
  }
  return out;
}

}  // namespace

HeadInfluenceResult head_influence(const CausalLM& model, const std::vector<HeadInfluenceText>& texts,
                                   const HeadInfluenceOptions& options, const RunControl& control) {
  const ModelConfig& config = model.config();
  const std::int64_t L = config.num_hidden_layers, H = config.num_attention_heads;
  if (texts.empty()) throw Error("head_influence: no texts");
  if (options.batch_lanes < 1) throw Error(fmt::format("head_influence: batch_lanes must be >= 1, got {}", options.batch_lanes));
  std::vector<std::int64_t> layers = options.layers;
  if (layers.empty())
    for (std::int64_t l = 0; l < L; ++l) layers.push_back(l);
  std::set<std::int64_t> seen;
  for (const std::int64_t l : layers) {
    if (l < 0 || l >= L) throw Error(fmt::format("head_influence: layer {} outside [0, {})", l, L));
    if (!seen.insert(l).second) throw Error(fmt::format("head_influence: layer {} is given twice", l));
  }
  std::vector<std::pair<std::int64_t, std::int64_t>> heads;  // (layer, head), one lane each
  for (const std::int64_t l : layers)
    for (std::int64_t h = 0; h < H; ++h) heads.emplace_back(l, h);
  std::vector<TokenSpan> scored;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto T = static_cast<std::int64_t>(texts[i].ids.size());
    if (T < 2) throw Error(fmt::format("head_influence: text {} has {} tokens; a loss needs at least 2", i, T));
    if (T > config.max_position_embeddings)
      throw Error(fmt::format("head_influence: text {} has {} tokens, more than the model's {} positions", i, T,
                              config.max_position_embeddings));
    for (const std::int64_t id : texts[i].ids)
      if (id < 0 || id >= config.vocab_size)
        throw Error(fmt::format("head_influence: text {} has id {} outside [0, {})", i, id, config.vocab_size));
    // Token 0 has no prediction: a span from 0 starts at 1.
    const TokenSpan given = texts[i].scored;
    const TokenSpan span = given.empty() ? TokenSpan{1, T} : TokenSpan{std::max<std::int64_t>(1, given.begin), given.end};
    if (given.begin < 0 || span.end > T || span.empty())
      throw Error(fmt::format("head_influence: text {}: scored span [{}, {}) must lie in [0, {}] and hold a token "
                              "after the first",
                              i, given.begin, given.end, T));
    scored.push_back(span);
  }

  const std::int64_t lanes = options.batch_lanes;
  const auto passes_per_text = static_cast<std::size_t>(1 + (static_cast<std::int64_t>(heads.size()) + lanes - 1) / lanes);
  const std::size_t total = passes_per_text * texts.size();
  std::size_t done = 0;
  const auto step = [&] {
    control.report(++done, total, "passes");
  };

  HeadInfluenceResult result;
  torch::Tensor sum = torch::zeros({L, H}, torch::kFloat64);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto T = static_cast<std::int64_t>(texts[i].ids.size());
    const torch::Tensor ids = torch::tensor(texts[i].ids, torch::kInt64).unsqueeze(0).to(model.device());
    const torch::Tensor positions = torch::arange(T, torch::TensorOptions(torch::kInt64).device(model.device()));
    torch::Tensor outside = torch::ones({T}, torch::kBool);
    outside.narrow(0, scored[i].begin, scored[i].size()).fill_(false);

    control.check(kWho);
    torch::Tensor plain = token_losses(model, model.hidden_states(ids, positions), ids)[0];  // [T]
    plain.masked_fill_(outside, std::numeric_limits<double>::quiet_NaN());
    step();

    torch::Tensor delta = torch::full({L, H, T}, std::numeric_limits<float>::quiet_NaN(), torch::kFloat32);
    for (std::size_t first = 0; first < heads.size(); first += static_cast<std::size_t>(lanes)) {
      control.check(kWho);
      const std::size_t count = std::min(heads.size() - first, static_cast<std::size_t>(lanes));
      AttentionControl ablation;
      for (std::size_t b = 0; b < count; ++b) {
        const auto [layer, head] = heads[first + b];
        ablation.regions.push_back(
            AttentionRegion::ablate(static_cast<std::int64_t>(b), {0, kToTheEnd}, {head}, {layer}));
      }
      const torch::Tensor batch_ids = ids.expand({static_cast<std::int64_t>(count), T}).contiguous();
      const torch::Tensor masked = token_losses(model, model.hidden_states(batch_ids, positions, nullptr, &ablation), batch_ids);
      for (std::size_t b = 0; b < count; ++b) {
        const auto [layer, head] = heads[first + b];
        torch::Tensor d = masked[static_cast<std::int64_t>(b)] - plain;  // NaN outside the scored span
        delta[layer][head].copy_(d.to(torch::kFloat32));
        sum[layer][head] += d.narrow(0, scored[i].begin, scored[i].size()).mean().item<double>();
      }
      step();
    }
    result.plain_loss.push_back(plain);
    result.token_delta.push_back(delta);
  }
  result.influence = torch::full({L, H}, std::numeric_limits<double>::quiet_NaN(), torch::kFloat64);
  for (const std::int64_t l : layers) result.influence[l].copy_(sum[l] / static_cast<double>(texts.size()));
  return result;
}

}  // namespace anchors::model
