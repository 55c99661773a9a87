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
//   waad_delta[t] = |waad[t] − waad[t+1]|   for response_begin <= t < T − 1
//                   (the paper's Δ_t: the token before a drop or rise is the
//                   preplan candidate), 0 before response_begin, NaN at T − 1
//   preplan       = the top `top_fraction` response tokens by waad_delta
//   anchor        = the top `top_fraction` response tokens by fai (NaN never chosen)
//   gamma[t]      = the credit weight of `options.credit` (rhythm_credit below):
//                   "union" gamma on preplan ∪ anchor; the paper's three
//                   strategies "preplan", "anchor" and "coupled"
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
#include <string>
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
  double gamma = 1.5;               // credit weight γ_amp of preplan / anchor tokens (finite)
  // Which tokens get the credit (docs/attention-rhythm.md "Credit strategies";
  // arXiv 2510.13554 v2 Eqs. 14-19, with γ_amp = gamma):
  //   "union"   γ on preplan ∪ anchor (this library's combination; the default)
  //   "preplan" local-chunk credit: γ on preplan tokens
  //   "anchor"  global-anchor credit: γ on anchor tokens
  //   "coupled" coupled rhythm credit: an anchor t is *dominated* when
  //             waad[t] <= tau_waad and max waad_delta over the coupled_k
  //             response tokens before it >= tau_delta; a dominated anchor
  //             keeps 1 + (1 − α)(γ − 1), its *intro* token (the earliest
  //             argmax of waad_delta among those k) gains α(γ − 1), every other
  //             anchor has γ: gamma[t] = 1 + (γ−1)·[anchor, not dominated]
  //             + (1−α)(γ−1)·[dominated] + α(γ−1)·[intro of some dominated anchor]
  std::string credit = "union";
  std::int64_t coupled_k = 3;    // look-back of the coupled test (the paper: k ∈ {1, 2, 3}), >= 1
  double coupled_alpha = 0.5;    // α, in [0, 1] (the paper gives no value)
  // The coupled thresholds; negative = the median over the response tokens
  // where the value is finite (the paper gives no value or rule).
  double tau_waad = -1;
  double tau_delta = -1;
};

// Which response tokens get which credit, from the WAAD / FAI curves alone.
struct RhythmCredit {
  torch::Tensor waad_delta;         // [T] float32, as above
  torch::Tensor preplan, anchor;    // [T] bool
  torch::Tensor dominated, intro;   // [T] bool: the coupled strategy's sets (all false for the others)
  torch::Tensor gamma;              // [T] float32
};

// The token sets and weights of `options` (top_fraction, gamma, credit and
// the coupled parameters) from per-token waad and fai ([T] float32, CPU; fai
// NaN where undefined). O(T log T). anchors::Error for mismatched or empty
// curves, response_begin outside [0, T), top_fraction outside (0, 1], a
// non-finite gamma, an unknown credit, coupled_k < 1 or coupled_alpha
// outside [0, 1].
RhythmCredit rhythm_credit(const torch::Tensor& waad, const torch::Tensor& fai, std::int64_t response_begin,
                           const AttentionRhythmOptions& options);

struct AttentionRhythm {
  std::vector<std::int64_t> layers;      // layers analysed, in the order given
  torch::Tensor head_span;               // [layers.size(), H] float32; row i is layers[i]
  std::vector<HeadIndex> local_heads;    // most local (smallest span) first
  std::vector<HeadIndex> global_heads;   // most global (largest span) first
  torch::Tensor waad;                    // [T] float32
  torch::Tensor fai;                     // [T] float32, NaN where undefined
  torch::Tensor waad_delta;              // [T] float32 (rhythm_credit)
  torch::Tensor preplan, anchor;         // [T] bool, false before response_begin
  torch::Tensor dominated, intro;        // [T] bool, the coupled strategy's sets
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

// Credit weights for a padded batch, the shape RL trainers hold: row b is
// the prompt tokens of prompt_ids[b] where prompt_mask[b] is 1 (left or right
// padding alike) followed by the response tokens of response_ids[b] where
// response_mask[b] is 1; one attention_rhythm pass per row with
// response_begin at the first response token. Returns [B, R] float32 (R =
// response_ids.size(1)): gamma at each real response token, 1 at padding.
// prompt_ids [B, P] and response_ids [B, R] integer tensors (any device);
// masks of the same shapes (bool or integer), or undefined = all ones.
// options.response_begin is ignored. Cost: B forward passes of each row's
// real length. anchors::Error for mismatched shapes, a row without response
// tokens, and everything attention_rhythm rejects (naming the row).
torch::Tensor token_weights(const CausalLM& model, const torch::Tensor& prompt_ids, const torch::Tensor& prompt_mask,
                            const torch::Tensor& response_ids, const torch::Tensor& response_mask,
                            const AttentionRhythmOptions& options = {}, const RunControl& control = {});

}  // namespace anchors::model
