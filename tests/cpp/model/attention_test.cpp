// The attention op boundary against an explicit T×T softmax written out in
// float64: causal offsets (incremental decoding), GQA, suppression and boost
// regions, the all-masked-row rule, sliding windows, a shared prefix,
// log-sum-exp, and input checks.
#include "anchors/model/attention.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "anchors/core/error.h"

namespace anchors::model {
namespace {

struct Reference {
  torch::Tensor output;  // [B, Hq, Tq, D] float64
  torch::Tensor lse;     // [B, Hq, Tq] float64
};

double lowest_of(torch::ScalarType dtype) {
  if (dtype == torch::kBFloat16) return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
  if (dtype == torch::kFloat16) return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
  return static_cast<double>(std::numeric_limits<float>::lowest());
}

// The slow, obviously correct version: every score of every (lane, head,
// query, key) built one by one, then a float64 softmax over the visible keys.
// A sliding window W > 0 leaves query slot t the keys (t - W, t].
Reference reference_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const AttentionControl* control = nullptr, std::int64_t layer = 0,
                              std::int64_t window = 0) {
  const auto q64 = q.to(torch::kFloat64), k64 = k.to(torch::kFloat64), v64 = v.to(torch::kFloat64);
  const std::int64_t B = q.size(0), Hq = q.size(1), Tq = q.size(2), D = q.size(3);
  const std::int64_t Hkv = k.size(1), Tk = k.size(2), group = Hq / Hkv;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const double lowest = lowest_of(q.scalar_type());
  auto output = torch::zeros({B, Hq, Tq, D}, torch::kFloat64);
  auto lse = torch::zeros({B, Hq, Tq}, torch::kFloat64);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < Hq; ++h)
      for (std::int64_t i = 0; i < Tq; ++i) {
        const std::int64_t slot = Tk - Tq + i;
        const auto kv_head = h / group;
        std::vector<double> scores;
        const std::int64_t first_key = window > 0 ? std::max<std::int64_t>(0, slot - window + 1) : 0;
        for (std::int64_t j = first_key; j <= slot; ++j) {
          double score = (q64[b][h][i] * k64[b][kv_head][j]).sum().item<double>() * scale;
          bool suppressed = false;
          if (control != nullptr)
            for (const AttentionRegion& r : control->regions) {
              const bool head_hit =
                  r.heads.empty() || std::find(r.heads.begin(), r.heads.end(), h) != r.heads.end();
              const bool lane_hit = r.lane == kEveryLane || r.lane == b;
              const bool hit = r.effect != RegionEffect::kAblate && lane_hit && head_hit &&
                               r.applies_to_layer(layer) && slot >= r.queries.begin && slot < r.queries.end &&
                               j >= r.keys.begin && j < r.keys.end;
              if (!hit) continue;
              if (r.effect == RegionEffect::kSuppress) suppressed = true;
              else score += r.beta;
            }
          scores.push_back(suppressed ? lowest : score);
        }
        const double max_score = *std::max_element(scores.begin(), scores.end());
        double denominator = 0;
        for (const double s : scores) denominator += std::exp(s - max_score);
        bool ablated = false;
        if (control != nullptr)
          for (const AttentionRegion& r : control->regions)
            ablated = ablated || (r.effect == RegionEffect::kAblate && (r.lane == kEveryLane || r.lane == b) &&
                                  (r.heads.empty() || std::find(r.heads.begin(), r.heads.end(), h) != r.heads.end()) &&
                                  r.applies_to_layer(layer) && slot >= r.queries.begin && slot < r.queries.end);
        if (!ablated)  // an ablated head's output is zero; its log-sum-exp is not changed
          for (std::size_t j = 0; j < scores.size(); ++j)
            output[b][h][i] +=
                std::exp(scores[j] - max_score) / denominator * v64[b][kv_head][first_key + static_cast<std::int64_t>(j)];
        lse[b][h][i] = max_score + std::log(denominator);
      }
  return {output, lse};
}

struct Inputs {
  torch::Tensor q, k, v;
};

Inputs random_inputs(std::int64_t B, std::int64_t Hq, std::int64_t Hkv, std::int64_t Tq, std::int64_t Tk,
                     std::int64_t D, torch::ScalarType dtype = torch::kFloat32, std::uint64_t seed = 7) {
  torch::manual_seed(seed);
  // Scores of a few units, like a trained model's, so masking visibly matters.
  return {(torch::randn({B, Hq, Tq, D}) * 1.5).to(dtype), (torch::randn({B, Hkv, Tk, D}) * 1.5).to(dtype),
          torch::randn({B, Hkv, Tk, D}).to(dtype)};
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// ---------------------------------------------------------------------------
// Plain causal attention (fast path) over shapes: GQA ratio x query offset
// ---------------------------------------------------------------------------

struct CausalCase {
  std::int64_t query_heads, kv_heads, queries, keys;
};

class AttentionCausal : public ::testing::TestWithParam<CausalCase> {};

TEST_P(AttentionCausal, MatchesExplicitSoftmax) {
  const CausalCase c = GetParam();
  const Inputs in = random_inputs(2, c.query_heads, c.kv_heads, c.queries, c.keys, 16);
  const Reference ref = reference_attention(in.q, in.k, in.v);
  const torch::Tensor fast = attention(in.q, in.k, in.v);
  EXPECT_EQ(fast.sizes(), in.q.sizes());
  EXPECT_LT(max_abs_diff(fast, ref.output), 1e-5);
  const AttentionResult with_lse = attention_with_lse(in.q, in.k, in.v);
  EXPECT_LT(max_abs_diff(with_lse.output, ref.output), 1e-5);
  EXPECT_LT(max_abs_diff(with_lse.log_sum_exp, ref.lse), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(AttentionShapes, AttentionCausal,
                         ::testing::Values(CausalCase{4, 4, 9, 9},    // prefill, MHA
                                           CausalCase{4, 2, 9, 9},    // GQA 2
                                           CausalCase{8, 2, 9, 9},    // GQA 4
                                           CausalCase{4, 2, 3, 11},   // chunk after a cached prefix
                                           CausalCase{8, 2, 1, 12},   // one decoding step
                                           CausalCase{4, 1, 5, 5}));  // MQA

// ---------------------------------------------------------------------------
// Sliding windows: every path (fused, explicit with log-sum-exp, controlled,
// shared prefix) against the reference, over prefill, chunks and decoding.
// ---------------------------------------------------------------------------

TEST(AttentionWindow, EveryPathMatchesTheReference) {
  for (const CausalCase c : {CausalCase{4, 2, 20, 20}, CausalCase{8, 2, 6, 20}, CausalCase{4, 1, 1, 20}}) {
    for (const std::int64_t window : {1, 3, 8, 19, 20, 64}) {
      SCOPED_TRACE(::testing::Message() << "Tq " << c.queries << ", Tk " << c.keys << ", window " << window);
      const Inputs in = random_inputs(2, c.query_heads, c.kv_heads, c.queries, c.keys, 16);
      const Reference ref = reference_attention(in.q, in.k, in.v, nullptr, 0, window);
      AttentionParams params;
      params.sliding_window = window;
      EXPECT_LT(max_abs_diff(attention(in.q, in.k, in.v, params), ref.output), 1e-5);
      const AttentionResult with_lse = attention_with_lse(in.q, in.k, in.v, params);
      EXPECT_LT(max_abs_diff(with_lse.output, ref.output), 1e-5);
      EXPECT_LT(max_abs_diff(with_lse.log_sum_exp, ref.lse), 1e-5);
      // A window narrower than the keys changes the result.
      if (window < c.keys) EXPECT_GT(max_abs_diff(with_lse.log_sum_exp, reference_attention(in.q, in.k, in.v).lse), 1e-3);

      // Suppression inside and outside the window, and rows whose every key in the window is suppressed: those
      // attend uniformly over the window's keys.
      AttentionControl control;
      control.regions.push_back(AttentionRegion::suppress(kEveryLane, {0, c.keys}, {c.keys - 8, c.keys - 5}));
      control.regions.push_back(AttentionRegion::suppress(1, {c.keys - 2, c.keys}, {0, c.keys}));
      params.control = &control;
      const Reference controlled = reference_attention(in.q, in.k, in.v, &control, 0, window);
      const AttentionResult got = attention_with_lse(in.q, in.k, in.v, params);
      EXPECT_LT(max_abs_diff(got.output, controlled.output), 1e-5);
      EXPECT_LT(max_abs_diff(attention(in.q, in.k, in.v, params), controlled.output), 1e-5);  // the masked SDPA
      EXPECT_LT(((got.log_sum_exp.to(torch::kFloat64) - controlled.lse).abs() /
                 controlled.lse.abs().clamp_min(1.0)).max().item<double>(), 1e-5);

      // A prefix every lane shares: the same function as the concatenation.
      if (c.keys > c.queries) {
        const std::int64_t prefix = c.keys - c.queries;
        AttentionParams shared;
        shared.sliding_window = window;
        shared.shared_keys = in.k.narrow(0, 0, 1).narrow(2, 0, prefix);
        shared.shared_values = in.v.narrow(0, 0, 1).narrow(2, 0, prefix);
        const torch::Tensor own_k = in.k.narrow(2, prefix, c.queries), own_v = in.v.narrow(2, prefix, c.queries);
        const torch::Tensor k0 = at::cat({shared.shared_keys.expand({2, -1, -1, -1}), own_k}, 2);
        const torch::Tensor v0 = at::cat({shared.shared_values.expand({2, -1, -1, -1}), own_v}, 2);
        const Reference concatenated = reference_attention(in.q, k0, v0, nullptr, 0, window);
        const AttentionResult split = attention_with_lse(in.q, own_k, own_v, shared);
        EXPECT_LT(max_abs_diff(split.output, concatenated.output), 1e-5);
        EXPECT_LT(max_abs_diff(split.log_sum_exp, concatenated.lse), 1e-5);
      }
    }
  }
  const Inputs in = random_inputs(1, 2, 2, 4, 4, 8);
  AttentionParams negative;
  negative.sliding_window = -1;
  EXPECT_THROW(attention(in.q, in.k, in.v, negative), Error);
}

TEST(AttentionCausal, AcceptsStridedInputs) {
  // The decoder hands in transposed views of [B, T, H, D] projections.
  const Inputs in = random_inputs(2, 4, 2, 7, 7, 8);
  const torch::Tensor q = in.q.transpose(1, 2).contiguous().transpose(1, 2);
  const torch::Tensor k = in.k.transpose(1, 2).contiguous().transpose(1, 2);
  const torch::Tensor v = in.v.transpose(1, 2).contiguous().transpose(1, 2);
  ASSERT_FALSE(q.is_contiguous());
  const Reference ref = reference_attention(in.q, in.k, in.v);
  EXPECT_LT(max_abs_diff(attention(q, k, v), ref.output), 1e-5);
  EXPECT_LT(max_abs_diff(attention_with_lse(q, k, v).output, ref.output), 1e-5);
}

TEST(AttentionCausal, CustomScale) {
  const Inputs in = random_inputs(1, 2, 2, 4, 4, 8);
  AttentionParams params;
  params.scale = 0.1;
  // Scaling q by 0.1 * sqrt(D) with the default scale is the same computation.
  const torch::Tensor expected = attention(in.q * (0.1 * std::sqrt(8.0)), in.k, in.v);
  EXPECT_LT(max_abs_diff(attention(in.q, in.k, in.v, params), expected), 1e-5);
}

// ---------------------------------------------------------------------------
// Control regions: the explicit path (attention_with_lse) and the fused op with
// an additive mask (attention)
// ---------------------------------------------------------------------------

TEST(AttentionControl, SuppressionRectanglesPerLaneAndHead) {
  const Inputs in = random_inputs(3, 8, 2, 6, 14, 16);  // queries at slots [8, 14)
  AttentionControl control;
  control.regions.push_back(AttentionRegion::suppress(0, {0, 14}, {2, 5}));     // a "sentence" for everyone
  control.regions.push_back(AttentionRegion::suppress(1, {10, 12}, {0, 9}));    // part of the queries
  AttentionRegion some_heads = AttentionRegion::suppress(2, {0, 100}, {6, 11}); // past the end: clipped
  some_heads.heads = {1, 6};
  control.regions.push_back(some_heads);
  AttentionParams params;
  params.control = &control;
  const Reference ref = reference_attention(in.q, in.k, in.v, &control);
  const AttentionResult got = attention_with_lse(in.q, in.k, in.v, params);
  EXPECT_LT(max_abs_diff(got.output, ref.output), 1e-5);
  EXPECT_LT(max_abs_diff(got.log_sum_exp, ref.lse), 1e-5);
  EXPECT_LT(max_abs_diff(attention(in.q, in.k, in.v, params), ref.output), 1e-5);
  // And it changed something: lane 2's other heads are untouched, heads 1 and 6 are not.
  const torch::Tensor plain = attention(in.q, in.k, in.v);
  EXPECT_LT(max_abs_diff(got.output[2][0], plain[2][0]), 1e-6);
  EXPECT_GT(max_abs_diff(got.output[2][1], plain[2][1]), 1e-3);
}

TEST(AttentionControl, BoostAddsBetaAndSuppressionWins) {
  const Inputs in = random_inputs(1, 4, 4, 8, 8, 8);
  AttentionControl control;
  control.regions.push_back(AttentionRegion::boost(0, {0, 8}, {1, 4}, 2.5));
  control.regions.push_back(AttentionRegion::boost(0, {4, 8}, {3, 6}, 1.0));   // overlaps: betas add
  control.regions.push_back(AttentionRegion::suppress(0, {5, 8}, {2, 4}));     // overlaps a boost: wins
  AttentionParams params;
  params.control = &control;
  const Reference ref = reference_attention(in.q, in.k, in.v, &control);
  const AttentionResult got = attention_with_lse(in.q, in.k, in.v, params);
  EXPECT_LT(max_abs_diff(got.output, ref.output), 1e-5);
  EXPECT_LT(max_abs_diff(got.log_sum_exp, ref.lse), 1e-5);
  EXPECT_LT(max_abs_diff(attention(in.q, in.k, in.v, params), ref.output), 1e-5);  // the mask adds beta after scaling
}

TEST(AttentionControl, EveryLaneRegionsAndAblationFromAPosition) {
  const Inputs in = random_inputs(3, 8, 2, 6, 14, 16);  // queries at slots [8, 14)
  AttentionControl control;
  control.suppress_keys({2, 6}, /*from=*/10);                      // every lane, every head, slots >= 10
  control.boost_keys({7, 9}, 1.5, /*from=*/0, /*layers=*/{}, /*heads=*/{0, 5});
  control.ablate_heads(/*layer=*/0, {1, 6}, /*from=*/11);
  control.regions.push_back(AttentionRegion::ablate(2, {0, kToTheEnd}, {3}, {}));  // one lane only
  AttentionParams params;
  params.control = &control;
  const Reference ref = reference_attention(in.q, in.k, in.v, &control);
  const AttentionResult got = attention_with_lse(in.q, in.k, in.v, params);
  EXPECT_LT(max_abs_diff(got.output, ref.output), 1e-5);
  EXPECT_LT(max_abs_diff(got.log_sum_exp, ref.lse), 1e-5);
  const torch::Tensor out = attention(in.q, in.k, in.v, params);
  EXPECT_LT(max_abs_diff(out, ref.output), 1e-5);
  // Ablated rows are exactly zero: head 1 from slot 11 (query row 3) on, in every lane.
  EXPECT_EQ(out.select(1, 1).narrow(1, 3, 3).abs().max().item<double>(), 0.0);
  EXPECT_GT(out.select(1, 1).narrow(1, 0, 3).abs().max().item<double>(), 0.0);
  EXPECT_EQ(out[2][3].abs().max().item<double>(), 0.0);
  EXPECT_GT(out[1][3].abs().max().item<double>(), 0.0);
}

TEST(AttentionControl, AblationAloneKeepsTheFusedScores) {
  // Ablation zeroes outputs after the softmax: everything else equals plain attention.
  const Inputs in = random_inputs(2, 4, 2, 5, 9, 8);
  AttentionControl control;
  control.ablate_heads(/*layer=*/1, {2});
  EXPECT_FALSE(control.changes_scores(1));
  AttentionParams params;
  params.control = &control;
  params.layer = 1;
  const torch::Tensor plain = attention(in.q, in.k, in.v);
  torch::Tensor expected = plain.clone();
  expected.select(1, 2).zero_();
  EXPECT_LT(max_abs_diff(attention(in.q, in.k, in.v, params), expected), 1e-7);
  params.layer = 0;
  EXPECT_LT(max_abs_diff(attention(in.q, in.k, in.v, params), plain), 1e-7);
}

TEST(AttentionControl, RegionsOnlyActInTheirLayers) {
  const Inputs in = random_inputs(1, 4, 2, 6, 6, 8);
  AttentionControl control;
  AttentionRegion region = AttentionRegion::suppress(0, {0, 6}, {0, 3});
  region.layers = {2};
  control.regions.push_back(region);
  AttentionParams params;
  params.control = &control;
  params.layer = 1;
  EXPECT_LT(max_abs_diff(attention(in.q, in.k, in.v, params), attention(in.q, in.k, in.v)), 1e-7);
  params.layer = 2;
  const Reference ref = reference_attention(in.q, in.k, in.v, &control, 2);
  EXPECT_LT(max_abs_diff(attention(in.q, in.k, in.v, params), ref.output), 1e-5);
}

TEST(AttentionControl, AllMaskedRowsAttendUniformlyToVisibleKeys) {
  // Queries at slots [4, 10); every key up to slot 6 is suppressed, so rows at
  // slots 4, 5, 6 have no unsuppressed visible key.
  const Inputs in = random_inputs(1, 4, 2, 6, 10, 8);
  AttentionControl control;
  control.regions.push_back(AttentionRegion::suppress(0, {0, 10}, {0, 7}));
  AttentionParams params;
  params.control = &control;
  const AttentionResult got = attention_with_lse(in.q, in.k, in.v, params);
  ASSERT_TRUE(torch::isfinite(got.output).all().item<bool>());
  ASSERT_TRUE(torch::isfinite(got.log_sum_exp).all().item<bool>());
  const Reference ref = reference_attention(in.q, in.k, in.v, &control);
  EXPECT_LT(max_abs_diff(got.output, ref.output), 1e-5);
  // The output-only call takes the fused op with an additive mask: the same rule.
  const torch::Tensor fused = attention(in.q, in.k, in.v, params);
  ASSERT_TRUE(torch::isfinite(fused).all().item<bool>());
  EXPECT_LT(max_abs_diff(fused, ref.output), 1e-5);
  for (std::int64_t i = 0; i < 3; ++i) {
    const std::int64_t slot = 4 + i;
    for (std::int64_t h = 0; h < 4; ++h) {
      const torch::Tensor mean_visible = in.v[0][h / 2].narrow(0, 0, slot + 1).mean(0);
      EXPECT_LT(max_abs_diff(got.output[0][h][i], mean_visible), 1e-5) << "slot " << slot << " head " << h;
      EXPECT_LT(max_abs_diff(fused[0][h][i], mean_visible), 1e-5) << "slot " << slot << " head " << h;
    }
  }
  // Rows with unsuppressed keys left ignore the suppressed ones entirely.
  EXPECT_LT(got.log_sum_exp[0][0][1].item<double>(), -1e30);  // slot 5: lowest + log(6), rounded
  EXPECT_GT(got.log_sum_exp[0][0][3].item<double>(), -1e3);   // slot 7: keys 7 visible and kept
}

TEST(AttentionControl, AllMaskedRowsStayFiniteInLowPrecision) {
  for (const auto dtype : {torch::kBFloat16, torch::kFloat16}) {
    const Inputs in = random_inputs(1, 2, 2, 5, 5, 8, dtype);
    AttentionControl control;
    control.regions.push_back(AttentionRegion::suppress(0, {0, 5}, {0, 5}));  // every key of every row
    AttentionParams params;
    params.control = &control;
    const AttentionResult got = attention_with_lse(in.q, in.k, in.v, params);
    EXPECT_EQ(got.output.scalar_type(), dtype);
    EXPECT_TRUE(torch::isfinite(got.output).all().item<bool>());
    EXPECT_TRUE(torch::isfinite(got.log_sum_exp).all().item<bool>());
    const Reference ref = reference_attention(in.q, in.k, in.v, &control);
    EXPECT_LT(max_abs_diff(got.output, ref.output), 2e-2);
    const torch::Tensor fused = attention(in.q, in.k, in.v, params);
    EXPECT_EQ(fused.scalar_type(), dtype);
    EXPECT_TRUE(torch::isfinite(fused).all().item<bool>());
    EXPECT_LT(max_abs_diff(fused, ref.output), 2e-2);
  }
}

TEST(AttentionControl, LongSequencesAreProcessedInQueryBlocks) {
  // 4 lanes x 16 heads x 1024 keys: the float32 score budget holds 512 query
  // rows of scores (the explicit path) or of a per-head mask (the masked fused
  // op), so those run in two blocks; each must equal the fused path when the
  // region does nothing, and the reference masking when it does.
  const Inputs in = random_inputs(4, 16, 4, 1024, 1024, 8);
  AttentionControl empty_region;
  empty_region.regions.push_back(AttentionRegion::suppress(0, {0, 1024}, {5, 5}));
  AttentionParams params;
  params.control = &empty_region;
  const torch::Tensor fused = attention(in.q, in.k, in.v);
  EXPECT_LT(max_abs_diff(attention(in.q, in.k, in.v, params), fused), 1e-5);
  EXPECT_LT(max_abs_diff(attention_with_lse(in.q, in.k, in.v, params).output, fused), 1e-5);

  // Suppress keys [100, 700) for lane 3 only; rows of lanes 0-2 are unchanged and
  // lane 3 equals a fused attention over the remaining keys of each row block.
  AttentionControl control;
  control.regions.push_back(AttentionRegion::suppress(3, {700, 1024}, {100, 700}));
  params.control = &control;
  const torch::Tensor got = attention(in.q, in.k, in.v, params);
  EXPECT_LT(max_abs_diff(attention_with_lse(in.q, in.k, in.v, params).output, got), 1e-5);
  EXPECT_LT(max_abs_diff(got.narrow(0, 0, 3), fused.narrow(0, 0, 3)), 1e-5);
  EXPECT_LT(max_abs_diff(got[3].narrow(1, 0, 700), fused[3].narrow(1, 0, 700)), 1e-5);
  const torch::Tensor kept = torch::cat({torch::arange(0, 100), torch::arange(700, 1024)});
  const torch::Tensor q_late = in.q.narrow(0, 3, 1).narrow(2, 700, 324);  // slots [700, 1024)
  const torch::Tensor k_kept = in.k.narrow(0, 3, 1).index_select(2, kept);
  const torch::Tensor v_kept = in.v.narrow(0, 3, 1).index_select(2, kept);
  // Without the suppressed keys, the 324 late queries sit at the last 324 of 424 slots.
  EXPECT_LT(max_abs_diff(got.narrow(0, 3, 1).narrow(2, 700, 324), attention(q_late, k_kept, v_kept)), 1e-5);

  // A region naming heads needs a mask per head: 4 x 16 x 1024 floats per row is 512 rows per block.
  AttentionRegion two_heads = AttentionRegion::suppress(3, {700, 1024}, {100, 700});
  two_heads.heads = {0, 9};
  AttentionControl per_head;
  per_head.regions.push_back(two_heads);
  params.control = &per_head;
  const torch::Tensor heads = attention(in.q, in.k, in.v, params);
  EXPECT_LT(max_abs_diff(heads.narrow(1, 0, 1), got.narrow(1, 0, 1)), 1e-5);
  EXPECT_LT(max_abs_diff(heads.narrow(1, 9, 1), got.narrow(1, 9, 1)), 1e-5);
  EXPECT_LT(max_abs_diff(heads.narrow(1, 1, 8), fused.narrow(1, 1, 8)), 1e-5);
  EXPECT_LT(max_abs_diff(attention_with_lse(in.q, in.k, in.v, params).output, heads), 1e-5);
}

// ---------------------------------------------------------------------------
// Low precision and input checks
// ---------------------------------------------------------------------------

TEST(AttentionCausal, LowPrecisionCloseToFloat32) {
  for (const auto dtype : {torch::kBFloat16, torch::kFloat16}) {
    const Inputs in = random_inputs(2, 8, 2, 16, 16, 32, dtype);
    const Reference ref = reference_attention(in.q, in.k, in.v);
    const torch::Tensor got = attention(in.q, in.k, in.v);
    EXPECT_EQ(got.scalar_type(), dtype);
    EXPECT_LT(max_abs_diff(got, ref.output), dtype == torch::kBFloat16 ? 3e-2 : 5e-3);
  }
}

TEST(AttentionInputs, BadShapesAndRegionsAreErrors) {
  const Inputs in = random_inputs(2, 4, 2, 3, 5, 8);
  EXPECT_THROW(attention(in.q[0], in.k, in.v), Error);                                   // rank
  EXPECT_THROW(attention(in.q, in.k.narrow(1, 0, 1).expand({2, 3, 5, 8}), in.v), Error);  // shapes differ
  EXPECT_THROW(attention(in.q, in.k.narrow(2, 0, 2), in.v.narrow(2, 0, 2)), Error);       // Tq > Tk
  const Inputs three_kv = random_inputs(1, 4, 3, 2, 2, 8);
  EXPECT_THROW(attention(three_kv.q, three_kv.k, three_kv.v), Error);  // 4 heads over 3 kv heads
  EXPECT_THROW(attention(in.q.to(torch::kFloat64), in.k.to(torch::kFloat64), in.v.to(torch::kFloat64)), Error);
  EXPECT_THROW(attention(in.q, in.k.to(torch::kBFloat16), in.v), Error);

  AttentionParams params;
  AttentionControl control;
  params.control = &control;
  control.regions = {AttentionRegion::suppress(2, {0, 5}, {0, 2})};  // lane 2 of 2
  EXPECT_THROW(attention(in.q, in.k, in.v, params), Error);
  AttentionRegion bad_head = AttentionRegion::suppress(0, {0, 5}, {0, 2});
  bad_head.heads = {4};
  control.regions = {bad_head};
  EXPECT_THROW(attention(in.q, in.k, in.v, params), Error);
  control.regions = {AttentionRegion::suppress(0, {0, 5}, {3, 1})};  // inverted
  EXPECT_THROW(attention(in.q, in.k, in.v, params), Error);
  control.regions = {AttentionRegion::boost(0, {0, 5}, {0, 1}, std::nan(""))};
  EXPECT_THROW(attention(in.q, in.k, in.v, params), Error);
  AttentionRegion bad_layer = AttentionRegion::suppress(0, {0, 5}, {0, 2});
  bad_layer.layers = {3};
  control.regions = {bad_layer};
  EXPECT_THROW(control.validate(2, 4, 3), Error);
  EXPECT_NO_THROW(control.validate(2, 4, 4));
}

}  // namespace
}  // namespace anchors::model
