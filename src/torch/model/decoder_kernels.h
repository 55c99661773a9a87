#pragma once
// Element-wise pieces of the decoder block, each one pass over memory on CPU
// instead of the five or six LibTorch ops a literal transcription of
// transformers costs (which dominate a CPU forward pass after the GEMMs). They
// round exactly where transformers rounds in bfloat16/float16, so low-precision
// results track transformers' own. Other devices (CUDA) run the composite
// LibTorch ops, which are the reference definition of each function.
// Internal to src/torch/model.
#include <torch/types.h>

namespace anchors::model::kernels {

// transformers' RMSNorm over the last dimension: statistics in float32, the
// normalised activations rounded to x's dtype, then multiplied by `weight`
// (same dtype): weight * (x * rsqrt(mean(x^2) + eps)).to(dtype).
// x: any shape [..., n] with a unit last stride; returns a contiguous tensor.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// Rotary position embedding, rotate_half convention, of x [B, T, H, D] (unit
// last stride) with float32 angle tables cos, sin [B or 1, T, D/2]; the tables
// are rounded to x's dtype first, as transformers does:
//   out[:D/2] = x1 * cos - x2 * sin,   out[D/2:] = x2 * cos + x1 * sin.
// Returns a contiguous [B, T, H, D] tensor.
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace anchors::model::kernels
