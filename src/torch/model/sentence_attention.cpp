#include "anchors/model/sentence_attention.h"

#include <fmt/format.h>

#include <numeric>

#include "anchors/core/error.h"

namespace anchors::model {

torch::Tensor sentence_attention(const CausalLM& model, const std::vector<std::int64_t>& token_ids,
                                 const std::vector<TokenSpan>& sentence_spans,
                                 std::optional<std::vector<std::int64_t>> layers,
                                 const SentencePoolingParams& params, const RunControl& control) {
  const char* what = "sentence_attention";
  const ModelConfig& config = model.config();
  const std::int64_t T = static_cast<std::int64_t>(token_ids.size());
  if (T == 0) throw Error(fmt::format("{}: empty token_ids", what));
  if (T > config.max_position_embeddings)
    throw Error(fmt::format("{}: {} tokens exceed the model's max_position_embeddings of {}", what, T,
                            config.max_position_embeddings));
  validate_sentence_spans(sentence_spans, T, what);
  if (params.query_tile < 1 || params.key_tile < 1)
    throw Error(fmt::format("{}: tile sizes must be >= 1, got {} x {}", what, params.query_tile, params.key_tile));

  const std::int64_t num_layers = config.num_hidden_layers;
  std::vector<std::int64_t> selected;
  if (layers) {
    selected = *layers;
    if (selected.empty()) throw Error(fmt::format("{}: empty layer list", what));
    for (const std::int64_t layer : selected)
      if (layer < 0 || layer >= num_layers)
        throw Error(fmt::format("{}: layer {} outside [0, {})", what, layer, num_layers));
  } else {
    selected.resize(static_cast<std::size_t>(num_layers));
    std::iota(selected.begin(), selected.end(), std::int64_t{0});
  }

  const std::int64_t S = static_cast<std::int64_t>(sentence_spans.size());
  const std::int64_t H = config.num_attention_heads;
  torch::Tensor result = torch::zeros({static_cast<std::int64_t>(selected.size()), H, S, S}, torch::kFloat32);
  const auto on_attention = [&](std::int64_t layer, const torch::Tensor& queries, const torch::Tensor& keys,
                                const torch::Tensor& /*values*/) {
    control.check(what);
    control.report(static_cast<std::size_t>(layer + 1), static_cast<std::size_t>(num_layers), "layers");
    bool wanted = false;
    for (const std::int64_t l : selected) wanted = wanted || l == layer;
    if (!wanted) return;
    // The pooling applies the same control regions as the forward pass, layer by layer.
    SentencePoolingParams layer_params = params;
    layer_params.layer = layer;
    layer_params.sliding_window = config.sliding_window(layer);  // the weights the model computes
    const torch::Tensor lse = causal_log_sum_exp(queries, keys, layer_params);
    const torch::Tensor means = sentence_block_means(queries, keys, lse, sentence_spans, layer_params)[0].cpu();
    for (std::size_t i = 0; i < selected.size(); ++i)
      if (selected[i] == layer) result[static_cast<std::int64_t>(i)].copy_(means);
  };

  const at::NoGradGuard no_grad;
  const auto long_on_device = torch::dtype(torch::kInt64).device(model.device());
  const torch::Tensor ids = torch::tensor(token_ids, torch::kInt64).view({1, T}).to(model.device());
  const torch::Tensor positions = torch::arange(T, long_on_device);
  control.check(what);
  model.hidden_states(ids, positions, /*cache=*/nullptr, params.control, on_attention);
  return result;
}

}  // namespace anchors::model
