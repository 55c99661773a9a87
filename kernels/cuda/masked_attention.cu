// Kernel 1 of docs/design.md §4: causal masked attention forward with GQA,
// suppression / boost regions and the log-sum-exp of every row.
//
// Flash-style: each warp keeps, per query row, the running max m, the running
// softmax denominator l (relative to m) and the output accumulator (D / 32
// dims per lane) in registers, and folds in one 32-key tile of K and V at a
// time from shared memory:
//   m' = max(m, max_j s_j);  l' = l·e^(m - m') + Σ_j e^(s_j - m');  acc' = acc·e^(m - m') + Σ_j e^(s_j - m')·v_j
// finally output = acc / l and lse = m + log l. Causally invisible keys have
// s = -inf (probability 0); suppressed keys have s = lowest, so a row whose
// every visible key is suppressed has m = lowest and comes out uniform over
// its visible keys with lse = lowest + log(n), exactly like the CPU twin
// (src/torch/model/attention.cpp). Key slot 0 is visible to every row and lies in the
// first tile, so m is finite from the first tile on.
#include "attention_tile.cuh"

namespace anchors::model::cuda_kernels {
namespace detail {
namespace {

template <typename T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    masked_attention_kernel(AttentionProblem p, const T* __restrict__ v, T* __restrict__ output,
                            float* __restrict__ lse) {
  extern __shared__ float shared[];
  __shared__ BlockRegions regions;
  const int D = static_cast<int>(p.head_dim);
  const int key_stride = D + 1;
  float* q_tile = shared;                            // [kQueryTile][D]
  float* k_tile = q_tile + kQueryTile * D;           // [kKeyTile][D + 1]
  float* v_tile = k_tile + kKeyTile * key_stride;    // [kKeyTile][D]

  const std::int64_t lane_b = blockIdx.z, head = blockIdx.y;
  const std::int64_t Tq = p.queries, Tk = p.keys;
  const std::int64_t kv_head = head / (p.query_heads / p.kv_heads);
  const std::int64_t first_slot = Tk - Tq;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.x) * kQueryTile;
  const int rows = static_cast<int>(Tq - row0 < kQueryTile ? Tq - row0 : kQueryTile);
  const float scale = static_cast<float>(p.scale);
  const float lowest = Element<T>::kLowest;

  const std::int64_t q_head_offset = (lane_b * p.query_heads + head) * Tq;  // rows of q / output / lse
  const std::int64_t kv_head_offset = (lane_b * p.kv_heads + kv_head) * Tk * D;
  const T* k_head = static_cast<const T*>(p.k) + kv_head_offset;
  const T* v_head = v + kv_head_offset;

  load_rows(q_tile, D, static_cast<const T*>(p.q) + q_head_offset * D, row0, kQueryTile, rows, D);
  regions.load(p, lane_b, head, first_slot + row0, first_slot + row0 + rows);

  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  float row_max[kRowsPerWarp], row_sum[kRowsPerWarp], acc[kRowsPerWarp][kDimsPerLane];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    row_max[i] = -INFINITY;
    row_sum[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < kDimsPerLane; ++c) acc[i][c] = 0.0f;
  }

  const std::int64_t key_end = first_slot + row0 + rows;  // keys [0, key_end) are visible to some row
  for (std::int64_t c0 = 0; c0 < key_end; c0 += kKeyTile) {
    __syncthreads();  // the previous tile is consumed (and, the first time, q_tile / regions are ready)
    const int tile_keys = static_cast<int>(key_end - c0 < kKeyTile ? key_end - c0 : kKeyTile);
    load_rows(k_tile, key_stride, k_head, c0, kKeyTile, tile_keys, D);
    load_rows(v_tile, D, v_head, c0, kKeyTile, tile_keys, D);
    __syncthreads();

    const std::int64_t key = c0 + lane;
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = i * kWarpsPerBlock + warp;
      const std::int64_t slot = first_slot + row0 + r;
      if (r >= rows || c0 > slot) continue;  // warp-uniform: no row, or the whole tile is after it

      float score = -INFINITY;
      if (key <= slot) {
        score = dot(q_tile + r * D, k_tile + lane * key_stride, D) * scale;
        score = regions.apply(score, lane_b, head, slot, key, lowest);
      }
      const float new_max = fmaxf(row_max[i], warp_max(score));  // finite: key 0 is in the first tile
      const float correction = expf(row_max[i] - new_max);       // 0 on the first tile (m = -inf)
      const float prob = expf(score - new_max);                  // 0 for invisible keys
      row_sum[i] = row_sum[i] * correction + warp_sum(prob);
      row_max[i] = new_max;
#pragma unroll
      for (int c = 0; c < kDimsPerLane; ++c) acc[i][c] *= correction;
      for (int j = 0; j < kKeyTile; ++j) {
        const float pj = __shfl_sync(kFullMask, prob, j);
        if (pj == 0.0f) continue;  // warp-uniform
#pragma unroll
        for (int c = 0; c < kDimsPerLane; ++c) {
          const int d = lane + c * kWarpSize;
          if (d < D) acc[i][c] = fmaf(pj, v_tile[j * D + d], acc[i][c]);
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = i * kWarpsPerBlock + warp;
    if (r >= rows) continue;
    const std::int64_t row = q_head_offset + row0 + r;
    const float inverse = 1.0f / row_sum[i];
#pragma unroll
    for (int c = 0; c < kDimsPerLane; ++c) {
      const int d = lane + c * kWarpSize;
      if (d < D) output[row * D + d] = Element<T>::store(acc[i][c] * inverse);
    }
    if (lse != nullptr && lane == 0) lse[row] = row_max[i] + logf(row_sum[i]);
  }
}

}  // namespace
}  // namespace detail

int masked_attention_forward(const AttentionProblem& problem, const void* v, void* output, float* lse,
                             cudaStream_t stream) {
  using namespace detail;
  if (const int status = check_problem(problem); status != cudaSuccess) return status;
  if (v == nullptr || output == nullptr) return static_cast<int>(cudaErrorInvalidValue);
  const std::size_t shared_bytes =
      query_key_shared_bytes(problem.head_dim) + sizeof(float) * static_cast<std::size_t>(kKeyTile * problem.head_dim);
  return with_element_type(problem.dtype, [&](auto element) -> int {
    using T = decltype(element);
    const auto kernel = masked_attention_kernel<T>;
    if (const int status = allow_shared_memory(kernel, shared_bytes); status != cudaSuccess) return status;
    kernel<<<grid_of(problem), kThreadsPerBlock, shared_bytes, stream>>>(problem, static_cast<const T*>(v),
                                                                         static_cast<T*>(output), lse);
    return static_cast<int>(cudaGetLastError());
  });
}

}  // namespace anchors::model::cuda_kernels
