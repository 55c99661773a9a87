// Kernel 3 of docs/design.md §4: band statistics of the attention probabilities
// P[t, s] = exp(score[t, s] - lse_t) (same masking and all-suppressed rule as
// kernel 2), recomputed tile by tile, for the preplan-and-anchor analysis
// (docs/design.md §3). CPU twin: band_statistics in src/torch/model/band_statistics.cpp.
//
//   span [B, Hq]     mean over present rows t with slot(t) >= span_first_slot of Σ_s P[t, s]·(slot(t) - s)
//   waad [B, Hq, Tq] Σ_s P[t, s] · min(slot(t) - s, waad_window)
//   fai  [B, Hq, Tk] mean over present query slots t in [s + fai_near, s + fai_far] of P[t, s]
//
// The row kernel writes WAAD directly (one warp per row), adds each counted
// row's span term into span[b, h] and each in-window P[t, s] into fai[b, h, s]
// with atomics; a finishing kernel divides both by their row counts (known in
// closed form from the slots), NaN where there is no row.
#include <algorithm>

#include "attention_tile.cuh"

namespace anchors::model::cuda_kernels {
namespace detail {
namespace {

template <typename T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    band_rows_kernel(AttentionProblem p, const float* __restrict__ lse, BandWindows windows,
                     float* __restrict__ span_sums, float* __restrict__ waad, float* __restrict__ fai_sums) {
  extern __shared__ float shared[];
  __shared__ BlockRegions regions;
  const int D = static_cast<int>(p.head_dim);
  const int key_stride = D + 1;
  float* q_tile = shared;                   // [kQueryTile][D]
  float* k_tile = q_tile + kQueryTile * D;  // [kKeyTile][D + 1]

  const std::int64_t lane_b = blockIdx.z, head = blockIdx.y;
  const std::int64_t Tq = p.queries, Tk = p.keys;
  const std::int64_t kv_head = head / (p.query_heads / p.kv_heads);
  const std::int64_t first_slot = Tk - Tq;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.x) * kQueryTile;
  const int rows = static_cast<int>(Tq - row0 < kQueryTile ? Tq - row0 : kQueryTile);
  const float scale = static_cast<float>(p.scale);
  const float lowest = Element<T>::kLowest;
  const std::int64_t bh = lane_b * p.query_heads + head;

  const std::int64_t q_head_offset = bh * Tq;
  const T* k_head = static_cast<const T*>(p.k) + (lane_b * p.kv_heads + kv_head) * Tk * D;
  float* head_fai = fai_sums + bh * Tk;

  load_rows(q_tile, D, static_cast<const T*>(p.q) + q_head_offset * D, row0, kQueryTile, rows, D);
  regions.load(p, lane_b, head, first_slot + row0, first_slot + row0 + rows);

  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  float row_lse[kRowsPerWarp], span_part[kRowsPerWarp], waad_part[kRowsPerWarp];  // per lane
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = i * kWarpsPerBlock + warp;
    row_lse[i] = r < rows ? lse[q_head_offset + row0 + r] : 0.0f;
    span_part[i] = 0.0f;
    waad_part[i] = 0.0f;
  }
  const float window = static_cast<float>(windows.waad_window);

  const std::int64_t key_end = first_slot + row0 + rows;
  for (std::int64_t c0 = 0; c0 < key_end; c0 += kKeyTile) {
    __syncthreads();
    const int tile_keys = static_cast<int>(key_end - c0 < kKeyTile ? key_end - c0 : kKeyTile);
    load_rows(k_tile, key_stride, k_head, c0, kKeyTile, tile_keys, D);
    __syncthreads();

    const std::int64_t key = c0 + lane;
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = i * kWarpsPerBlock + warp;
      const std::int64_t slot = first_slot + row0 + r;
      if (r >= rows || c0 > slot) continue;  // warp-uniform
      if (key > slot) continue;              // per lane: invisible, P = 0

      float score = dot(q_tile + r * D, k_tile + lane * key_stride, D) * scale;
      score = regions.apply(score, lane_b, head, slot, key, lowest);
      const float prob = RowProbability(row_lse[i], slot, lowest)(score);
      const std::int64_t distance = slot - key;
      span_part[i] = fmaf(prob, static_cast<float>(distance), span_part[i]);
      waad_part[i] = fmaf(prob, fminf(static_cast<float>(distance), window), waad_part[i]);
      if (distance >= windows.fai_near && distance <= windows.fai_far && prob != 0.0f)
        atomicAdd(head_fai + key, prob);
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = i * kWarpsPerBlock + warp;
    if (r >= rows) continue;  // warp-uniform
    const std::int64_t slot = first_slot + row0 + r;
    const float row_span = warp_sum(span_part[i]);
    const float row_waad = warp_sum(waad_part[i]);
    if (lane == 0) {
      waad[q_head_offset + row0 + r] = row_waad;
      if (slot >= windows.span_first_slot) atomicAdd(span_sums + bh, row_span);
    }
  }
}

// span[bh] /= counted rows; fai[bh, s] /= present query slots in its window.
__global__ void band_finish_kernel(std::int64_t heads, std::int64_t queries, std::int64_t keys, BandWindows windows,
                                   float* __restrict__ span, float* __restrict__ fai) {
  const std::int64_t first_slot = keys - queries;
  const std::int64_t total = heads * keys;
  for (std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t s = idx % keys;
    const std::int64_t lo = max(s + windows.fai_near, first_slot);
    const std::int64_t hi = min(s + windows.fai_far, keys - 1);
    fai[idx] = hi >= lo ? fai[idx] / static_cast<float>(hi - lo + 1) : NAN;
    if (s == 0) {
      const std::int64_t h = idx / keys;
      const std::int64_t counted = keys - max(first_slot, windows.span_first_slot);
      span[h] = counted > 0 ? span[h] / static_cast<float>(counted) : NAN;
    }
  }
}

}  // namespace
}  // namespace detail

int band_statistics(const AttentionProblem& problem, const float* lse, const BandWindows& windows, float* span,
                    float* waad, float* fai, cudaStream_t stream) {
  using namespace detail;
  if (const int status = check_problem(problem); status != cudaSuccess) return status;
  if (lse == nullptr || span == nullptr || waad == nullptr || fai == nullptr || windows.waad_window < 0 ||
      windows.fai_near < 0 || windows.fai_far < windows.fai_near)
    return static_cast<int>(cudaErrorInvalidValue);
  // Distances are at most Tk - 1: clamping the windows to Tk changes nothing and
  // keeps the slot arithmetic of the finishing kernel far from int64 overflow.
  BandWindows clamped = windows;
  clamped.waad_window = std::min(windows.waad_window, problem.keys);
  clamped.fai_near = std::min(windows.fai_near, problem.keys);
  clamped.fai_far = std::min(windows.fai_far, problem.keys);
  const std::int64_t heads = problem.batch * problem.query_heads;
  if (const cudaError_t status = cudaMemsetAsync(span, 0, sizeof(float) * heads, stream); status != cudaSuccess)
    return static_cast<int>(status);
  if (const cudaError_t status = cudaMemsetAsync(fai, 0, sizeof(float) * heads * problem.keys, stream);
      status != cudaSuccess)
    return static_cast<int>(status);

  const std::size_t shared_bytes = query_key_shared_bytes(problem.head_dim);
  const int status = with_element_type(problem.dtype, [&](auto element) -> int {
    using T = decltype(element);
    const auto kernel = band_rows_kernel<T>;
    if (const int s = allow_shared_memory(kernel, shared_bytes); s != cudaSuccess) return s;
    kernel<<<grid_of(problem), kThreadsPerBlock, shared_bytes, stream>>>(problem, lse, clamped, span, waad, fai);
    return static_cast<int>(cudaGetLastError());
  });
  if (status != cudaSuccess) return status;

  constexpr int kFinishThreads = 256;
  const std::int64_t work = heads * problem.keys;
  const unsigned blocks = static_cast<unsigned>(std::min<std::int64_t>((work + kFinishThreads - 1) / kFinishThreads, 65535));
  band_finish_kernel<<<blocks, kFinishThreads, 0, stream>>>(heads, problem.queries, problem.keys, clamped, span, fai);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace anchors::model::cuda_kernels
