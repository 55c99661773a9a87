// Kernel 2 of docs/design.md §4: sentence pooling. Recomputes the attention
// probabilities P[t, s] = exp(score[t, s] - lse_t) tile by tile from Q, K and
// the row log-sum-exp (same masking as kernel 1) and reduces them into
// per-head S x S block sums, never forming the Tq x Tk matrix. CPU twin:
// sentence_block_sums in src/torch/model/sentence_pooling.cpp.
//
// Reduction: a warp walks one query row's key tiles in slot order; within a
// tile, lane j holds P for key slot c0 + j and that key's sentence id. Sentences
// are disjoint increasing spans, so keys of one sentence are contiguous: a
// segmented warp scan gives each run's total at its last lane. Runs that end
// inside the tile are added to sums[b, h, sentence(t), j] with one atomicAdd;
// the run touching the tile's last lane stays open in registers (it may
// continue in the next tile) and is flushed when a different sentence starts
// or the row ends. That is about one atomic per (row, key sentence).
#include "attention_tile.cuh"

namespace anchors::model::cuda_kernels {
namespace detail {
namespace {

// Inclusive segmented sum over the lanes: each lane gets the sum of `value`
// over the lanes of its run (maximal group of consecutive lanes with the same
// id) up to and including itself. Needs runs of one id to be contiguous, which
// holds for sorted sentence ids; id -1 (no sentence) carries value 0.
__device__ __forceinline__ float run_prefix_sum(float value, std::int64_t id, int lane) {
  for (int offset = 1; offset < kWarpSize; offset <<= 1) {
    const float other = __shfl_up_sync(kFullMask, value, offset);
    const std::int64_t other_id = __shfl_up_sync(kFullMask, id, offset);
    if (lane >= offset && other_id == id) value += other;
  }
  return value;
}

template <typename T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    sentence_pooling_kernel(AttentionProblem p, const float* __restrict__ lse,
                            const std::int64_t* __restrict__ sentence_of_key, std::int64_t num_sentences,
                            float* __restrict__ sums) {
  extern __shared__ float shared[];
  __shared__ BlockRegions regions;
  const int D = static_cast<int>(p.head_dim);
  const int key_stride = D + 1;
  float* q_tile = shared;                   // [kQueryTile][D]
  float* k_tile = q_tile + kQueryTile * D;  // [kKeyTile][D + 1]

  const std::int64_t lane_b = blockIdx.z, head = blockIdx.y;
  const std::int64_t Tq = p.queries, Tk = p.keys, S = num_sentences;
  const std::int64_t kv_head = head / (p.query_heads / p.kv_heads);
  const std::int64_t first_slot = Tk - Tq;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.x) * kQueryTile;
  const int rows = static_cast<int>(Tq - row0 < kQueryTile ? Tq - row0 : kQueryTile);
  const float scale = static_cast<float>(p.scale);
  const float lowest = Element<T>::kLowest;

  const std::int64_t q_head_offset = (lane_b * p.query_heads + head) * Tq;
  const T* k_head = static_cast<const T*>(p.k) + (lane_b * p.kv_heads + kv_head) * Tk * D;
  float* head_sums = sums + (lane_b * p.query_heads + head) * S * S;

  load_rows(q_tile, D, static_cast<const T*>(p.q) + q_head_offset * D, row0, kQueryTile, rows, D);
  regions.load(p, lane_b, head, first_slot + row0, first_slot + row0 + rows);

  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  // Per row: its sentence (-1: no row or outside every sentence), its
  // probability rule, and the open run (sentence, partial sum).
  std::int64_t row_sentence[kRowsPerWarp], open_sentence[kRowsPerWarp];
  float open_sum[kRowsPerWarp];
  float row_lse[kRowsPerWarp];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = i * kWarpsPerBlock + warp;
    row_sentence[i] = r < rows ? sentence_of_key[first_slot + row0 + r] : -1;
    row_lse[i] = r < rows ? lse[q_head_offset + row0 + r] : 0.0f;
    open_sentence[i] = -1;
    open_sum[i] = 0.0f;
  }

  const std::int64_t key_end = first_slot + row0 + rows;
  for (std::int64_t c0 = 0; c0 < key_end; c0 += kKeyTile) {
    __syncthreads();
    const int tile_keys = static_cast<int>(key_end - c0 < kKeyTile ? key_end - c0 : kKeyTile);
    load_rows(k_tile, key_stride, k_head, c0, kKeyTile, tile_keys, D);
    __syncthreads();

    const std::int64_t key = c0 + lane;
    const std::int64_t key_sentence = key < key_end ? sentence_of_key[key] : -1;
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = i * kWarpsPerBlock + warp;
      const std::int64_t slot = first_slot + row0 + r;
      if (row_sentence[i] < 0 || c0 > slot) continue;  // warp-uniform

      float prob = 0.0f;
      if (key <= slot && key_sentence >= 0) {
        float score = dot(q_tile + r * D, k_tile + lane * key_stride, D) * scale;
        score = regions.apply(score, lane_b, head, slot, key, lowest);
        prob = RowProbability(row_lse[i], slot, lowest)(score);
      }
      float run_total = run_prefix_sum(prob, key_sentence, lane);

      // The open run continues only into a run of the same sentence at lane 0.
      const std::int64_t first_sentence = __shfl_sync(kFullMask, key_sentence, 0);
      float* row_block = head_sums + row_sentence[i] * S;
      if (open_sentence[i] >= 0 && open_sentence[i] != first_sentence) {
        if (lane == 0 && open_sum[i] != 0.0f) atomicAdd(row_block + open_sentence[i], open_sum[i]);
        open_sentence[i] = -1;
        open_sum[i] = 0.0f;
      }
      if (key_sentence >= 0 && key_sentence == open_sentence[i]) run_total += open_sum[i];

      const std::int64_t next_sentence = __shfl_down_sync(kFullMask, key_sentence, 1);
      const bool run_ends_here = lane < kWarpSize - 1 && next_sentence != key_sentence;
      if (run_ends_here && key_sentence >= 0 && run_total != 0.0f) atomicAdd(row_block + key_sentence, run_total);

      const std::int64_t last_sentence = __shfl_sync(kFullMask, key_sentence, kWarpSize - 1);
      const float last_total = __shfl_sync(kFullMask, run_total, kWarpSize - 1);
      open_sentence[i] = last_sentence;
      open_sum[i] = last_sentence >= 0 ? last_total : 0.0f;
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i)
    if (row_sentence[i] >= 0 && open_sentence[i] >= 0 && lane == 0 && open_sum[i] != 0.0f)
      atomicAdd(head_sums + row_sentence[i] * S + open_sentence[i], open_sum[i]);
}

}  // namespace
}  // namespace detail

int sentence_block_sums(const AttentionProblem& problem, const float* lse, const std::int64_t* sentence_of_key,
                        std::int64_t num_sentences, float* sums, cudaStream_t stream) {
  using namespace detail;
  if (const int status = check_problem(problem); status != cudaSuccess) return status;
  if (lse == nullptr || sentence_of_key == nullptr || sums == nullptr || num_sentences < 1)
    return static_cast<int>(cudaErrorInvalidValue);
  const std::size_t sum_bytes = sizeof(float) * static_cast<std::size_t>(problem.batch * problem.query_heads *
                                                                        num_sentences * num_sentences);
  if (const cudaError_t status = cudaMemsetAsync(sums, 0, sum_bytes, stream); status != cudaSuccess)
    return static_cast<int>(status);
  const std::size_t shared_bytes = query_key_shared_bytes(problem.head_dim);
  return with_element_type(problem.dtype, [&](auto element) -> int {
    using T = decltype(element);
    const auto kernel = sentence_pooling_kernel<T>;
    if (const int status = allow_shared_memory(kernel, shared_bytes); status != cudaSuccess) return status;
    kernel<<<grid_of(problem), kThreadsPerBlock, shared_bytes, stream>>>(problem, lse, sentence_of_key,
                                                                         num_sentences, sums);
    return static_cast<int>(cudaGetLastError());
  });
}

}  // namespace anchors::model::cuda_kernels
