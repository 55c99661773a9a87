#pragma once
// Internal: the LibTorch side of the CUDA kernels (kernels/cuda, docs/design.md §4).
//
// These functions take torch tensors that live on a CUDA device, check them
// like the CPU twins do (same shapes, same anchors::Error messages for bad
// input), make them contiguous, resolve the attention control for the layer
// into the kernels' region records (cuda_kernels.h), and launch on the current
// torch CUDA stream of the tensors' device. Results are float32 (and q's dtype
// for the attention output), on the same device, and equal the CPU twins to
// float32 rounding:
//   masked_attention     <-> attention_with_lse            (attention.h)
//   sentence_block_sums  <-> sentence_block_sums           (sentence_pooling.h)
//   band_statistics      <-> band_statistics               (band_statistics.h)
//
// With the CPU-only LibTorch wheel no tensor is ever on CUDA, so nothing calls
// these in practice; the GPU tests exercise the kernels through the raw-pointer
// API instead (tests/cpp/model/cuda_kernels_test.cpp). In a build without nvcc
// (no ANCHORS_WITH_CUDA) every function except built_with_cuda / available /
// device_count throws anchors::Error("... built without CUDA").
#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "anchors/core/span.h"
#include "anchors/model/attention.h"
#include "anchors/model/band_statistics.h"
#include "anchors/model/sentence_pooling.h"
#include "cuda_kernels.h"

namespace anchors::model::cuda {

// Whether kernels/cuda was compiled into this build (ANCHORS_WITH_CUDA).
bool built_with_cuda();
// CUDA devices visible to this process (0 in a build without CUDA, or without
// a driver or device).
int device_count();
// built_with_cuda() and at least one device.
bool available();
// Free bytes on a CUDA device (cudaMemGetInfo; memory the torch caching
// allocator holds but does not use counts as taken). anchors::Error without
// CUDA or when the runtime fails.
std::int64_t free_memory(const torch::Device& device);

// The suppress and boost regions of `control` (null = none) that apply to
// `layer`, one record per (region, lane, listed head) — head -1 for a region
// over every head; a kEveryLane region gives one record per lane of `batch` —
// in the control's order, which is the order boosts are added in. Ablate
// regions give none (they act on outputs, which the caller zeroes). Spans are
// copied as they are: the kernels clip by testing membership.
std::vector<cuda_kernels::Region> resolve_regions(const AttentionControl* control, std::int64_t layer,
                                                  std::int64_t batch);

// Kernel 1: attention_with_lse on CUDA tensors (params.control and
// params.layer as in attention.h). The log-sum-exp is always computed.
AttentionResult masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const AttentionParams& params = {});

// Kernel 2: sentence_block_sums on CUDA tensors. The tile sizes of `params`
// are checked (>= 1) but the kernel uses its own fixed tiles.
torch::Tensor sentence_block_sums(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                                  const std::vector<TokenSpan>& sentences, const SentencePoolingParams& params = {});

// Kernel 3: band_statistics on CUDA tensors (no control, as the CPU twin).
BandStatistics band_statistics(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                               const BandStatisticsParams& params = {});

}  // namespace anchors::model::cuda
