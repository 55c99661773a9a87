#pragma once
// Sentence attention (docs/design.md §3 "Receiver heads", issue 4): per layer and
// head, the S×S matrix of block means
//
//   M[l, h, i, j] = 1 / (|i| · |j|) · Σ_{t ∈ sentence i} Σ_{s ∈ sentence j} A_l,h[t, s]
//
// of the causal attention probabilities A of one forward pass over
// `token_ids`, with no T×T matrix ever materialised: each layer's queries and
// keys are grabbed from CausalLM::hidden_states' attention callback, the
// per-row log-sum-exp is recomputed tile by tile (causal_log_sum_exp) and the
// probabilities are pooled tile by tile (sentence_block_means), see
// sentence_pooling.h. The mean counts every token pair of the block, so the
// upper triangle (j > i) is 0 and the diagonal block divides by |i|², not by the
// |i|(|i|+1)/2 causally visible pairs.
//
// With params.control, its regions change the forward pass and the pooled
// probabilities alike (batch 1: regions must name lane 0), so the matrices are
// those of the suppressed / boosted model.
#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "anchors/core/run_control.h"
#include "anchors/core/span.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/sentence_pooling.h"

namespace anchors::model {

// Block means [L, H, S, S] float32 on the CPU for the decoder layers `layers`
// (in the order given; default: every layer 0..num_hidden_layers-1), H = the
// model's query heads, S = sentence_spans.size(). One forward pass of batch 1
// at positions 0..T-1; computed in float32 from the model-dtype q and k.
// Memory beyond the forward pass: O(L·H·S² + H·T + H·tile²).
// anchors::Error for empty token_ids, T beyond max_position_embeddings, ids
// outside the vocabulary, an empty span list, spans that are empty, out of
// order, overlapping or past the end of token_ids, an empty layer list, or a
// layer outside [0, num_hidden_layers), or cancellation. control: progress
// (layers done, num_hidden_layers, "layers") and cancellation after each layer.
torch::Tensor sentence_attention(const CausalLM& model, const std::vector<std::int64_t>& token_ids,
                                 const std::vector<TokenSpan>& sentence_spans,
                                 std::optional<std::vector<std::int64_t>> layers = std::nullopt,
                                 const SentencePoolingParams& params = {}, const RunControl& control = {});

}  // namespace anchors::model
