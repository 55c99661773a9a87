#pragma once
// Internal: the host API of the CUDA kernels of kernels/cuda (docs/design.md §4).
//
// Plain CUDA on raw device pointers, free of LibTorch: every pointer below is
// device memory, every launch is asynchronous on `stream`, and every function
// returns a cudaError_t value as an int (0 = cudaSuccess; error_string turns
// it into text). Nothing throws. Arguments that no kernel supports (a bad
// shape, head_dim > kMaxHeadDim, a null pointer) give cudaErrorInvalidValue
// before anything is launched; callers that want a precise message check
// their inputs first (src/torch/model/cuda_dispatch.cpp does).
//
// This header includes only <cstdint>, so translation units compiled without
// CUDA (cuda_dispatch.cpp, tests) can include it; the launchers exist only in
// builds with ANCHORS_WITH_CUDA.
//
// Layouts (all contiguous, row-major):
//   q    [B, Hq, Tq, D]   float32, bfloat16 or float16 (`dtype`)
//   k, v [B, Hkv, Tk, D]  same dtype as q
//   lse  [B, Hq, Tq]      float32
// Slots follow include/anchors/model/attention.h: the Tq queries are the last
// Tq of the Tk key slots (query r sits at slot Tk - Tq + r and sees key slots
// [0, Tk - Tq + r]); query head h reads key/value head h / (Hq / Hkv).
#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace anchors::model::cuda_kernels {

enum class DType : std::int32_t { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };

// Largest head_dim the kernels handle (each lane of a warp keeps
// kMaxHeadDim / 32 output accumulators in registers).
inline constexpr std::int64_t kMaxHeadDim = 256;

// One suppression / boost rectangle, already resolved for one layer and one
// head. The same encoding as the torch op's `regions` int64 [R, 7] rows
// (lane, query_begin, query_end, key_begin, key_end, head, effect) plus
// `betas` float64 [R]. Spans are slots, half-open, and need no clipping.
struct Region {
  std::int64_t lane;         // batch index
  std::int64_t query_begin;  // query slots [query_begin, query_end)
  std::int64_t query_end;
  std::int64_t key_begin;    // key slots [key_begin, key_end)
  std::int64_t key_end;
  std::int64_t head;         // query head; -1 = every head
  std::int64_t effect;       // kSuppressEffect or kBoostEffect
  double beta;               // boost only: added to the scaled score
};
inline constexpr std::int64_t kSuppressEffect = 0;
inline constexpr std::int64_t kBoostEffect = 1;
static_assert(sizeof(Region) == 8 * sizeof(std::int64_t), "Region must stay a plain 64-byte record");

// Shapes and masking shared by every kernel. Scores are
//   score[t, s] = scale * q_t · k_s  (+ beta of every boost region covering (t, s, head))
// then replaced by the lowest finite value of `dtype` where a suppression
// region covers (t, s, head), and excluded (probability 0) where s > slot(t).
struct AttentionProblem {
  DType dtype = DType::kFloat32;
  std::int64_t batch = 0, query_heads = 0, kv_heads = 0;
  std::int64_t queries = 0, keys = 0, head_dim = 0;  // Tq <= Tk, head_dim <= kMaxHeadDim
  double scale = 1.0;
  const void* q = nullptr;  // [B, Hq, Tq, D]
  const void* k = nullptr;  // [B, Hkv, Tk, D]
  const Region* regions = nullptr;  // device array; may be null when num_regions == 0
  std::int64_t num_regions = 0;
};

// 1. Masked attention forward: flash-style online softmax over key tiles
// (never a Tq x Tk matrix). Writes output [B, Hq, Tq, D] (dtype of q) and, when
// `lse` is not null, the natural log-sum-exp [B, Hq, Tq] float32 of the masked
// scores. An all-suppressed row attends uniformly over its visible keys.
int masked_attention_forward(const AttentionProblem& problem, const void* v, void* output, float* lse,
                             cudaStream_t stream);

// 2. Sentence pooling: block sums [B, Hq, S, S] float32 (overwritten) of
//   P[t, s] = exp(score[t, s] - lse_t)
// over query rows t of sentence i and key slots s of sentence j, with `lse`
// from the same problem (masked_attention_forward's lse). `sentence_of_key`
// int64 [Tk] holds the sentence index (0..S-1) of every key slot, -1 outside
// every sentence; only query rows present in q count. All-suppressed rows
// (lse <= lowest + log(n) + 1, n visible keys) use P = exp(score - lowest - log n)
// = 1/n, as the CPU twin does (include/anchors/model/sentence_pooling.h).
int sentence_block_sums(const AttentionProblem& problem, const float* lse, const std::int64_t* sentence_of_key,
                        std::int64_t num_sentences, float* sums, cudaStream_t stream);

// 3. Band statistics of P (as in 2), docs/design.md §3 "Preplan-and-anchor":
//   span [B, Hq]  = mean over present query rows t with slot(t) >= span_first_slot of
//                   Σ_s P[t, s] · (slot(t) - s)                      (NaN without rows)
//   waad [B, Hq, Tq] = Σ_s P[t, s] · min(slot(t) - s, waad_window)
//   fai  [B, Hq, Tk] = mean over present query slots t in [s + fai_near, s + fai_far]
//                   of P[t, s]                                        (NaN without rows)
// All three outputs are float32 and overwritten.
struct BandWindows {
  std::int64_t waad_window = 10;
  std::int64_t fai_near = 10;
  std::int64_t fai_far = 100;
  std::int64_t span_first_slot = 0;
};
int band_statistics(const AttentionProblem& problem, const float* lse, const BandWindows& windows, float* span,
                    float* waad, float* fai, cudaStream_t stream);

// Number of CUDA devices visible to this process; 0 when the driver or the
// device is missing (any error of cudaGetDeviceCount counts as 0).
int device_count();

// Free and total bytes of the current device (cudaMemGetInfo); a cudaError_t
// as an int, 0 on success.
int memory_info(std::int64_t* free_bytes, std::int64_t* total_bytes);

// Text of a code returned above (cudaGetErrorString).
const char* error_string(int code);

}  // namespace anchors::model::cuda_kernels
