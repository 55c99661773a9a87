#pragma once
// Sentence pooling (docs/design.md §4 kernel 2, CPU twin): per-head S×S sums and
// means of attention probabilities over sentence blocks, recomputed tile by
// tile from Q, K and the log-sum-exp of every query row, never materialising a
// T×T matrix.
//
//   P[t, s] = exp(scale * q_t · k_s - lse_t)     for key slot s <= slot of t, else 0
//             (and 0 for s <= slot of t - W with a sliding window W)
//   sums[b, h, i, j]  = Σ_{t ∈ sentence i} Σ_{s ∈ sentence j} P[t, s]
//   means[b, h, i, j] = sums[b, h, i, j] / (|i| · |j|)
//
// Slots follow attention.h: keys are slots [0, Tk); the Tq queries are the last
// Tq slots (query r sits at slot Tk - Tq + r). Query head h reads key head
// h / (Hq / Hkv) (GQA). Sentences are token spans [begin, end) over key slots.
//
// Memory: O(B·H·S² + B·H·T + B·H·tile_q·tile_k) float32, whatever T is.
//
// Suppression and boosting: with params.control, the control's regions for
// params.layer change the scores exactly as in attention.h before the
// probabilities are formed (suppressed score := lowest finite value of q's
// dtype, boost += beta, suppression wins, causal exclusion absolute), so the
// block sums are those of the attention a controlled forward pass computed.
// The lse handed in must come from the same scores: causal_log_sum_exp with the
// same params, or attention_with_lse with the same control and layer.
//
// An all-suppressed row (every visible key suppressed) attends uniformly over
// its visible keys. Its lse is lowest + log(n) mathematically, but in float32
// that rounds back to lowest, so exp(score - lse) would give 1 per key, not
// 1/n. The pooling therefore recognises such rows by their lse (at most
// lowest + log(n) + 1, n = the row's visible keys; a row with a key that is not
// suppressed would need that key's score below the same bound, far beyond any
// real score) and uses exp(score - lowest - log(n)) = 1/n for them.
#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "anchors/core/span.h"
#include "anchors/model/attention.h"

namespace anchors::model {

struct SentencePoolingParams {
  std::optional<double> scale;     // softmax scale; default 1/sqrt(head_dim)
  std::int64_t query_tile = 128;   // query rows per tile (>= 1)
  std::int64_t key_tile = 128;     // key columns per tile (>= 1)
  // Suppression / boost regions (attention.h); null or empty = plain causal
  // attention. `layer` selects the regions that apply (AttentionParams::layer).
  const AttentionControl* control = nullptr;
  std::int64_t layer = 0;
  // The layer's sliding window (attention.h); 0: none. The lse must come
  // from the same window.
  std::int64_t sliding_window = 0;
};

// anchors::Error unless the spans are non-empty, in increasing order,
// non-overlapping and inside [0, num_keys), and the list is non-empty.
// `what` prefixes the message (the calling function's name).
void validate_sentence_spans(const std::vector<TokenSpan>& sentences, std::int64_t num_keys, const char* what);

// Log-sum-exp [B, Hq, Tq] float32 of the scaled causal scores of q
// [B, Hq, Tq, D] against k [B, Hkv, Tk, D] (slots as above), computed tile by
// tile with a running max (online log-sum-exp), O(B·H·T + tile²) memory, with
// params.control's regions for params.layer applied. Equals
// attention_with_lse(q, k, v, {.layer, .control}).log_sum_exp to float32
// rounding (an all-suppressed row: lowest + log(n), i.e. lowest in float32).
// anchors::Error on bad shapes or a control outside the batch / heads.
torch::Tensor causal_log_sum_exp(const torch::Tensor& q, const torch::Tensor& k,
                                 const SentencePoolingParams& params = {});

// Block sums [B, Hq, S, S] float32 of attention probabilities (formula above).
// q [B, Hq, Tq, D], k [B, Hkv, Tk, D] (float32, bfloat16 or float16; computed in
// float32), lse [B, Hq, Tq]. Only queries present in q count: with Tq < Tk
// (a cached prefix), the part of a sentence before slot Tk - Tq contributes no
// query rows. Pairs above the causal diagonal contribute 0, so sums[i, j] = 0
// for j > i. anchors::Error on bad shapes, a bad tile size, bad spans or a
// control outside the batch / heads.
torch::Tensor sentence_block_sums(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                                  const std::vector<TokenSpan>& sentences, const SentencePoolingParams& params = {});

// Block means [B, Hq, S, S] float32: sums / (n_i · |j|), where |j| is the
// number of tokens of sentence j and n_i the number of query rows of sentence i
// present in q (= |i| when Tq == Tk). The mean is over ALL token pairs of the
// block, causally masked pairs included (they count as probability 0): in the
// diagonal block i == j, the mean is Σ P / |i|², not over the |i|(|i|+1)/2
// visible pairs — docs/design.md §3 "M[i,j] = mean of attention from tokens of
// sentence i to tokens of sentence j". Rows of sentences with no query present
// (entirely inside a cached prefix) are NaN.
torch::Tensor sentence_block_means(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                                   const std::vector<TokenSpan>& sentences, const SentencePoolingParams& params = {});

}  // namespace anchors::model
