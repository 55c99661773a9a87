// CPU twin of the band statistics kernel (docs/design.md §4 item 3): head span,
// WAAD and FAI of one layer, from attention probabilities recomputed tile by
// tile out of Q, K and the per-row log-sum-exp. Plain LibTorch ops, so it also
// runs (unfused) on CUDA tensors.
#include "anchors/model/band_statistics.h"
#include "attention_shape.h"
#include "tensor_description.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "anchors/core/error.h"

namespace anchors::model {

namespace {

using detail::AttentionShape;
using detail::describe;

AttentionShape check_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                            const BandStatisticsParams& params, const char* what) {
  const AttentionShape shape = detail::check_attention_inputs(what, q, k);
  if (params.query_tile < 1 || params.key_tile < 1)
    throw Error(fmt::format("{}: tile sizes must be >= 1, got {} x {}", what, params.query_tile, params.key_tile));
  if (params.scale && !std::isfinite(*params.scale))
    throw Error(fmt::format("{}: scale must be finite, got {}", what, *params.scale));
  if (params.waad_window < 1)
    throw Error(fmt::format("{}: waad_window must be >= 1, got {}", what, params.waad_window));
  if (params.fai_near < 0 || params.fai_far < params.fai_near)
    throw Error(fmt::format("{}: the FAI window [fai_near, fai_far] = [{}, {}] must satisfy 0 <= near <= far", what,
                            params.fai_near, params.fai_far));
  if (params.span_first_slot < 0)
    throw Error(fmt::format("{}: span_first_slot must be >= 0, got {}", what, params.span_first_slot));
  if (params.sliding_window < 0)
    throw Error(fmt::format("{}: sliding_window must be >= 0 (0: none), got {}", what, params.sliding_window));
  check_lse(what, lse, shape, q);
  return shape;
}

// Scaled scores [B, Hq, rows, cols] of query rows [r0, r0 + rows) (query
// indices) against key slots [c0, c0 + cols), causally invisible pairs and
// pairs outside the window -inf. `queries` is [B, Hkv, G, Tq, D] float32,
// `keys` [B, Hkv, Tk, D] float32. (The same tile as the sentence pooling's,
// without regions.)
torch::Tensor score_tile(const torch::Tensor& queries, const torch::Tensor& keys, const AttentionShape& shape,
                         double scale, std::int64_t window, std::int64_t r0, std::int64_t rows, std::int64_t c0,
                         std::int64_t cols) {
  const std::int64_t B = shape.batch, Hkv = shape.kv_heads, G = shape.group(), D = shape.head_dim;
  const torch::Tensor q_tile = queries.narrow(3, r0, rows).reshape({B, Hkv, G * rows, D});
  const torch::Tensor k_tile = keys.narrow(2, c0, cols).transpose(2, 3);  // [B, Hkv, D, cols]
  torch::Tensor scores = at::matmul(q_tile, k_tile).mul_(scale).view({B, shape.query_heads, rows, cols});
  detail::mask_invisible_keys(scores, shape.first_query_slot() + r0, c0, window);
  return scores;
}

}  // namespace

BandStatistics band_statistics(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& lse,
                               const BandStatisticsParams& params) {
  const char* what = "band_statistics";
  const AttentionShape shape = check_inputs(q, k, lse, params, what);
  const double scale = params.scale.value_or(1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
  const std::int64_t B = shape.batch, H = shape.query_heads, Tq = shape.queries, Tk = shape.keys;
  const std::int64_t first_slot = shape.first_query_slot();
  // Distances are at most Tk - 1, so windows beyond Tk change nothing; clamping
  // keeps the slot arithmetic below far from int64 overflow.
  const std::int64_t W = std::min(params.waad_window, Tk);
  const std::int64_t near = std::min(params.fai_near, Tk), far = std::min(params.fai_far, Tk);
  const std::int64_t reach = std::max(W - 1, far);  // farthest key a band needs behind its row

  const auto options = torch::dtype(torch::kFloat32).device(q.device());
  const torch::Tensor queries =
      q.to(torch::kFloat32).contiguous().view({B, shape.kv_heads, shape.group(), Tq, shape.head_dim});
  const torch::Tensor keys = k.to(torch::kFloat32);
  const torch::Tensor row_lse = lse.to(torch::kFloat32).unsqueeze(-1);  // [B, Hq, Tq, 1]

  torch::Tensor span_sum = torch::zeros({B, H, Tq}, options);   // Σ_s P·d   (rows visited in full)
  torch::Tensor row_mass = torch::zeros({B, H, Tq}, options);   // Σ_s P     (rows visited in full)
  torch::Tensor full_row = torch::zeros({Tq}, torch::dtype(torch::kBool).device(q.device()));
  torch::Tensor band_dist = torch::zeros({B, H, Tq}, options);  // Σ_{d<W} P·d
  torch::Tensor band_mass = torch::zeros({B, H, Tq}, options);  // Σ_{d<W} P
  torch::Tensor fai_sum = torch::zeros({B, H, Tk}, options);    // Σ_{near<=d<=far} P per key

  // Tiles never exceed the sequence, whatever the params say (no huge offsets
  // table, no overflow of the slot arithmetic below).
  const std::int64_t query_tile = std::min(params.query_tile, Tq), key_tile = std::min(params.key_tile, Tk);
  // d of row a, column b of a tile is offsets[a][b] + (row slot - key slot) of its corner.
  const torch::Tensor offsets =
      torch::arange(query_tile, options).unsqueeze(1) - torch::arange(key_tile, options).unsqueeze(0);

  for (std::int64_t r0 = 0; r0 < Tq; r0 += query_tile) {
    const std::int64_t rows = std::min(query_tile, Tq - r0);
    const std::int64_t slot0 = first_slot + r0, slot1 = slot0 + rows - 1;  // first and last row's slot
    const bool has_span_rows = slot1 >= params.span_first_slot;
    const torch::Tensor tile_lse = row_lse.narrow(2, r0, rows);
    // Span rows need every visible key; the others only the WAAD and FAI bands.
    std::int64_t key_lo = has_span_rows ? 0 : std::max<std::int64_t>(0, slot0 - reach);
    key_lo = std::max(key_lo, detail::first_visible_key(slot0, params.sliding_window));  // no row sees before
    if (has_span_rows) full_row.narrow(0, r0, rows).fill_(true);
    for (std::int64_t c0 = key_lo; c0 <= slot1; c0 += key_tile) {
      const std::int64_t cols = std::min(key_tile, slot1 + 1 - c0);
      const std::int64_t d_min = slot0 - (c0 + cols - 1), d_max = slot1 - c0;  // over the tile's pairs
      const bool in_band = d_min < W;
      const bool in_fai = d_max >= near && d_min <= far;
      if (!has_span_rows && !in_band && !in_fai) continue;
      const torch::Tensor p = score_tile(queries, keys, shape, scale, params.sliding_window, r0, rows, c0, cols).sub_(tile_lse).exp_();
      // Invisible pairs have P = 0 exactly, so their negative d never counts.
      const torch::Tensor d = offsets.narrow(0, 0, rows).narrow(1, 0, cols) + static_cast<double>(slot0 - c0);
      if (has_span_rows) {
        span_sum.narrow(2, r0, rows).add_((p * d).sum(-1));
        row_mass.narrow(2, r0, rows).add_(p.sum(-1));
      }
      if (in_band) {
        const torch::Tensor p_band = p * d.lt(static_cast<double>(W));
        band_mass.narrow(2, r0, rows).add_(p_band.sum(-1));
        band_dist.narrow(2, r0, rows).add_((p_band * d).sum(-1));
      }
      if (in_fai) {
        const torch::Tensor window = d.ge(static_cast<double>(near)).logical_and_(d.le(static_cast<double>(far)));
        fai_sum.narrow(2, c0, cols).add_((p * window).sum(-2));
      }
    }
  }

  BandStatistics out;
  // Each row's total probability: Σ P where every key was visited, else 1 for
  // rows with keys beyond the band (rows of P sum to 1) or the band's own mass
  // for rows whose keys all lie inside it (slot < W). Dividing by the computed
  // total rather than by 1 makes the float32 rounding of the lse — a common
  // factor exp(-δ) on the whole row — cancel, instead of scaling distances of
  // up to T by it.
  const torch::Tensor row_slots = torch::arange(first_slot, Tk, options);
  const torch::Tensor beyond = row_slots.ge(static_cast<double>(W));  // [Tq]: some key lies beyond the band
  const torch::Tensor total = at::where(full_row, row_mass, at::where(beyond, torch::ones({}, options), band_mass));
  // WAAD_t = (Σ_{d<W} P·d + W · Σ_{d>=W} P) / total.
  out.waad = band_dist.add_((total - band_mass).mul_(static_cast<double>(W)).mul_(beyond)).div_(total);

  const std::int64_t span_row = std::max<std::int64_t>(0, params.span_first_slot - first_slot);  // query index
  if (span_row < Tq)
    out.span = span_sum.narrow(2, span_row, Tq - span_row).div(row_mass.narrow(2, span_row, Tq - span_row)).mean(-1);
  else
    out.span = torch::full({B, H}, std::numeric_limits<float>::quiet_NaN(), options);

  // FAI: key s averages the present rows at slots [s + near, s + far].
  const torch::Tensor key_slots = torch::arange(Tk, torch::dtype(torch::kInt64).device(q.device()));
  const torch::Tensor lo = (key_slots + near).clamp_min(first_slot), hi = (key_slots + far).clamp_max(Tk - 1);
  const torch::Tensor count = (hi - lo + 1).clamp_min(0).to(torch::kFloat32);  // [Tk]
  out.fai = at::where(count.gt(0), fai_sum / count.clamp_min(1.0),
                      torch::full({}, std::numeric_limits<float>::quiet_NaN(), options));
  return out;
}

}  // namespace anchors::model
