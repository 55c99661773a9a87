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
//  * A causally invisible key (slot > query slot) gets probability exactly 0,
//    and so does, with a sliding window W, a key at slot <= query slot - W:
//    a query sees at most its W latest slots (sliding_window_overlay of
//    transformers). "Visible" below means both.
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
//  * An ablate region zeroes the head's output rows for its queries after the
//    softmax (scores, probabilities and the log-sum-exp are unchanged): the
//    head contributes nothing to o_proj there.
//  * A region with lane kEveryLane applies to every lane of the batch.
#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "anchors/core/attention_control.h"
#include "anchors/core/span.h"

namespace anchors::model {

// The control types live in the core (a CompletionRequest carries them to a
// server); the model namespace names them as before.
using anchors::AttentionControl;
using anchors::AttentionRegion;
using anchors::RegionEffect;

struct AttentionParams {
  std::optional<double> scale;              // softmax scale; default 1/sqrt(head_dim)
  std::int64_t layer = 0;                   // the calling decoder layer (selects control regions)
  const AttentionControl* control = nullptr;
  // Sliding window W of this layer (ModelConfig::sliding_window); 0: full
  // causal attention. Windows count slots, shared prefix included.
  std::int64_t sliding_window = 0;
  // A prefix every lane shares (KVCache::share_prefix): keys/values [1, Hkv, P, D]
  // that precede k and v, so the key slots are [0, P + Tk) and the queries the
  // last Tq of them. Read once for all lanes: the prefix part is one batched
  // GEMM over the lanes' queries, merged with the lanes' own part by their
  // log-sum-exps (the same function as attention over the concatenation, to
  // float32 rounding). A control that changes scores, or a window some key
  // falls outside, gets the concatenation.
  torch::Tensor shared_keys, shared_values;
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
// Returns the attention output [B, Hq, Tq, D]. anchors::Error on bad shapes
// or a negative window.
// Cost: LibTorch's fused SDPA, which never holds the Tq x Tk scores; with a
// control that changes scores, the same op with an additive float32 mask
// [B, 1 or Hq, rows, Tk], built per block of rows (at most 128 MiB).
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const AttentionParams& params = {});

// The same, also returning the log-sum-exp of every query row (explicit
// float32 scores, in blocks of rows of at most 128 MiB).
AttentionResult attention_with_lse(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                   const AttentionParams& params = {});

}  // namespace anchors::model
