// Preplan-and-anchor analysis (attention_rhythm.h): one forward pass, band
// statistics of the analysed layers taken in the attention callback, then head
// groups and token sets chosen on the host.
#include "anchors/model/attention_rhythm.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

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

// The median (numpy's: the mean of the two middle values for an even count)
// of the finite values of [begin, T); 0 when there are none.
double response_median(const torch::Tensor& values, std::int64_t begin) {
  const auto v = values.accessor<float, 1>();
  std::vector<double> kept;
  for (std::int64_t t = begin; t < values.size(0); ++t)
    if (std::isfinite(v[t])) kept.push_back(v[t]);
  if (kept.empty()) return 0.0;
  std::sort(kept.begin(), kept.end());
  const std::size_t n = kept.size();
  return n % 2 == 1 ? kept[n / 2] : 0.5 * (kept[n / 2 - 1] + kept[n / 2]);
}

void check_credit_options(const AttentionRhythmOptions& options, const char* what) {
  check_fraction(options.top_fraction, "top_fraction", what);
  if (!std::isfinite(options.gamma)) throw Error(fmt::format("{}: gamma must be finite, got {}", what, options.gamma));
  if (options.credit != "union" && options.credit != "preplan" && options.credit != "anchor" &&
      options.credit != "coupled")
    throw Error(fmt::format("{}: credit must be union, preplan, anchor or coupled, got \"{}\"", what, options.credit));
  if (options.coupled_k < 1) throw Error(fmt::format("{}: coupled_k must be >= 1, got {}", what, options.coupled_k));
  if (!(options.coupled_alpha >= 0.0 && options.coupled_alpha <= 1.0))
    throw Error(fmt::format("{}: coupled_alpha must be in [0, 1], got {}", what, options.coupled_alpha));
  if (!std::isfinite(options.tau_waad) || !std::isfinite(options.tau_delta))
    throw Error(fmt::format("{}: tau_waad and tau_delta must be finite (negative: the response's median)", what));
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
  check_credit_options(options, what);
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
    // The weights the model computes: a sliding layer's keys outside its window get 0.
    SentencePoolingParams pooling;
    pooling.sliding_window = band.sliding_window = config.sliding_window(layer);
    const torch::Tensor lse = causal_log_sum_exp(queries, keys, pooling);
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

  RhythmCredit credit = rhythm_credit(out.waad, out.fai, options.response_begin, options);
  out.waad_delta = std::move(credit.waad_delta);
  out.preplan = std::move(credit.preplan);
  out.anchor = std::move(credit.anchor);
  out.dominated = std::move(credit.dominated);
  out.intro = std::move(credit.intro);
  out.gamma = std::move(credit.gamma);
  return out;
}

RhythmCredit rhythm_credit(const torch::Tensor& waad_curve, const torch::Tensor& fai_curve, std::int64_t begin,
                           const AttentionRhythmOptions& options) {
  const char* what = "rhythm_credit";
  check_credit_options(options, what);
  if (!waad_curve.defined() || !fai_curve.defined() || waad_curve.dim() != 1 || fai_curve.sizes() != waad_curve.sizes())
    throw Error(fmt::format("{}: waad and fai must be 1-D tensors of one length", what));
  const std::int64_t T = waad_curve.size(0);
  if (T == 0) throw Error(fmt::format("{}: empty curves", what));
  if (begin < 0 || begin >= T) throw Error(fmt::format("{}: response_begin {} outside [0, {})", what, begin, T));
  const torch::Tensor waad = waad_curve.to(torch::kCPU, torch::kFloat32).contiguous();
  const torch::Tensor fai = fai_curve.to(torch::kCPU, torch::kFloat32).contiguous();
  const auto w = waad.accessor<float, 1>();

  RhythmCredit out;
  // Δ_t = |WAAD_t − WAAD_{t+1}| (v2 Eq. 14): undefined for the last token.
  out.waad_delta = torch::zeros({T}, torch::kFloat32);
  auto d = out.waad_delta.accessor<float, 1>();
  for (std::int64_t t = begin; t + 1 < T; ++t) d[t] = std::abs(w[t] - w[t + 1]);
  d[T - 1] = std::numeric_limits<float>::quiet_NaN();
  out.preplan = top_positions(out.waad_delta, begin, options.top_fraction);
  out.anchor = top_positions(fai, begin, options.top_fraction);
  out.dominated = torch::zeros({T}, torch::kBool);
  out.intro = torch::zeros({T}, torch::kBool);

  const auto preplan = out.preplan.accessor<bool, 1>();
  const auto anchor = out.anchor.accessor<bool, 1>();
  auto dominated = out.dominated.accessor<bool, 1>();
  auto intro = out.intro.accessor<bool, 1>();
  if (options.credit == "coupled") {
    const double tau_waad = options.tau_waad >= 0 ? options.tau_waad : response_median(waad, begin);
    const double tau_delta = options.tau_delta >= 0 ? options.tau_delta : response_median(out.waad_delta, begin);
    for (std::int64_t t = begin; t < T; ++t) {
      if (!anchor[t] || !(w[t] <= tau_waad)) continue;
      // The largest Δ among the k response tokens before t; its earliest position is the intro token.
      std::int64_t best = -1;
      for (std::int64_t u = std::max(begin, t - options.coupled_k); u < t; ++u)
        if (std::isfinite(d[u]) && (best < 0 || d[u] > d[best])) best = u;
      if (best >= 0 && d[best] >= tau_delta) {
        dominated[t] = true;
        intro[best] = true;
      }
    }
  }
  const double bonus = options.gamma - 1.0, alpha = options.coupled_alpha;
  out.gamma = torch::ones({T}, torch::kFloat32);
  auto g = out.gamma.accessor<float, 1>();
  for (std::int64_t t = begin; t < T; ++t) {
    double weight = 1.0;
    if (options.credit == "union") {
      if (preplan[t] || anchor[t]) weight = options.gamma;
    } else if (options.credit == "preplan") {
      if (preplan[t]) weight = options.gamma;
    } else if (options.credit == "anchor") {
      if (anchor[t]) weight = options.gamma;
    } else {  // coupled (v2 Eq. 19): the terms add; intro is a set, so a token is credited once as an intro
      if (anchor[t]) weight += dominated[t] ? (1.0 - alpha) * bonus : bonus;
      if (intro[t]) weight += alpha * bonus;
    }
    g[t] = static_cast<float>(weight);
  }
  return out;
}

torch::Tensor token_weights(const CausalLM& model, const torch::Tensor& prompt_ids, const torch::Tensor& prompt_mask,
                            const torch::Tensor& response_ids, const torch::Tensor& response_mask,
                            const AttentionRhythmOptions& options, const RunControl& control) {
  const char* what = "token_weights";
  check_credit_options(options, what);
  const auto check_ids = [&](const torch::Tensor& ids, const char* name) {
    if (!ids.defined() || ids.dim() != 2)
      throw Error(fmt::format("{}: {} must be a 2-D [batch, tokens] tensor", what, name));
    if (ids.is_floating_point() || ids.is_complex() || ids.scalar_type() == torch::kBool)
      throw Error(fmt::format("{}: {} must hold integer token ids, got {}", what, name,
                              c10::toString(ids.scalar_type())));
  };
  check_ids(prompt_ids, "prompt_ids");
  check_ids(response_ids, "response_ids");
  const std::int64_t B = response_ids.size(0), R = response_ids.size(1);
  if (prompt_ids.size(0) != B)
    throw Error(fmt::format("{}: prompt_ids has {} rows, response_ids {}", what, prompt_ids.size(0), B));
  const auto mask_of = [&](const torch::Tensor& mask, const torch::Tensor& ids, const char* name) {
    if (!mask.defined()) return torch::ones(ids.sizes(), torch::kBool);
    if (mask.sizes() != ids.sizes())
      throw Error(fmt::format("{}: {} has shape {}, its ids {}", what, name, fmt::join(mask.sizes(), "x"),
                              fmt::join(ids.sizes(), "x")));
    return mask.to(torch::kCPU).ne(0).contiguous();
  };
  const torch::Tensor pmask = mask_of(prompt_mask, prompt_ids, "prompt_mask");
  const torch::Tensor rmask = mask_of(response_mask, response_ids, "response_mask");
  const torch::Tensor pids = prompt_ids.to(torch::kCPU, torch::kInt64).contiguous();
  const torch::Tensor rids = response_ids.to(torch::kCPU, torch::kInt64).contiguous();
  const auto pi = pids.accessor<std::int64_t, 2>(), ri = rids.accessor<std::int64_t, 2>();
  const auto pm = pmask.accessor<bool, 2>(), rm = rmask.accessor<bool, 2>();

  torch::Tensor weights = torch::ones({B, R}, torch::kFloat32);
  auto out = weights.accessor<float, 2>();
  for (std::int64_t b = 0; b < B; ++b) {
    control.check(what);
    std::vector<std::int64_t> ids, response_slots;
    for (std::int64_t j = 0; j < pids.size(1); ++j)
      if (pm[b][j]) ids.push_back(pi[b][j]);
    const auto prompt_length = static_cast<std::int64_t>(ids.size());
    for (std::int64_t j = 0; j < R; ++j)
      if (rm[b][j]) {
        ids.push_back(ri[b][j]);
        response_slots.push_back(j);
      }
    if (response_slots.empty()) throw Error(fmt::format("{}: row {} has no response tokens (its mask is all 0)", what, b));
    AttentionRhythmOptions row = options;
    row.response_begin = prompt_length;
    AttentionRhythm r;
    try {
      r = attention_rhythm(model, ids, row);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: row {}: {}", what, b, e.what()));
    }
    const auto g = r.gamma.accessor<float, 1>();
    for (std::size_t k = 0; k < response_slots.size(); ++k)
      out[b][response_slots[k]] = g[prompt_length + static_cast<std::int64_t>(k)];
    control.report(static_cast<std::size_t>(b + 1), static_cast<std::size_t>(B), "rows");
  }
  return weights;
}

}  // namespace anchors::model
