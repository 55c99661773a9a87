// Preplan-and-anchor analysis (attention_rhythm.h): one forward pass, band
// statistics of the analysed layers taken in the attention callback, then head
// groups and token sets chosen on the host.
#include "anchors/model/attention_rhythm.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "anchors/core/error.h"
#include "anchors/model/band_statistics.h"
#include "anchors/model/sentence_pooling.h"

namespace anchors::model {

namespace {

void check_fraction(double fraction, const char* name, const char* what) {
  if (!(fraction > 0.0 && fraction <= 1.0))  // also rejects NaN
    throw Error(fmt::format("{}: {} must be in (0, 1], got {}", what, name, fraction));
}

// max(1, round(fraction · n)), n >= 1.
std::int64_t kept_count(double fraction, std::int64_t n) {
  return std::clamp<std::int64_t>(std::llround(fraction * static_cast<double>(n)), 1, n);
}

std::vector<std::int64_t> analysed_layers(const AttentionRhythmOptions& options, std::int64_t num_layers,
                                          const char* what) {
  if (!options.layers) {
    // The middle third; with fewer than three layers at least the one at L/3.
    const std::int64_t begin = num_layers / 3, end = std::max(begin + 1, 2 * num_layers / 3);
    std::vector<std::int64_t> layers(static_cast<std::size_t>(end - begin));
    std::iota(layers.begin(), layers.end(), begin);
    return layers;
  }
  const std::vector<std::int64_t>& layers = *options.layers;
  if (layers.empty()) throw Error(fmt::format("{}: empty layer list", what));
  for (std::size_t i = 0; i < layers.size(); ++i) {
    if (layers[i] < 0 || layers[i] >= num_layers)
      throw Error(fmt::format("{}: layer {} outside [0, {})", what, layers[i], num_layers));
    // A repeat would count its heads twice in the ranking and the means.
    if (std::find(layers.begin(), layers.begin() + static_cast<std::ptrdiff_t>(i), layers[i]) !=
        layers.begin() + static_cast<std::ptrdiff_t>(i))
      throw Error(fmt::format("{}: layer {} listed twice", what, layers[i]));
  }
  return layers;
}

// The `count` positions of [begin, T) with the largest finite values of
// `values` (float32 [T]); ties go to the earlier position.
torch::Tensor top_positions(const torch::Tensor& values, std::int64_t begin, double fraction) {
  const std::int64_t T = values.size(0);
  const auto v = values.accessor<float, 1>();
  std::vector<std::int64_t> candidates;
  for (std::int64_t t = begin; t < T; ++t)
    if (std::isfinite(v[t])) candidates.push_back(t);
  const std::int64_t count = std::min<std::int64_t>(kept_count(fraction, T - begin),
                                                    static_cast<std::int64_t>(candidates.size()));
  std::stable_sort(candidates.begin(), candidates.end(), [&](std::int64_t a, std::int64_t b) { return v[a] > v[b]; });
  torch::Tensor chosen = torch::zeros({T}, torch::kBool);
  auto c = chosen.accessor<bool, 1>();
  for (std::int64_t i = 0; i < count; ++i) c[candidates[static_cast<std::size_t>(i)]] = true;
  return chosen;
}

}  // namespace

AttentionRhythm attention_rhythm(const CausalLM& model, const std::vector<std::int64_t>& token_ids,
                                 const AttentionRhythmOptions& options, const RunControl& control) {
  const char* what = "attention_rhythm";
  const ModelConfig& config = model.config();
  const std::int64_t T = static_cast<std::int64_t>(token_ids.size());
  if (T == 0) throw Error(fmt::format("{}: empty token_ids", what));
  if (T > config.max_position_embeddings)
    throw Error(fmt::format("{}: {} tokens exceed the model's max_position_embeddings of {}", what, T,
                            config.max_position_embeddings));
  for (std::size_t i = 0; i < token_ids.size(); ++i)
    if (token_ids[i] < 0 || token_ids[i] >= config.vocab_size)
      throw Error(fmt::format("{}: token id {} at position {} is outside the vocabulary [0, {})", what, token_ids[i],
                              i, config.vocab_size));
  if (options.response_begin < 0 || options.response_begin >= T)
    throw Error(fmt::format("{}: response_begin {} outside [0, {}) (the {} tokens)", what, options.response_begin, T,
                            T));
  check_fraction(options.local_fraction, "local_fraction", what);
  check_fraction(options.global_fraction, "global_fraction", what);
  check_fraction(options.top_fraction, "top_fraction", what);
  if (!std::isfinite(options.gamma)) throw Error(fmt::format("{}: gamma must be finite, got {}", what, options.gamma));
  if (options.waad_window < 1)
    throw Error(fmt::format("{}: waad_window must be >= 1, got {}", what, options.waad_window));
  if (options.fai_near < 0 || options.fai_far < options.fai_near)
    throw Error(fmt::format("{}: the FAI window [fai_near, fai_far] = [{}, {}] must satisfy 0 <= near <= far", what,
                            options.fai_near, options.fai_far));

  AttentionRhythm out;
  out.layers = analysed_layers(options, config.num_hidden_layers, what);
  const std::int64_t L = static_cast<std::int64_t>(out.layers.size());
  const std::int64_t H = config.num_attention_heads;

  // Per analysed layer: span [H], WAAD [H, T], FAI [H, T] (CPU, float32).
  out.head_span = torch::zeros({L, H}, torch::kFloat32);
  torch::Tensor waad = torch::zeros({L, H, T}, torch::kFloat32);
  torch::Tensor fai = torch::zeros({L, H, T}, torch::kFloat32);
  BandStatisticsParams band;
  band.waad_window = options.waad_window;
  band.fai_near = options.fai_near;
  band.fai_far = options.fai_far;
  band.span_first_slot = options.response_begin;
  const auto on_attention = [&](std::int64_t layer, const torch::Tensor& queries, const torch::Tensor& keys,
                                const torch::Tensor& /*values*/) {
    control.check(what);
    control.report(static_cast<std::size_t>(layer + 1), static_cast<std::size_t>(config.num_hidden_layers), "layers");
    const auto it = std::find(out.layers.begin(), out.layers.end(), layer);
    if (it == out.layers.end()) return;
    const std::int64_t i = it - out.layers.begin();
    const torch::Tensor lse = causal_log_sum_exp(queries, keys);
    const BandStatistics stats = band_statistics(queries, keys, lse, band);
    out.head_span[i].copy_(stats.span[0].cpu());
    waad[i].copy_(stats.waad[0].cpu());
    fai[i].copy_(stats.fai[0].cpu());
  };
  {
    const at::NoGradGuard no_grad;
    const auto long_on_device = torch::dtype(torch::kInt64).device(model.device());
    const torch::Tensor ids = torch::tensor(token_ids, torch::kInt64).view({1, T}).to(model.device());
    control.check(what);
    model.hidden_states(ids, torch::arange(T, long_on_device), /*cache=*/nullptr, /*control=*/nullptr, on_attention);
  }

  // Head groups: rank every (layer, head) by span; ties by (layer, head).
  std::vector<HeadIndex> heads;
  for (std::int64_t i = 0; i < L; ++i)
    for (std::int64_t h = 0; h < H; ++h) heads.push_back({out.layers[static_cast<std::size_t>(i)], h});
  const auto span = out.head_span.accessor<float, 2>();
  std::vector<float> span_of(heads.size());
  for (std::size_t n = 0; n < heads.size(); ++n) span_of[n] = span[static_cast<std::int64_t>(n) / H][heads[n].head];
  std::vector<std::size_t> order(heads.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  const auto by_layer_head = [&](std::size_t a, std::size_t b) {
    return heads[a].layer != heads[b].layer ? heads[a].layer < heads[b].layer : heads[a].head < heads[b].head;
  };
  const auto pick = [&](double fraction, bool largest) {
    std::vector<std::size_t> ranked = order;
    std::sort(ranked.begin(), ranked.end(), [&](std::size_t a, std::size_t b) {
      if (span_of[a] != span_of[b]) return largest ? span_of[a] > span_of[b] : span_of[a] < span_of[b];
      return by_layer_head(a, b);
    });
    const std::int64_t count = kept_count(fraction, static_cast<std::int64_t>(heads.size()));
    return std::vector<std::size_t>(ranked.begin(), ranked.begin() + count);
  };
  const std::vector<std::size_t> local = pick(options.local_fraction, /*largest=*/false);
  const std::vector<std::size_t> global = pick(options.global_fraction, /*largest=*/true);
  for (const std::size_t n : local) out.local_heads.push_back(heads[n]);
  for (const std::size_t n : global) out.global_heads.push_back(heads[n]);

  // Means over the head groups (the per-head rows are gathered, not masked:
  // FAI's NaN slots times a 0 weight would still be NaN).
  const auto group_mean = [&](const torch::Tensor& per_head, const std::vector<std::size_t>& group) {
    torch::Tensor total = torch::zeros({T}, torch::kFloat32);
    for (const std::size_t n : group) total.add_(per_head[static_cast<std::int64_t>(n) / H][heads[n].head]);
    return total.div_(static_cast<double>(group.size()));
  };
  out.waad = group_mean(waad, local);
  out.fai = group_mean(fai, global);

  const std::int64_t begin = options.response_begin;
  out.waad_delta = torch::zeros({T}, torch::kFloat32);
  if (begin + 1 < T)
    out.waad_delta.narrow(0, begin + 1, T - begin - 1)
        .copy_((out.waad.narrow(0, begin + 1, T - begin - 1) - out.waad.narrow(0, begin, T - begin - 1)).abs());
  out.preplan = top_positions(out.waad_delta, begin, options.top_fraction);
  out.anchor = top_positions(out.fai, begin, options.top_fraction);
  out.gamma = at::where(out.preplan.logical_or(out.anchor), torch::full({}, options.gamma, torch::kFloat32),
                        torch::ones({}, torch::kFloat32));
  return out;
}

}  // namespace anchors::model
