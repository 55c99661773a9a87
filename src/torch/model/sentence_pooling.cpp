// CPU twin of the sentence pooling kernel (docs/design.md §4 item 2): attention
// probabilities recomputed tile by tile from Q, K and the per-row log-sum-exp,
// with the suppression / boost regions of an AttentionControl applied to each
// score tile by the rule of attention.h, reduced at once into per-head sentence
// blocks. Plain LibTorch ops, so it also runs (unfused) on CUDA tensors.
#include "anchors/model/sentence_pooling.h"
#include "attention_shape.h"
#include "tensor_description.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "anchors/core/error.h"

namespace anchors::model {

namespace {

using detail::describe;

using detail::AttentionShape;

AttentionShape check_qk(const torch::Tensor& q, const torch::Tensor& k, const SentencePoolingParams& params,
                   const char* what) {
  const AttentionShape shape = detail::check_attention_inputs(what, q, k);
  if (params.query_tile < 1 || params.key_tile < 1)
    throw Error(fmt::format("{}: tile sizes must be >= 1, got {} x {}", what, params.query_tile, params.key_tile));
  if (params.scale && !std::isfinite(*params.scale))
    throw Error(fmt::format("{}: scale must be finite, got {}", what, *params.scale));
  if (params.sliding_window < 0)
    throw Error(fmt::format("{}: sliding_window must be >= 0 (0: none), got {}", what, params.sliding_window));
  // Same acceptance as attention(): a control is checked when it affects the
  // layer, so a control that works for a forward pass works here.
  if (params.control != nullptr && params.control->affects_layer(params.layer)) {
    try {
      params.control->validate(shape.batch, shape.query_heads);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", what, e.what()));
    }
  }
  return shape;
}

double scale_of(const AttentionShape& shape, const SentencePoolingParams& params) {
  return params.scale.value_or(1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
}

// The regions of a control that apply to one layer, the suppressed score and
// the layer's sliding window: what every score tile needs besides Q and K.
struct TileRegions {
  std::vector<const AttentionRegion*> regions;
  double suppressed_score = 0;
  std::int64_t window = 0;
  bool empty() const { return regions.empty(); }
};

TileRegions tile_regions(const SentencePoolingParams& params, torch::ScalarType dtype) {
  TileRegions out;
  out.suppressed_score = detail::lowest_finite(dtype);
  out.window = params.sliding_window;
  if (params.control == nullptr) return out;
  for (const AttentionRegion& region : params.control->regions)
    if (region.applies_to_layer(params.layer)) out.regions.push_back(&region);
  return out;
}

// Applies the regions to scores [B, Hq, rows, cols] of query slots
// [row_slot, row_slot + rows) against key slots [c0, c0 + cols), before the
// causal mask. Boosts first, then suppression overwrites: suppression wins
// wherever both apply (attention.h).
void apply_regions(torch::Tensor& scores, const TileRegions& active, std::int64_t row_slot, std::int64_t c0) {
  const std::int64_t rows = scores.size(2), cols = scores.size(3);
  for (const RegionEffect pass : {RegionEffect::kBoost, RegionEffect::kSuppress}) {
    for (const AttentionRegion* region : active.regions) {
      if (region->effect != pass) continue;
      const std::int64_t q0 = std::max(region->queries.begin, row_slot);
      const std::int64_t q1 = std::min(region->queries.end, row_slot + rows);
      const std::int64_t k0 = std::max(region->keys.begin, c0);
      const std::int64_t k1 = std::min(region->keys.end, c0 + cols);
      if (q1 <= q0 || k1 <= k0) continue;
      const torch::Tensor lanes =
          region->lane == kEveryLane ? scores : scores.narrow(0, region->lane, 1);  // [b, Hq, rows, cols]
      const torch::Tensor block = lanes.narrow(2, q0 - row_slot, q1 - q0).narrow(3, k0 - c0, k1 - k0);  // [b, Hq, q, k]
      const auto edit = [&](torch::Tensor part) {
        if (pass == RegionEffect::kBoost)
          part.add_(region->beta);
        else
          part.fill_(active.suppressed_score);
      };
      if (region->heads.empty()) {
        edit(block);
      } else {
        for (const std::int64_t head : region->heads) edit(block.select(1, head));
      }
    }
  }
}

// Scaled scores [B, Hq, rows, cols] of query rows [r0, r0 + rows) (query
// indices) against key slots [c0, c0 + cols), regions applied, causally
// invisible pairs and pairs outside the window -inf (after the regions:
// exclusion is absolute).
// `queries` is [B, Hkv, G, Tq, D] float32, `keys` [B, Hkv, Tk, D] float32.
torch::Tensor score_tile(const torch::Tensor& queries, const torch::Tensor& keys, const AttentionShape& shape,
                         double scale, const TileRegions& active, std::int64_t r0, std::int64_t rows,
                         std::int64_t c0, std::int64_t cols) {
  const std::int64_t B = shape.batch, Hkv = shape.kv_heads, G = shape.group(), D = shape.head_dim;
  const torch::Tensor q_tile = queries.narrow(3, r0, rows).reshape({B, Hkv, G * rows, D});
  const torch::Tensor k_tile = keys.narrow(2, c0, cols).transpose(2, 3);  // [B, Hkv, D, cols]
  torch::Tensor scores = at::matmul(q_tile, k_tile).mul_(scale).view({B, shape.query_heads, rows, cols});
  const std::int64_t first_row_slot = shape.first_query_slot() + r0;
  if (!active.empty()) apply_regions(scores, active, first_row_slot, c0);
  detail::mask_invisible_keys(scores, first_row_slot, c0, active.window);
  return scores;
}

// What exp(score - lse) needs per query row so that all-suppressed rows come
// out uniform (see sentence_pooling.h): P = exp(score - base - extra) with
// base = lse, extra = 0 for ordinary rows and base = lowest, extra = log(n)
// for a row whose n visible keys are all suppressed. Both [B, Hq, Tq, 1].
struct RowShift {
  torch::Tensor base, extra;
};

RowShift row_shift(const torch::Tensor& lse, const AttentionShape& shape, const TileRegions& active) {
  RowShift shift;
  shift.base = lse.to(torch::kFloat32).unsqueeze(-1);
  if (active.empty()) return shift;  // nothing suppressed: no degenerate rows
  const auto f64 = torch::dtype(torch::kFloat64).device(lse.device());
  // Visible keys of query r: slots 0..first_slot + r, at most W of them.
  torch::Tensor visible = torch::arange(shape.first_query_slot() + 1, shape.keys + 1, f64);  // [Tq]
  if (active.window > 0) visible.clamp_max_(static_cast<double>(active.window));
  const torch::Tensor log_visible = visible.log_();
  // In double, so the bound also separates fp16's lowest (-65504) + log(n).
  const torch::Tensor degenerate =
      lse.to(torch::kFloat64).le(log_visible + (active.suppressed_score + 1.0)).unsqueeze(-1);  // [B, Hq, Tq, 1]
  shift.base = at::where(degenerate, torch::full({}, active.suppressed_score, shift.base.options()), shift.base);
  shift.extra = at::where(degenerate, log_visible.to(torch::kFloat32).view({shape.queries, 1}),
                          torch::zeros({}, shift.base.options()));
  return shift;
}

torch::Tensor grouped_queries(const torch::Tensor& q, const AttentionShape& shape) {
  return q.to(torch::kFloat32)
      .contiguous()
      .view({shape.batch, shape.kv_heads, shape.group(), shape.queries, shape.head_dim});
}

// Float one-hot [n, last - first + 1] of the sentence ids `ids[0..n)` against
// sentences [first, last]; id -1 (outside every sentence) gives a zero row.
torch::Tensor one_hot(const std::int64_t* ids, std::int64_t n, std::int64_t first, std::int64_t last,
                      const torch::Device& device) {
  torch::Tensor m = torch::zeros({n, last - first + 1}, torch::kFloat32);
  auto a = m.accessor<float, 2>();
  for (std::int64_t r = 0; r < n; ++r)
    if (ids[r] >= 0) a[r][ids[r] - first] = 1.0f;
  return m.to(device);
}

// First and last sentence id >= 0 among ids[0..n); false when there is none.
bool sentence_range(const std::int64_t* ids, std::int64_t n, std::int64_t& first, std::int64_t& last) {
  first = -1;
  last = -1;
  for (std::int64_t r = 0; r < n; ++r) {
    if (ids[r] < 0) continue;
    if (first < 0) first = ids[r];
    last = ids[r];
  }
  return first >= 0;
}

}  // namespace

void validate_sentence_spans(const std::vector<TokenSpan>& sentences, std::int64_t num_keys, const char* what) {
  if (sentences.empty()) throw Error(fmt::format("{}: no sentence spans", what));
  for (std::size_t i = 0; i < sentences.size(); ++i) {
    const TokenSpan& s = sentences[i];
    if (s.begin < 0 || s.end <= s.begin)
      throw Error(fmt::format("{}: sentence {} has an empty or negative token span [{}, {})", what, i, s.begin, s.end));
    if (s.end > num_keys)
      throw Error(fmt::format("{}: sentence {} token span [{}, {}) reaches past the end of the {} tokens", what, i,
                              s.begin, s.end, num_keys));
    if (i > 0 && s.begin < sentences[i - 1].end)
      throw Error(fmt::format("{}: sentence {} token span [{}, {}) overlaps or precedes sentence {} [{}, {}); spans "
                              "must be in increasing order and disjoint",
                              what, i, s.begin, s.end, i - 1, sentences[i - 1].begin, sentences[i - 1].end));
  }
}

torch::Tensor causal_log_sum_exp(const torch::Tensor& q, const torch::Tensor& k, const SentencePoolingParams& params) {
  const AttentionShape shape = check_qk(q, k, params, "causal_log_sum_exp");
  const double scale = scale_of(shape, params);
  const TileRegions active = tile_regions(params, q.scalar_type());
  const torch::Tensor queries = grouped_queries(q, shape);
  const torch::Tensor keys = k.to(torch::kFloat32);
  const auto options = torch::dtype(torch::kFloat32).device(q.device());
  std::vector<torch::Tensor> parts;
  // Tiles never exceed the sequence (and the slot arithmetic cannot overflow).
  const std::int64_t query_tile = std::min(params.query_tile, shape.keys);
  const std::int64_t key_tile = std::min(params.key_tile, shape.keys);
  for (std::int64_t r0 = 0; r0 < shape.queries; r0 += query_tile) {
    const std::int64_t rows = std::min(query_tile, shape.queries - r0);
    const std::int64_t first_row_slot = shape.first_query_slot() + r0;
    const std::int64_t key_end = first_row_slot + rows;  // keys [key_begin, key_end) are visible to someone
    const std::int64_t key_begin = detail::first_visible_key(first_row_slot, active.window);
    // The running max starts at the lowest finite float rather than -inf: a
    // row may see no key of a tile (a window), and -inf - -inf would be NaN.
    // Every score that counts is >= that (at worst the suppressed score).
    torch::Tensor running_max =
        torch::full({shape.batch, shape.query_heads, rows, 1}, std::numeric_limits<float>::lowest(), options);
    torch::Tensor running_sum = torch::zeros({shape.batch, shape.query_heads, rows, 1}, options);
    for (std::int64_t c0 = key_begin; c0 < key_end; c0 += key_tile) {
      const std::int64_t cols = std::min(key_tile, key_end - c0);
      const torch::Tensor scores = score_tile(queries, keys, shape, scale, active, r0, rows, c0, cols);
      // The max-subtracted form keeps an all-suppressed row finite: lowest + log(n).
      const torch::Tensor new_max = at::maximum(running_max, std::get<0>(scores.max(-1, /*keepdim=*/true)));
      running_sum.mul_((running_max - new_max).exp_()).add_((scores - new_max).exp_().sum(-1, /*keepdim=*/true));
      running_max = new_max;
    }
    parts.push_back(running_max.add_(running_sum.log_()).squeeze(-1));
  }
  return parts.size() == 1 ? parts.front() : at::cat(parts, 2);
}

torch::Tensor sentence_block_sums(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                                  const std::vector<TokenSpan>& sentences, const SentencePoolingParams& params) {
  const char* what = "sentence_block_sums";
  const AttentionShape shape = check_qk(q, k, params, what);
  check_lse(what, lse, shape, q);
  validate_sentence_spans(sentences, shape.keys, what);

  const double scale = scale_of(shape, params);
  const TileRegions active = tile_regions(params, q.scalar_type());
  const std::int64_t S = static_cast<std::int64_t>(sentences.size());
  const auto options = torch::dtype(torch::kFloat32).device(q.device());
  torch::Tensor sums = torch::zeros({shape.batch, shape.query_heads, S, S}, options);

  // Sentence id of every key slot (-1 between sentences).
  std::vector<std::int64_t> sentence_of(static_cast<std::size_t>(shape.keys), -1);
  for (std::int64_t i = 0; i < S; ++i)
    std::fill(sentence_of.begin() + sentences[i].begin, sentence_of.begin() + sentences[i].end, i);

  const std::int64_t first_slot = shape.first_query_slot();
  const std::int64_t query_lo = std::max(sentences.front().begin, first_slot);  // slots
  const std::int64_t query_hi = sentences.back().end;
  const std::int64_t key_lo = sentences.front().begin;
  if (query_lo >= query_hi) return sums;

  const torch::Tensor queries = grouped_queries(q, shape);
  const torch::Tensor keys = k.to(torch::kFloat32);
  const RowShift shift = row_shift(lse, shape, active);

  const std::int64_t query_tile = std::min(params.query_tile, shape.keys);
  const std::int64_t key_tile = std::min(params.key_tile, shape.keys);
  for (std::int64_t r0 = query_lo; r0 < query_hi; r0 += query_tile) {
    const std::int64_t rows = std::min(query_tile, query_hi - r0);
    std::int64_t qi0 = 0, qi1 = 0;
    if (!sentence_range(sentence_of.data() + r0, rows, qi0, qi1)) continue;
    const std::int64_t row0 = r0 - first_slot;  // query index
    const torch::Tensor tile_base = shift.base.narrow(2, row0, rows);
    const torch::Tensor tile_extra = shift.extra.defined() ? shift.extra.narrow(2, row0, rows) : torch::Tensor();
    // Row-reduced probabilities: per query row, the sum over each key sentence.
    torch::Tensor row_sums = torch::zeros({shape.batch, shape.query_heads, rows, qi1 + 1}, options);
    const std::int64_t key_hi = r0 + rows;  // the last row's slot is key_hi - 1
    for (std::int64_t c0 = std::max(key_lo, detail::first_visible_key(r0, active.window)); c0 < key_hi; c0 += key_tile) {
      const std::int64_t cols = std::min(key_tile, key_hi - c0);
      std::int64_t kj0 = 0, kj1 = 0;
      if (!sentence_range(sentence_of.data() + c0, cols, kj0, kj1)) continue;
      torch::Tensor probabilities =
          score_tile(queries, keys, shape, scale, active, row0, rows, c0, cols).sub_(tile_base);
      if (tile_extra.defined()) probabilities.sub_(tile_extra);
      probabilities.exp_();  // [B, Hq, rows, cols]
      const torch::Tensor key_one_hot = one_hot(sentence_of.data() + c0, cols, kj0, kj1, q.device());
      row_sums.narrow(3, kj0, kj1 - kj0 + 1).add_(at::matmul(probabilities, key_one_hot));
    }
    const torch::Tensor query_one_hot = one_hot(sentence_of.data() + r0, rows, qi0, qi1, q.device());  // [rows, n]
    sums.narrow(2, qi0, qi1 - qi0 + 1)
        .narrow(3, 0, qi1 + 1)
        .add_(at::matmul(query_one_hot.t(), row_sums));  // [B, Hq, n, qi1 + 1]
  }
  return sums;
}

torch::Tensor sentence_block_means(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                                   const std::vector<TokenSpan>& sentences, const SentencePoolingParams& params) {
  const torch::Tensor sums = sentence_block_sums(q, k, lse, sentences, params);
  const std::int64_t S = static_cast<std::int64_t>(sentences.size());
  const std::int64_t first_slot = k.size(2) - q.size(2);
  torch::Tensor query_counts = torch::empty({S, 1}, torch::kFloat32);
  torch::Tensor key_counts = torch::empty({1, S}, torch::kFloat32);
  for (std::int64_t i = 0; i < S; ++i) {
    const TokenSpan& s = sentences[i];
    query_counts[i][0] = static_cast<float>(std::max<std::int64_t>(0, s.end - std::max(s.begin, first_slot)));
    key_counts[0][i] = static_cast<float>(s.size());
  }
  // A sentence with no query row present: 0 / 0 = NaN, as documented.
  return sums.div_((query_counts * key_counts).to(sums.device()));
}

}  // namespace anchors::model
