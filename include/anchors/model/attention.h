#pragma once
// The one op boundary every attention computation of the library goes through.
//
// Decoder layers, the white-box methods and their kernels all meet here:
// causal softmax attention with grouped-query heads, an optional set of
// per-lane key regions whose scores are suppressed or boosted before the
// softmax (docs/design.md §3 "Attention suppression", §4), and optionally the
// log-sum-exp of every query row (what sentence pooling recomputes
// probabilities from). The implementation behind it may change (plain LibTorch
// today, the masked-attention kernels of the white-box issue later); callers
// only see these declarations.
//
// Positions here are key *slots*: index k of the key sequence handed in
// (for a decoder with a KV cache, the cache slot). The Tq queries of a call are
// the last Tq slots: query i sits at slot Tk - Tq + i and may see keys
// [0, Tk - Tq + i]. Rotary position ids are the model's business, not this op's.
//
// Rule for masked keys (what the kernels must reproduce):
//  * A causally invisible key (slot > query slot) gets probability exactly 0.
//  * A suppressed key gets its score *replaced* by the lowest finite value of the
//    input dtype (torch::finfo(dtype).min) before the softmax, so attention
//    renormalises over the other visible keys. Replacing rather than adding
//    means overlapping regions never overflow to -inf.
//  * A row whose every visible key is suppressed therefore has all its visible
//    scores equal: it attends *uniformly* over its visible keys (output = mean of
//    the visible values, log-sum-exp = lowest + log(#visible)). It stays finite,
//    never NaN. A row has at least one visible key (its own slot), so this is
//    the only degenerate case.
//  * Boost regions add +beta to the scaled score; boosts of overlapping regions
//    add up; suppression wins over boosting on the same (query, key, head).
#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "anchors/core/span.h"

namespace anchors::model {

enum class RegionEffect {
  kSuppress,  // score := lowest finite value of the dtype
  kBoost,     // score += beta
};

// One rectangle of one batch lane's score matrix: queries at slots `queries`
// looking at keys at slots `keys`, for the listed heads and layers.
struct AttentionRegion {
  std::int64_t lane = 0;               // batch index
  TokenSpan queries;                   // query slots [begin, end); clipped to the call's queries
  TokenSpan keys;                      // key slots [begin, end); clipped to [0, Tk)
  std::vector<std::int64_t> heads;     // query heads it applies to; empty = every head
  std::vector<std::int64_t> layers;    // decoder layers it applies to; empty = every layer
  RegionEffect effect = RegionEffect::kSuppress;
  double beta = 0.0;                   // kBoost only: added to the scaled score

  // Keys `keys` hidden from queries `queries` in every head and layer of `lane`.
  static AttentionRegion suppress(std::int64_t lane, TokenSpan queries, TokenSpan keys);
  // +beta on keys `keys` for queries `queries` in every head and layer of `lane`.
  static AttentionRegion boost(std::int64_t lane, TokenSpan queries, TokenSpan keys, double beta);

  bool applies_to_layer(std::int64_t layer) const;
};

// Everything a forward pass changes about attention. An empty control (or a
// null pointer) is plain causal attention.
struct AttentionControl {
  std::vector<AttentionRegion> regions;

  bool empty() const { return regions.empty(); }
  bool affects_layer(std::int64_t layer) const;
  // anchors::Error for a lane outside [0, batch), a head outside [0, heads),
  // a layer outside [0, layers) (layers < 0: not checked), a negative or
  // inverted span, or a non-finite boost beta. Spans reaching past the
  // sequence are fine: they are clipped.
  void validate(std::int64_t batch, std::int64_t heads, std::int64_t layers = -1) const;
};

struct AttentionParams {
  std::optional<double> scale;              // softmax scale; default 1/sqrt(head_dim)
  std::int64_t layer = 0;                   // the calling decoder layer (selects control regions)
  const AttentionControl* control = nullptr;
};

struct AttentionResult {
  torch::Tensor output;        // [B, Hq, Tq, D], dtype of q
  torch::Tensor log_sum_exp;   // [B, Hq, Tq] float32, natural log of the softmax denominator
                               // of the scaled, masked scores; undefined unless asked for
};

// q [B, Hq, Tq, D], k and v [B, Hkv, Tk, D] with Hq a multiple of Hkv
// (query head h reads key/value head h / (Hq / Hkv)) and Tq <= Tk; same dtype
// (float32, bfloat16 or float16) and device; any strides (the decoder passes
// transposed views and KV-cache slices).
// Returns the attention output [B, Hq, Tq, D]. anchors::Error on bad shapes.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const AttentionParams& params = {});

// The same, also returning the log-sum-exp of every query row.
AttentionResult attention_with_lse(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   const AttentionParams& params = {});

}  // namespace anchors::model
