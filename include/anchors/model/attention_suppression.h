#pragma once
// Attention suppression (docs/design.md §3 "Attention suppression";
// docs/attention-suppression.md): how much the model's next-token predictions
// at sentence j move when nothing may attend to sentence i.
//
//   anchors::model::SuppressionOptions opts;                  // T 0.6, p 0.9999, 100 kept
//   torch::Tensor raw = anchors::model::suppression_matrix(*model, token_trace, opts);   // [S, S]
//   torch::Tensor shown = anchors::model::centre_suppression_matrix(raw);
//
// For sentence i (token span [s_i, e_i)), every query of every layer and head
// gets the key slots [s_i, e_i) suppressed before the softmax
// (AttentionRegion::suppress, attention.h). At each position t the base and the
// suppressed next-token distributions are compared with a truncated KL
// (suppression_log_kl below), and
//
//   S[j, i] = mean over t in [s_j, e_j) of log(KL_t + 1e-9).
//
// Positions before s_i cannot see sentence i, so S[j, i] for j < i is exactly
// log(1e-9) and is not computed.
//
// Cost: one base pass over the T tokens, then ceil(S / batch_lanes) batched
// passes, each over the suffix from its earliest suppressed sentence on top of
// the base pass's KV cache (reuse_prefix). Memory, whatever T and the vocabulary
// size V are: the base KV cache, one batch_lanes-lane KV cache, the hidden
// states of one batched pass [batch_lanes, T, hidden], the base pass's kept
// logits (16 · min(max_kept, V) bytes per sentence token), and one vocabulary
// chunk [vocab_chunk, V] (float32 logits plus a float64 copy); never a
// [T, V] or [batch, T, V] tensor.
#include <torch/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "anchors/core/run_control.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/token_trace.h"

namespace anchors::model {

struct SuppressionOptions {
  double temperature = 0.6;      // softmax temperature of both distributions (> 0)
  double top_p = 0.9999;         // each side keeps its smallest prefix reaching p, in (0, 1]
  std::int64_t max_kept = 100;   // ... of at most max_kept tokens (>= 1)
  std::int64_t batch_lanes = 4;  // suppressed sentences run together as batch lanes (>= 1)
  bool reuse_prefix = true;      // run only the suffix from the group's earliest sentence on the base KV cache
  std::int64_t vocab_chunk = 64; // positions projected to the vocabulary at once (>= 1)
  // progress (sentences done, S, "sentences") after each batched pass;
  // cancellation (anchors::Error("suppression_matrix: cancelled")) before each
  // pass and each vocabulary chunk.
  RunControl control;
};

// The raw matrix [S, S] float64 on the CPU: S[j, i] (row j = target sentence,
// column i = suppressed sentence) as above; exactly log(1e-9) for j < i.
// anchors::Error for an invalid trace (validate_token_trace: empty ids, more
// ids than max_position_embeddings, ids outside the vocabulary, no sentences,
// sentence spans empty / out of order / overlapping / past the end), a
// temperature that is not finite and > 0, top_p outside (0, 1], max_kept < 1,
// batch_lanes < 1, vocab_chunk < 1, or cancellation.
torch::Tensor suppression_matrix(const CausalLM& model, const TokenTrace& trace, const SuppressionOptions& options = {});

// Per-position value(t) = log(KL_t + 1e-9) [T] float64 on the CPU between two
// sets of logit rows [T, V] (same shape, floating point, any device):
// each side keeps its k most probable tokens under softmax(logits / temperature)
// over the full vocabulary, k = 1 + (first index where the cumulative
// probability >= top_p), capped at max_kept, at least 1; over the union of both
// kept sets, a side's logit for a token it did not keep is −1e9; KL(base ‖
// suppressed) of log_softmax(union logits / temperature), clipped at >= 0.
// Computed in float64. anchors::Error for bad shapes or options.
torch::Tensor suppression_log_kl(const torch::Tensor& base_logits, const torch::Tensor& suppressed_logits,
                                 double temperature, double top_p, std::int64_t max_kept);

// The reported matrix [S, S] float64: NaN where j <= i, every row j centred by
// subtracting its mean over its remaining non-NaN entries (row 0 is all NaN).
// NaN entries of `raw` stay NaN and do not count. anchors::Error unless raw is
// a square floating-point matrix.
torch::Tensor centre_suppression_matrix(const torch::Tensor& raw);

}  // namespace anchors::model
