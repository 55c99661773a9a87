#include "anchors/model/attention.h"
#include "attention_shape.h"
#include "tensor_description.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "anchors/core/error.h"

namespace anchors::model {

namespace {

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

using detail::describe;

using detail::AttentionShape;

AttentionShape check_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  return detail::check_attention_inputs("attention", q, k, &v);
}

// ---------------------------------------------------------------------------
// Fast path: no control, no log-sum-exp — LibTorch's fused SDPA (flash on CPU
// and CUDA), which never materialises the score matrix.
// ---------------------------------------------------------------------------

// Whether a window hides some key from some query: the last query (slot
// Tk - 1) sees slots > Tk - 1 - W, so only when W < Tk.
bool window_hides_keys(std::int64_t window, std::int64_t keys) { return window > 0 && window < keys; }

torch::Tensor fused_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     const AttentionShape& shape, double scale, std::int64_t window) {
  const bool grouped = shape.query_heads != shape.kv_heads;
  if (window_hides_keys(window, shape.keys)) {
    // Query slot t = first + i sees keys j with t - W < j <= t (true = may attend).
    const torch::Tensor visible = torch::ones({shape.queries, shape.keys}, torch::dtype(torch::kBool).device(q.device()))
                                      .tril(shape.first_query_slot())
                                      .triu(shape.first_query_slot() - window + 1);
    return at::scaled_dot_product_attention(q, k, v, visible, 0.0, false, scale, grouped);
  }
  if (shape.queries == shape.keys)
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, 0.0, /*is_causal=*/true, scale, grouped);
  if (shape.queries == 1)  // the newest slot sees every key
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, false, scale, grouped);
  // SDPA's is_causal aligns the diagonal top-left; queries here are the *last*
  // slots, so the diagonal is shifted by Tk - Tq (true = may attend).
  const torch::Tensor visible =
      torch::ones({shape.queries, shape.keys}, torch::dtype(torch::kBool).device(q.device()))
          .tril(shape.first_query_slot());
  return at::scaled_dot_product_attention(q, k, v, visible, 0.0, false, scale, grouped);
}

// ---------------------------------------------------------------------------
// Explicit path: float32 scores for a block of query rows, regions applied by
// the rule of attention.h, exact softmax. Query blocks bound the memory to
// about kScoreBudget floats whatever T is.
// ---------------------------------------------------------------------------

constexpr std::int64_t kScoreBudget = std::int64_t{1} << 25;  // 128 MiB of float32 scores

struct ClippedRange {
  std::int64_t begin = 0, end = 0;
  bool empty() const { return end <= begin; }
  std::int64_t size() const { return end - begin; }
};

ClippedRange clip(TokenSpan span, std::int64_t lo, std::int64_t hi) {
  return {std::max(span.begin, lo), std::min(span.end, hi)};
}

// The lanes [b, ...] of a batch tensor [B, ...] that a region's lane names:
// one (b = 1) or all of them (kEveryLane).
torch::Tensor lanes_of(const torch::Tensor& batch, std::int64_t lane) {
  return lane == kEveryLane ? batch : batch.narrow(0, lane, 1);
}

// Zeroes the output rows [B, Hq, Tq, D] of the heads that an ablate region of
// `control` names for `layer`, queries at slots [first_slot, first_slot + Tq).
void ablate_heads(torch::Tensor& output, const AttentionControl& control, std::int64_t layer,
                  std::int64_t first_slot) {
  const std::int64_t rows = output.size(2);
  for (const AttentionRegion& region : control.regions) {
    if (region.effect != RegionEffect::kAblate || !region.applies_to_layer(layer)) continue;
    const ClippedRange query_slots = clip(region.queries, first_slot, first_slot + rows);
    if (query_slots.empty()) continue;
    const torch::Tensor block =
        lanes_of(output, region.lane).narrow(2, query_slots.begin - first_slot, query_slots.size());  // [b, Hq, q, D]
    if (region.heads.empty()) {
      block.zero_();
    } else {
      for (const std::int64_t head : region.heads) block.select(1, head).zero_();
    }
  }
}

// Applies every suppress and boost region of `control` for `layer` to scores [B, Hq, rows, Tk]
// whose rows are the query slots [first_slot, first_slot + rows).
void apply_regions(torch::Tensor& scores, const AttentionControl& control, std::int64_t layer,
                   std::int64_t first_slot, double suppressed_score) {
  const std::int64_t rows = scores.size(2), keys = scores.size(3);
  // Boosts first, then suppression overwrites: suppression wins wherever both apply.
  for (const RegionEffect pass : {RegionEffect::kBoost, RegionEffect::kSuppress}) {
    for (const AttentionRegion& region : control.regions) {
      if (region.effect != pass || !region.applies_to_layer(layer)) continue;
      const ClippedRange query_slots = clip(region.queries, first_slot, first_slot + rows);
      const ClippedRange key_slots = clip(region.keys, 0, keys);
      if (query_slots.empty() || key_slots.empty()) continue;
      const torch::Tensor lane_block = lanes_of(scores, region.lane)
                                           .narrow(2, query_slots.begin - first_slot, query_slots.size())
                                           .narrow(3, key_slots.begin, key_slots.size());  // [b, Hq, q, k]
      const auto edit = [&](torch::Tensor block) {
        if (pass == RegionEffect::kBoost)
          block.add_(region.beta);
        else
          block.fill_(suppressed_score);
      };
      if (region.heads.empty()) {
        edit(lane_block);
      } else {
        for (const std::int64_t head : region.heads) edit(lane_block.select(1, head));
      }
    }
  }
}

AttentionResult explicit_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   const AttentionShape& shape, double scale, const AttentionParams& params,
                                   bool want_lse) {
  const auto dtype = q.scalar_type();
  const double suppressed_score = detail::lowest_finite(dtype);
  const std::int64_t B = shape.batch, Hq = shape.query_heads, Hkv = shape.kv_heads, G = shape.group();
  const std::int64_t Tk = shape.keys, D = shape.head_dim;

  // Key/value heads are shared by G consecutive query heads: fold the group
  // into the row dimension instead of repeating K and V.
  const torch::Tensor keys_t = k.to(torch::kFloat32).transpose(2, 3);  // [B, Hkv, D, Tk]
  const torch::Tensor values = v.to(torch::kFloat32);                   // [B, Hkv, Tk, D]
  const torch::Tensor queries = q.to(torch::kFloat32);                  // [B, Hq, Tq, D]

  const std::int64_t rows_per_block = std::max<std::int64_t>(1, kScoreBudget / std::max<std::int64_t>(1, B * Hq * Tk));
  std::vector<torch::Tensor> outputs, lses;
  for (std::int64_t row0 = 0; row0 < shape.queries; row0 += rows_per_block) {
    const std::int64_t rows = std::min(rows_per_block, shape.queries - row0);
    const std::int64_t first_slot = shape.first_query_slot() + row0;
    const torch::Tensor grouped_queries =
        queries.narrow(2, row0, rows).reshape({B, Hkv, G * rows, D});  // [B, Hkv, G*rows, D]
    torch::Tensor scores = at::matmul(grouped_queries, keys_t).mul_(scale).view({B, Hq, rows, Tk});

    if (params.control != nullptr) apply_regions(scores, *params.control, params.layer, first_slot, suppressed_score);

    // Causal exclusion is absolute: a key after the query's slot has probability 0,
    // as has one the window leaves behind (slot <= query slot - W).
    detail::mask_invisible_keys(scores, first_slot, 0, params.sliding_window);

    // Max-subtracted softmax: an all-suppressed row has max = lowest and comes
    // out uniform over its visible keys. (exp(score - lse) would not: lowest +
    // log(n) rounds back to lowest in float32.)
    if (want_lse) lses.push_back(at::logsumexp(scores, -1));  // [B, Hq, rows]
    const torch::Tensor probabilities = at::softmax(scores, -1);
    const torch::Tensor block_output =
        at::matmul(probabilities.view({B, Hkv, G * rows, Tk}), values).view({B, Hq, rows, D});
    outputs.push_back(block_output);
  }
  AttentionResult result;
  result.output = (outputs.size() == 1 ? outputs.front() : at::cat(outputs, 2)).to(dtype);
  if (want_lse) result.log_sum_exp = lses.size() == 1 ? lses.front() : at::cat(lses, 2);
  return result;
}

// ---------------------------------------------------------------------------
// Controlled path without a log-sum-exp: the regions become an additive mask
// for the fused SDPA, which never materialises the scores (the explicit path
// writes and reads them several times per layer: scale, regions, mask, softmax).
// mask = 0, + beta where a boost applies, lowest finite where a suppression
// does, -inf where the key is invisible; the fused op adds it to the scaled
// scores. That is the explicit path's rule: score + lowest rounds to lowest in
// float32 for any |score| < 1e31, a fully suppressed row is uniform over its
// visible keys (max-subtracted softmax), and invisible keys get 0. In float32
// whatever the input dtype, as the explicit path scores.
// ---------------------------------------------------------------------------

torch::Tensor masked_fused_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     const AttentionShape& shape, double scale, const AttentionParams& params) {
  const AttentionControl& control = *params.control;
  const std::int64_t B = shape.batch, Tk = shape.keys;
  // One mask for every head unless some region names heads.
  bool per_head = false;
  for (const AttentionRegion& region : control.regions)
    per_head = per_head || (region.applies_to_layer(params.layer) && !region.heads.empty());
  const std::int64_t mask_heads = per_head ? shape.query_heads : 1;
  const torch::Tensor queries = q.to(torch::kFloat32), keys = k.to(torch::kFloat32), values = v.to(torch::kFloat32);
  // float32's lowest whatever the input dtype: float16's (-65504) plus a score
  // would not round back to itself. The weights are the same as the explicit
  // path's replacement by the dtype's lowest (0 beside any visible score,
  // uniform when all are suppressed); only a log-sum-exp would differ.
  const double suppressed_score = detail::lowest_finite(torch::kFloat32);
  const bool grouped = shape.query_heads != shape.kv_heads;
  const std::int64_t rows_per_block =
      std::max<std::int64_t>(1, kScoreBudget / std::max<std::int64_t>(1, B * mask_heads * Tk));
  std::vector<torch::Tensor> outputs;
  for (std::int64_t row0 = 0; row0 < shape.queries; row0 += rows_per_block) {
    const std::int64_t rows = std::min(rows_per_block, shape.queries - row0);
    const std::int64_t first_slot = shape.first_query_slot() + row0;
    torch::Tensor mask = torch::zeros({B, mask_heads, rows, Tk}, queries.options());
    apply_regions(mask, control, params.layer, first_slot, suppressed_score);
    detail::mask_invisible_keys(mask, first_slot, 0, params.sliding_window);
    outputs.push_back(at::scaled_dot_product_attention(queries.narrow(2, row0, rows), keys, values, mask, 0.0,
                                                       /*is_causal=*/false, scale, grouped));
  }
  return (outputs.size() == 1 ? outputs.front() : at::cat(outputs, 2)).to(q.scalar_type());
}

// ---------------------------------------------------------------------------
// Shared prefix: keys/values [1, Hkv, P, D] that every lane sees before its
// own slots. The prefix part is one batched GEMM per kv head over all lanes'
// queries (the prefix is read once, not once per lane), the lanes' own part the
// usual op, and the two merge by their log-sum-exps.
// ---------------------------------------------------------------------------

// Attention of q [B, Hq, Tq, D] over the prefix alone (every prefix slot
// precedes every query: no mask), float32 output and log-sum-exp.
AttentionResult prefix_attention(const torch::Tensor& q, const torch::Tensor& prefix_keys,
                                 const torch::Tensor& prefix_values, const AttentionShape& shape, double scale) {
  const std::int64_t B = shape.batch, Hkv = shape.kv_heads, G = shape.group(), D = shape.head_dim;
  const std::int64_t P = prefix_keys.size(2);
  // [B, Hkv, G Tq, D] -> [Hkv, B G Tq, D]: every lane's rows of one kv head against its keys at once.
  const std::int64_t rows = G * shape.queries;
  const torch::Tensor queries =
      q.to(torch::kFloat32).reshape({B, Hkv, rows, D}).transpose(0, 1).reshape({Hkv, B * rows, D});
  const torch::Tensor keys_t = prefix_keys[0].to(torch::kFloat32).transpose(1, 2);  // [Hkv, D, P]
  const torch::Tensor values = prefix_values[0].to(torch::kFloat32);                // [Hkv, P, D]
  std::vector<torch::Tensor> outputs, lses;
  const std::int64_t block = std::max<std::int64_t>(1, kScoreBudget / std::max<std::int64_t>(1, Hkv * P));
  for (std::int64_t row0 = 0; row0 < B * rows; row0 += block) {
    const std::int64_t n = std::min(block, B * rows - row0);
    const torch::Tensor scores = at::bmm(queries.narrow(1, row0, n), keys_t).mul_(scale);  // [Hkv, n, P]
    lses.push_back(at::logsumexp(scores, -1));
    outputs.push_back(at::bmm(at::softmax(scores, -1), values));  // [Hkv, n, D]
  }
  const torch::Tensor output = outputs.size() == 1 ? outputs.front() : at::cat(outputs, 1);
  const torch::Tensor lse = lses.size() == 1 ? lses.front() : at::cat(lses, 1);
  AttentionResult result;
  result.output = output.view({Hkv, B, rows, D}).transpose(0, 1).reshape({B, shape.query_heads, shape.queries, D});
  result.log_sum_exp = lse.view({Hkv, B, rows}).transpose(0, 1).reshape({B, shape.query_heads, shape.queries});
  return result;
}

AttentionResult run_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const AttentionParams& params, bool want_lse);

AttentionResult shared_prefix_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                        const AttentionParams& params, bool want_lse) {
  const torch::Tensor& prefix_keys = params.shared_keys;
  const torch::Tensor& prefix_values = params.shared_values;
  if (!prefix_values.defined() || prefix_keys.dim() != 4 || prefix_keys.size(0) != 1 ||
      !prefix_keys.sizes().equals(prefix_values.sizes()) || prefix_keys.size(1) != k.size(1) ||
      prefix_keys.size(3) != k.size(3) || prefix_keys.scalar_type() != k.scalar_type() ||
      prefix_keys.device() != k.device())
    throw Error(fmt::format("attention: the shared prefix must be keys and values [1, Hkv, P, D] like k ({}); got {} "
                            "and {}",
                            describe(k), describe(prefix_keys),
                            prefix_values.defined() ? describe(prefix_values) : "undefined"));
  AttentionParams own = params;
  own.shared_keys = own.shared_values = torch::Tensor();
  const std::int64_t lanes = k.size(0), prefix = prefix_keys.size(2);
  const bool controlled = params.control != nullptr && params.control->affects_layer(params.layer);
  if ((controlled && params.control->changes_scores(params.layer)) ||
      window_hides_keys(params.sliding_window, prefix + k.size(2))) {
    // Regions and windows address slots of the whole sequence: run on the concatenation.
    return run_attention(q, at::cat({prefix_keys.expand({lanes, -1, -1, -1}), k}, 2),
                         at::cat({prefix_values.expand({lanes, -1, -1, -1}), v}, 2), own, want_lse);
  }
  own.control = nullptr;  // ablation is applied below, at the whole sequence's slots
  own.sliding_window = 0;  // the window covers every slot here
  const AttentionShape shape = check_inputs(q, k, v);
  const double scale = params.scale.value_or(1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
  const AttentionResult head = prefix_attention(q, prefix_keys, prefix_values, shape, scale);
  // In float32 throughout, rounded once after the merge.
  const AttentionResult tail = explicit_attention(q.to(torch::kFloat32), k.to(torch::kFloat32),
                                                  v.to(torch::kFloat32), shape, scale, own, /*want_lse=*/true);
  // softmax over [prefix, own] = each part's softmax weighted by its share of the total mass.
  const torch::Tensor lse = at::logaddexp(head.log_sum_exp, tail.log_sum_exp);
  const torch::Tensor head_weight = (head.log_sum_exp - lse).exp_().unsqueeze(-1);
  const torch::Tensor tail_weight = (tail.log_sum_exp - lse).exp_().unsqueeze(-1);
  AttentionResult result;
  result.output = (head.output * head_weight).add_(tail.output * tail_weight).to(q.scalar_type());
  if (want_lse) result.log_sum_exp = lse;
  if (controlled) {
    params.control->validate(shape.batch, shape.query_heads);
    ablate_heads(result.output, *params.control, params.layer, prefix + shape.first_query_slot());
  }
  return result;
}

AttentionResult run_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const AttentionParams& params, bool want_lse) {
  if (params.sliding_window < 0)
    throw Error(fmt::format("attention: sliding_window must be >= 0 (0: none), got {}", params.sliding_window));
  if (params.shared_keys.defined()) return shared_prefix_attention(q, k, v, params, want_lse);
  const AttentionShape shape = check_inputs(q, k, v);
  const double scale = params.scale.value_or(1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
  const bool controlled = params.control != nullptr && params.control->affects_layer(params.layer);
  if (controlled) params.control->validate(shape.batch, shape.query_heads);
  // Ablation alone leaves the scores as they are: the fused path serves it.
  const bool scores_change = controlled && params.control->changes_scores(params.layer);
  AttentionResult result =
      want_lse        ? explicit_attention(q, k, v, shape, scale, params, want_lse)
      : scores_change ? AttentionResult{masked_fused_attention(q, k, v, shape, scale, params), {}}
                      : AttentionResult{fused_causal_attention(q, k, v, shape, scale, params.sliding_window), {}};
  if (controlled) ablate_heads(result.output, *params.control, params.layer, shape.first_query_slot());
  return result;
}

}  // namespace

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const AttentionParams& params) {
  return run_attention(q, k, v, params, /*want_lse=*/false).output;
}

AttentionResult attention_with_lse(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   const AttentionParams& params) {
  return run_attention(q, k, v, params, /*want_lse=*/true);
}

}  // namespace anchors::model
