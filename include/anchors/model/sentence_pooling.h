#pragma once
// Sentence pooling (DESIGN.md §4 kernel 2, CPU twin): per-head S×S sums and
// means of attention probabilities over sentence blocks, recomputed tile by
// tile from Q, K and the log-sum-exp of every query row, never materialising a
// T×T matrix.
//
//   P[t, s] = exp(scale * q_t · k_s - lse_t)     for key slot s <= slot of t, else 0
//   sums[b, h, i, j]  = Σ_{t ∈ sentence i} Σ_{s ∈ sentence j} P[t, s]
//   means[b, h, i, j] = sums[b, h, i, j] / (|i| · |j|)
//
// Slots follow attention.h: keys are slots [0, Tk); the Tq queries are the last
// Tq slots (query r sits at slot Tk - Tq + r). Query head h reads key head
// h / (Hq / Hkv) (GQA). Sentences are token spans [begin, end) over key slots.
//
// Memory: O(B·H·S² + B·H·T + B·H·tile_q·tile_k) float32, whatever T is.
//
// Scope: plain causal attention only. Suppression / boost regions
// (AttentionControl) are not applied here; the lse handed in must come from
// the same (uncontrolled) scores, e.g. causal_log_sum_exp below or
// attention_with_lse without a control.
#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "anchors/core/span.h"

namespace anchors::model {

struct SentencePoolingParams {
  std::optional<double> scale;     // softmax scale; default 1/sqrt(head_dim)
  std::int64_t query_tile = 128;   // query rows per tile (>= 1)
  std::int64_t key_tile = 128;     // key columns per tile (>= 1)
};

// anchors::Error unless the spans are non-empty, in increasing order,
// non-overlapping and inside [0, num_keys), and the list is non-empty.
// `what` prefixes the message (the calling function's name).
void validate_sentence_spans(const std::vector<TokenSpan>& sentences, std::int64_t num_keys, const char* what);

// Log-sum-exp [B, Hq, Tq] float32 of the scaled causal scores of q
// [B, Hq, Tq, D] against k [B, Hkv, Tk, D] (slots as above), computed tile by
// tile with a running max (online log-sum-exp), O(B·H·T + tile²) memory. Equals
// attention_with_lse(q, k, v).log_sum_exp without a control, to float32
// rounding. anchors::Error on bad shapes.
torch::Tensor causal_log_sum_exp(const torch::Tensor& q, const torch::Tensor& k,
                                 const SentencePoolingParams& params = {});

// Block sums [B, Hq, S, S] float32 of attention probabilities (formula above).
// q [B, Hq, Tq, D], k [B, Hkv, Tk, D] (float32, bfloat16 or float16; computed in
// float32), lse [B, Hq, Tq]. Only queries present in q count: with Tq < Tk
// (a cached prefix), the part of a sentence before slot Tk - Tq contributes no
// query rows. Pairs above the causal diagonal contribute 0, so sums[i, j] = 0
// for j > i. anchors::Error on bad shapes, a bad tile size or bad spans.
torch::Tensor sentence_block_sums(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                                  const std::vector<TokenSpan>& sentences, const SentencePoolingParams& params = {});

// Block means [B, Hq, S, S] float32: sums / (n_i · |j|), where |j| is the
// number of tokens of sentence j and n_i the number of query rows of sentence i
// present in q (= |i| when Tq == Tk). The mean is over ALL token pairs of the
// block, causally masked pairs included (they count as probability 0): in the
// diagonal block i == j, the mean is Σ P / |i|², not over the |i|(|i|+1)/2
// visible pairs — DESIGN.md §3 "M[i,j] = mean of attention from tokens of
// sentence i to tokens of sentence j". Rows of sentences with no query present
// (entirely inside a cached prefix) are NaN.
torch::Tensor sentence_block_means(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                                   const std::vector<TokenSpan>& sentences, const SentencePoolingParams& params = {});

}  // namespace anchors::model
