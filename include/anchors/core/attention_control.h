#pragma once
// What a forward pass or a generation changes about attention
// (docs/attention-control.md): rectangles of a lane's score
// matrix that are suppressed or boosted, and heads whose output is ablated.
//
// Plain data and checks, no LibTorch: a CompletionRequest carries a control to
// `anchors serve` (its JSON is below), SamplingOptions carries one through
// model::sample, and the attention op (model/attention.h) applies it. The
// op-side rules (what a suppressed key's score becomes, how boosts add up)
// are stated in model/attention.h.
//
// Positions are key *slots*: slot s is the s-th token fed through the model
// (for a generation, prompt tokens then generated ones). A region's `queries`
// are the slots whose attention it changes; an end of kToTheEnd leaves the
// span open, which is how a generation says "from position p on":
//
//   anchors::AttentionControl control;
//   control.ablate_heads(/*layer=*/3, {1, 5});                           // every query, every lane
//   control.suppress_keys({40, 55}, /*from=*/prompt_length);             // the generated tokens ignore 40..55
//   control.boost_keys({40, 55}, /*beta=*/2.0, /*from=*/0, {2}, {0, 1});  // layer 2, heads 0 and 1
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "anchors/core/span.h"

namespace anchors {

enum class RegionEffect {
  kSuppress,  // score := lowest finite value of the dtype (the key is hidden)
  kBoost,     // score += beta
  kAblate,    // the head's output for these queries is zero (keys and beta ignored):
              // what zeroing the head's slice of o_proj's input does
};

// A region's lane that means every lane of the batch. Generations
// (model::sample, a provider's request) make their own lanes, so their
// controls apply to every lane.
inline constexpr std::int64_t kEveryLane = -1;
// A span end that means "to the last slot there will ever be".
inline constexpr std::int64_t kToTheEnd = std::numeric_limits<std::int64_t>::max();

// One rectangle of one batch lane's score matrix: queries at slots `queries`
// looking at keys at slots `keys`, for the listed heads and layers.
struct AttentionRegion {
  std::int64_t lane = 0;               // batch index, or kEveryLane
  TokenSpan queries;                   // query slots [begin, end); clipped to the call's queries
  TokenSpan keys;                      // key slots [begin, end); clipped to [0, Tk); unused by kAblate
  std::vector<std::int64_t> heads;     // query heads it applies to; empty = every head
  std::vector<std::int64_t> layers;    // decoder layers it applies to; empty = every layer
  RegionEffect effect = RegionEffect::kSuppress;
  double beta = 0.0;                   // kBoost only: added to the scaled score

  // Keys `keys` hidden from queries `queries` in every head and layer of `lane`.
  static AttentionRegion suppress(std::int64_t lane, TokenSpan queries, TokenSpan keys);
  // +beta on keys `keys` for queries `queries` in every head and layer of `lane`.
  static AttentionRegion boost(std::int64_t lane, TokenSpan queries, TokenSpan keys, double beta);
  // The output of `heads` (every head when empty) of `layers` (every layer
  // when empty) zeroed for queries `queries` of `lane`.
  static AttentionRegion ablate(std::int64_t lane, TokenSpan queries, std::vector<std::int64_t> heads,
                                std::vector<std::int64_t> layers);

  bool applies_to_layer(std::int64_t layer) const;
  bool applies_to_lane(std::int64_t batch_lane) const { return lane == kEveryLane || lane == batch_lane; }
  bool operator==(const AttentionRegion& o) const;
};

// Everything a forward pass changes about attention. An empty control (or a
// null pointer) is plain causal attention.
struct AttentionControl {
  std::vector<AttentionRegion> regions;

  bool empty() const { return regions.empty(); }
  bool operator==(const AttentionControl& o) const { return regions == o.regions; }
  // Whether any region applies to `layer`.
  bool affects_layer(std::int64_t layer) const;
  // Whether a suppress or boost region applies to `layer` (ablation alone
  // leaves the scores, so the fused attention path still serves it).
  bool changes_scores(std::int64_t layer) const;
  // The first query slot any non-empty region reaches (kToTheEnd when none):
  // a pass over slots before it computes exactly what it computes without
  // the control, which is what lets a generation reuse a prefix's KV cache.
  std::int64_t first_query() const;
  // Whether every region applies to every lane (kEveryLane).
  bool every_lane() const;

  // --- builders for generations: every lane, queries from slot `from` on;
  //     heads / layers empty = all. Each returns *this. ---
  AttentionControl& ablate_heads(std::int64_t layer, std::vector<std::int64_t> heads, std::int64_t from = 0);
  AttentionControl& suppress_keys(TokenSpan keys, std::int64_t from = 0, std::vector<std::int64_t> layers = {},
                                  std::vector<std::int64_t> heads = {});
  AttentionControl& boost_keys(TokenSpan keys, double beta, std::int64_t from = 0,
                               std::vector<std::int64_t> layers = {}, std::vector<std::int64_t> heads = {});
  // A control ablating (layer, head) pairs from slot `from` on: one region per layer.
  static AttentionControl ablating(const std::vector<std::pair<std::int64_t, std::int64_t>>& layer_heads,
                                   std::int64_t from = 0);

  // anchors::Error for a lane outside [0, batch) other than kEveryLane, a head
  // outside [0, heads) (heads < 0: not checked), a layer outside [0, layers)
  // (layers < 0: not checked), a negative or inverted span, or a non-finite
  // boost beta. Spans reaching past the sequence are fine: they are clipped.
  void validate(std::int64_t batch, std::int64_t heads = -1, std::int64_t layers = -1) const;
};

// The JSON of a control, as `anchors serve` takes it in a request's
// "attention_control" field and Python's AttentionControl.to_json writes it:
//   {"regions": [{"effect": "ablate" | "suppress" | "boost",
//                 "lane": -1,               (optional; default -1 = every lane)
//                 "queries": [begin, end],  (optional; default [0, null]; null end = to the end)
//                 "keys": [begin, end],     (suppress / boost only; null end = to the end)
//                 "heads": [h, ...],        (optional; default every head)
//                 "layers": [l, ...],       (optional; default every layer)
//                 "beta": 2.0}]}            (boost only)
std::string attention_control_json(const AttentionControl& control);
// anchors::Error naming `where` and the field for malformed JSON, an unknown
// effect or field, a wrong type, or a value validate() refuses without
// knowing the model (bad spans, a negative head or layer, a non-finite beta,
// a lane below -1).
AttentionControl parse_attention_control(const std::string& json, const std::string& where);

}  // namespace anchors
