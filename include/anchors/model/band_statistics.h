#pragma once
// Band statistics (docs/design.md §4 kernel 3, CPU twin): the per-head numbers the
// preplan-and-anchor analysis (attention_rhythm.h, docs/design.md §3 "WAAD/FAI")
// reads off one layer's attention, recomputed tile by tile from Q, K and the
// log-sum-exp of every query row, never materialising a T×T matrix.
//
// With P[t, s] = exp(scale · q_t · k_s − lse_t) for key slots s ≤ slot(t) (0
// after it, and 0 for s ≤ slot(t) − sliding_window with a window) and
// d = slot(t) − s the distance back from the query:
//
//   span[b, h]    = mean over present query rows t with slot(t) >= span_first_slot
//                   of Σ_s P[t, s] · d                  (NaN when there is no such row)
//   waad[b, h, t] = Σ_s P[t, s] · min(d, W)             (windowed attention distance)
//   fai[b, h, s]  = mean over present query rows t with near <= d <= far of P[t, s]
//                   (future attention influence; NaN when there is no such row)
//
// Slots, GQA and input checks follow sentence_pooling.h / attention.h: keys are
// slots [0, Tk), the Tq queries are the last Tq slots (query r at slot
// Tk − Tq + r), query head h reads key head h / (Hq / Hkv). With Tq < Tk only
// the query rows present count (for the span and FAI means). The lse must come
// from the same plain causal scores (causal_log_sum_exp, or attention_with_lse
// without a control): no suppression control is applied here.
//
// Cost: the span needs every visible key of its rows (one tiled causal pass);
// WAAD only the band of W keys next to the diagonal, through the identity
//   WAAD_t = Σ_{d<W} P[t, s] · d + W · (1 − Σ_{d<W} P[t, s])
// (rows of P sum to 1); FAI only keys within `fai_far` of the row. Query tiles
// before span_first_slot visit just those bands. Where a row's keys were all
// visited anyway (span rows, and rows with slot < W), the row's computed total
// Σ_s P takes the place of the 1 above and divides the span distance: the
// float32 rounding of the lse scales a whole row by a common factor, which
// then cancels instead of scaling distances of up to T (and a W larger than T
// never multiplies rounding error).
// Memory: O(B·H·T + B·H·tile_q·tile_k) float32 plus a float32 copy of Q and K.
#include <torch/types.h>

#include <cstdint>
#include <optional>

namespace anchors::model {

struct BandStatisticsParams {
  std::optional<double> scale;          // softmax scale; default 1/sqrt(head_dim)
  std::int64_t waad_window = 10;        // W (>= 1)
  std::int64_t fai_near = 10;           // FAI rows t with t − s in [fai_near, fai_far] (0 <= near <= far)
  std::int64_t fai_far = 100;
  std::int64_t span_first_slot = 0;     // the span averages query rows at slots >= this (the response; >= 0)
  std::int64_t query_tile = 128;        // query rows per tile (>= 1)
  std::int64_t key_tile = 128;          // key columns per tile (>= 1)
  std::int64_t sliding_window = 0;      // the layer's attention window (attention.h; >= 0, 0: none), as the lse's
};

struct BandStatistics {
  torch::Tensor span;  // [B, Hq] float32
  torch::Tensor waad;  // [B, Hq, Tq] float32, one per query row present
  torch::Tensor fai;   // [B, Hq, Tk] float32, one per key slot
};

// q [B, Hq, Tq, D], k [B, Hkv, Tk, D] (float32, bfloat16 or float16, any
// strides; computed in float32), lse [B, Hq, Tq] on q's device. anchors::Error
// for bad shapes, dtypes or devices, a bad lse, tile sizes below 1, a
// non-finite scale, W < 1, fai_near < 0, fai_near > fai_far, a negative
// span_first_slot or a negative sliding_window.
BandStatistics band_statistics(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                               const BandStatisticsParams& params = {});

}  // namespace anchors::model
