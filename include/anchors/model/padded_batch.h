#pragma once
// A padded batch as trainers and tokenizers hold it -- ids [B, T] with an
// attention mask [B, T] (left or right padding) -- turned into what
// CausalLM::forward takes so that each row computes what its real tokens
// alone would (docs/causal-lm.md "Padded batches"):
//
//   const auto padded = anchors::model::padded_batch(mask);
//   torch::Tensor logits = model->forward(ids, padded.positions, nullptr, &padded.control);
//   // row b, real token k  ==  forward(row b's real tokens)[k], up to rounding
//
// Row b's real tokens get RoPE positions 0..n_b-1 (padding gets 0), and every
// query of lane b has lane b's left-padding keys suppressed, which gives them
// attention weight exactly 0 (right padding follows every real token, so
// causality already hides it) (attention.h: a suppressed score is the lowest
// finite value, whose exp underflows to 0 next to any real key). Padding rows
// themselves compute something meaningless; callers ignore them.
#include <torch/types.h>

#include "anchors/core/attention_control.h"

namespace anchors::model {

struct PaddedBatch {
  torch::Tensor positions;   // [B, T] int64 on the mask's device
  AttentionControl control;  // one suppression region per left-padded lane (none for right padding)
  torch::Tensor real;        // [B, T] bool: the mask as booleans
};

// mask [B, T] (bool or integer; nonzero = real token). anchors::Error for a
// mask that is not 2-D, a row without a real token, or a row whose real
// tokens are not one contiguous run.
PaddedBatch padded_batch(const torch::Tensor& mask);

}  // namespace anchors::model
