#pragma once
// Attention rhythm: the preplan-and-anchor analysis of one response
// (arXiv 2510.13554; docs/design.md §3 "Preplan-and-anchor (WAAD/FAI)").
//
// One forward pass over `token_ids`; on each analysed layer (default: the
// middle third) every query head's attention A is summarised by band
// statistics (band_statistics.h), never as a T×T matrix:
//
//   span(l, h) = mean over response rows t of Σ_s A[t, s] · (t − s)
//   WAAD_t     = Σ_s A[t, s] · min(t − s, W)                 windowed attention distance
//   FAI_s      = mean over t ∈ [s + near, s + far] of A[t, s]  future attention influence
//
// Heads of the analysed layers are ranked by span: the bottom
// `local_fraction` are the *local* heads, the top `global_fraction` the
// *global* heads. Then, per token t (all T tokens; the selections below only
// look at the response [response_begin, T)):
//
//   waad[t]       = mean over local heads of WAAD_t
//   fai[t]        = mean over global heads of FAI_t (NaN where no row t + near.. exists)
//   waad_delta[t] = |waad[t] − waad[t−1]|   for t > response_begin, else 0
//   preplan       = the top `top_fraction` response tokens by waad_delta
//   anchor        = the top `top_fraction` response tokens by fai (NaN never chosen)
//   gamma[t]      = options.gamma on preplan ∪ anchor, 1 elsewhere
//
// Counts: a group of n candidates keeps max(1, round(fraction · n)) of them
// (round half away from zero), capped for anchors at the candidates with a
// finite FAI. Ties are broken stably: heads by (layer, head) ascending —
// earlier layer, then lower head first, in both the local and the global
// ranking — and tokens by position ascending. If local_fraction +
// global_fraction > 1 the two head groups overlap; that is allowed.
#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "anchors/core/run_control.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/head_index.h"

namespace anchors::model {

struct AttentionRhythmOptions {
  std::int64_t waad_window = 10;   // W (>= 1)
  std::int64_t fai_near = 10;      // FAI window [s + near, s + far] (0 <= near <= far)
  std::int64_t fai_far = 100;
  double local_fraction = 0.3;     // bottom fraction of heads by span, in (0, 1]
  double global_fraction = 0.3;    // top fraction of heads by span, in (0, 1]
  // Layers analysed, distinct, in [0, num_hidden_layers); default the middle
  // third [L/3, 2L/3) (integer division), at least one layer.
  std::optional<std::vector<std::int64_t>> layers;
  std::int64_t response_begin = 0;  // first token of the response, in [0, T)
  double top_fraction = 0.4;        // preplan / anchor fraction of response tokens, in (0, 1]
  double gamma = 1.5;               // credit weight of preplan / anchor tokens (finite)
};

struct AttentionRhythm {
  std::vector<std::int64_t> layers;      // layers analysed, in the order given
  torch::Tensor head_span;               // [layers.size(), H] float32; row i is layers[i]
  std::vector<HeadIndex> local_heads;    // most local (smallest span) first
  std::vector<HeadIndex> global_heads;   // most global (largest span) first
  torch::Tensor waad;                    // [T] float32
  torch::Tensor fai;                     // [T] float32, NaN where undefined
  torch::Tensor waad_delta;              // [T] float32, 0 at t <= response_begin
  torch::Tensor preplan, anchor;         // [T] bool, false before response_begin
  torch::Tensor gamma;                   // [T] float32
};

// All tensors on the CPU. H = the model's query heads; computed in float32 from
// the model-dtype queries and keys. Memory beyond the forward pass:
// O(L·H·T + H·tile²). anchors::Error for empty token_ids, T beyond
// max_position_embeddings, ids outside the vocabulary, a fraction outside
// (0, 1], a non-finite gamma, a bad WAAD / FAI window, an empty layer list, a
// repeated layer or one outside [0, num_hidden_layers), or response_begin
// outside [0, T); and for cancellation. control: progress (layers done,
// num_hidden_layers, "layers") and cancellation after each decoder layer.
AttentionRhythm attention_rhythm(const CausalLM& model, const std::vector<std::int64_t>& token_ids,
                                 const AttentionRhythmOptions& options = {}, const RunControl& control = {});

}  // namespace anchors::model
