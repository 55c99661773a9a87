#pragma once
// Head influence (AttentionInfluence, arXiv 2505.07293; docs/attention-control.md
// "Head influence"): how much each attention head matters to the model's
// prediction of given texts -- the mean next-token loss (negative log
// likelihood, nats) with the head's output zeroed (AttentionControl
// ablate: what zeroing its slice of o_proj's input does) minus the plain loss.
//
//   anchors::model::HeadInfluenceText text{ids, /*scored=*/{prompt_len, ids.size()}};
//   auto r = anchors::model::head_influence(*model, {text});
//   r.influence[layer][head];   // > 0: the texts are harder to predict without that head
//
// Batched: each forward pass runs batch_lanes copies of a text, lane b with
// one head ablated (per-lane regions of one AttentionControl), so a text
// costs 1 + ceil(L*H / batch_lanes) passes of batch_lanes lanes. The losses
// are computed from the hidden states in position slices, so only
// about 2^26 logits live at once whatever the vocabulary.
#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "anchors/core/run_control.h"
#include "anchors/core/span.h"

namespace anchors::model {

class CausalLM;

struct HeadInfluenceText {
  std::vector<std::int64_t> ids;  // the text's token ids (positions 0..T-1)
  // The positions whose prediction counts: token t is predicted from tokens
  // [0, t), so t = 0 never counts (a span from 0 starts at 1). Empty span:
  // every token from 1 on.
  TokenSpan scored;
};

struct HeadInfluenceOptions {
  std::vector<std::int64_t> layers;  // the layers whose heads are measured; empty: every layer
  std::int64_t batch_lanes = 8;      // heads ablated per forward pass (one lane each), >= 1
};

struct HeadInfluenceResult {
  // [L, H] float64: the mean over texts of (mean masked loss - mean plain
  // loss) over each text's scored tokens; NaN for layers not measured.
  torch::Tensor influence;
  // Per text [T] float64: the plain loss of each token (NaN where not scored).
  std::vector<torch::Tensor> plain_loss;
  // Per text [L, H, T] float32: masked minus plain loss of each token (NaN
  // where not scored or the layer was not measured).
  std::vector<torch::Tensor> token_delta;
};

// control: progress (passes done, passes, "passes") after each pass, cancellation before each.
// anchors::Error for no texts, a text with fewer than 2 tokens, ids outside
// the vocabulary, more tokens than max_position_embeddings, a scored span
// outside [0, T] or holding only token 0, a layer outside the model or given twice, batch_lanes < 1,
// or cancellation.
HeadInfluenceResult head_influence(const CausalLM& model, const std::vector<HeadInfluenceText>& texts,
                                   const HeadInfluenceOptions& options = {}, const RunControl& control = {});

}  // namespace anchors::model
