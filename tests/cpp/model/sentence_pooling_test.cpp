// Sentence pooling (tile-by-tile S×S block sums / means of attention) and
// sentence_attention against an explicit reference: the full T×T float64
// softmax of q·kᵀ·scale with the causal mask, then block sums by loops over
// sentences. Also GQA, cached prefixes (Tq < Tk), gaps between sentences, tiles
// smaller and larger than sentences, a T = 4096 memory check, and bad input.
#include "anchors/model/sentence_pooling.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <string>
#include <tuple>

#include "test_paths.h"
#include "anchors/core/error.h"
#include "anchors/model/attention.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/sentence_attention.h"

namespace anchors::model {
namespace {

struct ReferencePooling {
  torch::Tensor lse;    // [B, Hq, Tq] float64
  torch::Tensor sums;   // [B, Hq, S, S] float64
  torch::Tensor means;  // [B, Hq, S, S] float64 (NaN rows for sentences with no query present)
};

// Lowest finite value of a dtype: the score a suppressed key gets (attention.h).
double lowest_of(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kBFloat16: return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case torch::kFloat16: return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    default: return static_cast<double>(std::numeric_limits<float>::lowest());
  }
}

// The rule of attention.h on one lane and head's float64 score matrix [Tq, Tk]
// (rows are query slots first..Tk-1): boosts add beta, then suppression
// overwrites with the lowest value of the input dtype.
void apply_control(torch::Tensor& scores, const AttentionControl& control, std::int64_t layer, std::int64_t lane,
                   std::int64_t head, std::int64_t first, double lowest) {
  auto a = scores.accessor<double, 2>();
  for (const RegionEffect pass : {RegionEffect::kBoost, RegionEffect::kSuppress})
    for (const AttentionRegion& r : control.regions) {
      if (r.effect != pass || r.lane != lane || !r.applies_to_layer(layer)) continue;
      if (!r.heads.empty() && std::find(r.heads.begin(), r.heads.end(), head) == r.heads.end()) continue;
      for (std::int64_t t = std::max(r.queries.begin, first); t < std::min(r.queries.end, scores.size(1)); ++t)
        for (std::int64_t s = r.keys.begin; s < std::min(r.keys.end, scores.size(1)); ++s) {
          if (pass == RegionEffect::kBoost)
            a[t - first][s] += r.beta;
          else
            a[t - first][s] = lowest;
        }
    }
}

// The obviously correct version: per lane and head the full T×T probability
// matrix (with the control's regions for `layer`, when given), then every
// block summed over its token pairs.
ReferencePooling reference_pooling(const torch::Tensor& q, const torch::Tensor& k,
                                   const std::vector<TokenSpan>& sentences, const AttentionControl* control = nullptr,
                                   std::int64_t layer = 0, std::int64_t window = 0) {
  const auto q64 = q.to(torch::kFloat64), k64 = k.to(torch::kFloat64);
  const std::int64_t B = q.size(0), Hq = q.size(1), Tq = q.size(2), D = q.size(3);
  const std::int64_t Hkv = k.size(1), Tk = k.size(2), group = Hq / Hkv, first = Tk - Tq;
  const std::int64_t S = static_cast<std::int64_t>(sentences.size());
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  ReferencePooling ref;
  ref.lse = torch::zeros({B, Hq, Tq}, torch::kFloat64);
  ref.sums = torch::zeros({B, Hq, S, S}, torch::kFloat64);
  ref.means = torch::zeros({B, Hq, S, S}, torch::kFloat64);
  // visible[r][s]: query r (slot first + r) may see key slot s.
  // and, with a window, s > slot - window.
  torch::Tensor invisible = torch::ones({Tq, Tk}, torch::kBool).triu(first + 1);
  if (window > 0) invisible.logical_or_(torch::ones({Tq, Tk}, torch::kBool).tril(first - window));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < Hq; ++h) {
      torch::Tensor scores = torch::matmul(q64[b][h], k64[b][h / group].t()).mul(scale);
      if (control != nullptr) apply_control(scores, *control, layer, b, h, first, lowest_of(q.scalar_type()));
      scores.masked_fill_(invisible, -INFINITY);
      ref.lse[b][h].copy_(torch::logsumexp(scores, -1));
      const torch::Tensor p = torch::softmax(scores, -1);  // [Tq, Tk]
      auto pa = p.accessor<double, 2>();
      for (std::int64_t i = 0; i < S; ++i)
        for (std::int64_t j = 0; j < S; ++j) {
          double sum = 0;
          std::int64_t query_rows = 0;
          for (std::int64_t t = sentences[i].begin; t < sentences[i].end; ++t) {
            if (t < first) continue;
            ++query_rows;
            for (std::int64_t s = sentences[j].begin; s < sentences[j].end; ++s) sum += pa[t - first][s];
          }
          ref.sums[b][h][i][j] = sum;
          ref.means[b][h][i][j] = query_rows == 0 ? std::numeric_limits<double>::quiet_NaN()
                                                  : sum / static_cast<double>(query_rows * sentences[j].size());
        }
    }
  return ref;
}

// Max |a - b| over entries where both are finite; NaN positions must agree.
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(a64.isnan(), b64.isnan())) << "NaN patterns differ";
  const torch::Tensor finite = a64.isnan().logical_not();
  if (finite.sum().item<std::int64_t>() == 0) return 0.0;
  return (a64.masked_select(finite) - b64.masked_select(finite)).abs().max().item<double>();
}

// Uneven sentences with gaps, covering [0, tokens) roughly.
std::vector<TokenSpan> uneven_sentences(std::int64_t tokens) {
  std::vector<TokenSpan> spans;
  const std::int64_t lengths[] = {3, 8, 1, 16, 5, 2, 11, 7};
  std::int64_t at = 0;
  for (std::size_t n = 0; at < tokens; ++n) {
    const std::int64_t len = std::min(lengths[n % 8], tokens - at);
    spans.push_back({at, at + len});
    at += len + (n % 3 == 1 ? 2 : 0);  // a gap after every third sentence
  }
  return spans;
}

// ---------------------------------------------------------------------------
// Kernel vs reference: GQA 1/2/4, prefixes, tile sizes.
// ---------------------------------------------------------------------------

// (query heads, kv heads, Tq, Tk, query tile, key tile)
using PoolingCase = std::tuple<int, int, int, int, int, int>;
class SentencePoolingCases : public ::testing::TestWithParam<PoolingCase> {};

TEST_P(SentencePoolingCases, MatchesFullSoftmaxReference) {
  const auto [Hq, Hkv, Tq, Tk, tile_q, tile_k] = GetParam();
  torch::manual_seed(1234 + Hq * 7 + Tq);
  const std::int64_t B = 2, D = 16;
  const torch::Tensor q = torch::randn({B, Hq, Tq, D}) * 1.5;
  const torch::Tensor k = torch::randn({B, Hkv, Tk, D}) * 1.5;
  const std::vector<TokenSpan> sentences = uneven_sentences(Tk);
  const ReferencePooling ref = reference_pooling(q, k, sentences);

  SentencePoolingParams params;
  params.query_tile = tile_q;
  params.key_tile = tile_k;
  const torch::Tensor lse = causal_log_sum_exp(q, k, params);
  ASSERT_EQ(lse.scalar_type(), torch::kFloat32);
  EXPECT_LT(max_abs_diff(lse, ref.lse), 1e-5);

  const torch::Tensor sums = sentence_block_sums(q, k, lse, sentences, params);
  const torch::Tensor means = sentence_block_means(q, k, lse, sentences, params);
  ASSERT_EQ(sums.sizes(), ref.sums.sizes());
  ASSERT_EQ(sums.scalar_type(), torch::kFloat32);
  const double sum_error = max_abs_diff(sums, ref.sums), mean_error = max_abs_diff(means, ref.means);
  EXPECT_LT(sum_error, 1e-5);
  EXPECT_LT(mean_error, 1e-5);
  // The reference's own lse gives the same sums.
  EXPECT_LT(max_abs_diff(sentence_block_sums(q, k, ref.lse.to(torch::kFloat32), sentences, params), ref.sums), 1e-5);
  // Strict upper triangle is exactly zero (causal).
  EXPECT_EQ(sums.triu(1).abs().max().item<float>(), 0.0f);
  std::cout << "[ max abs error ] sums " << sum_error << ", means " << mean_error << "\n";
}

std::string pooling_case_name(const ::testing::TestParamInfo<PoolingCase>& info) {
  const auto [hq, hkv, tq, tk, a, b] = info.param;
  return "Hq" + std::to_string(hq) + "_Hkv" + std::to_string(hkv) + "_Tq" + std::to_string(tq) + "_Tk" +
         std::to_string(tk) + "_tile" + std::to_string(a) + "x" + std::to_string(b);
}

INSTANTIATE_TEST_SUITE_P(
    SentencePooling, SentencePoolingCases,
    ::testing::Values(PoolingCase{4, 4, 70, 70, 64, 64},     // MHA, tiles larger than sentences
                      PoolingCase{4, 2, 70, 70, 3, 5},       // GQA 2, tiles smaller than sentences
                      PoolingCase{8, 2, 70, 70, 16, 7},      // GQA 4
                      PoolingCase{4, 1, 70, 70, 1, 1},       // 1×1 tiles
                      PoolingCase{4, 2, 25, 70, 8, 8},       // cached prefix: queries are the last 25 slots
                      PoolingCase{8, 2, 1, 70, 4, 128},      // one query (decoding step)
                      PoolingCase{4, 4, 40, 70, 128, 128}),  // prefix, one tile covers everything
    pooling_case_name);

TEST(SentencePooling, LogSumExpMatchesAttentionOp) {
  torch::manual_seed(7);
  const torch::Tensor q = torch::randn({1, 4, 33, 8}), k = torch::randn({1, 2, 50, 8}), v = torch::randn({1, 2, 50, 8});
  const torch::Tensor expected = attention_with_lse(q, k, v).log_sum_exp;
  SentencePoolingParams params;
  params.query_tile = 5;
  params.key_tile = 6;
  EXPECT_LT((causal_log_sum_exp(q, k, params) - expected).abs().max().item<float>(), 1e-5);
  // The attention op's lse feeds the pooling just as well.
  const std::vector<TokenSpan> sentences{{0, 10}, {10, 30}, {30, 50}};
  const ReferencePooling ref = reference_pooling(q, k, sentences);
  EXPECT_LT(max_abs_diff(sentence_block_means(q, k, expected, sentences, params), ref.means), 1e-5);
}

TEST(SentencePooling, NonContiguousAndLowPrecisionInputs) {
  torch::manual_seed(11);
  // [B, T, H, D] transposed to [B, H, T, D], as the decoder hands them over.
  const torch::Tensor q = torch::randn({1, 30, 4, 8}).transpose(1, 2);
  const torch::Tensor k = torch::randn({1, 30, 2, 8}).transpose(1, 2);
  const std::vector<TokenSpan> sentences{{2, 9}, {9, 10}, {12, 30}};
  const ReferencePooling ref = reference_pooling(q, k, sentences);
  SentencePoolingParams params;
  params.query_tile = 4;
  params.key_tile = 9;
  EXPECT_LT(max_abs_diff(sentence_block_means(q, k, causal_log_sum_exp(q, k, params), sentences, params), ref.means),
            1e-5);
  // bfloat16 inputs are pooled in float32: exact against the reference on the rounded inputs.
  const torch::Tensor qb = q.to(torch::kBFloat16), kb = k.to(torch::kBFloat16);
  const ReferencePooling ref_b = reference_pooling(qb, kb, sentences);
  const torch::Tensor means_b = sentence_block_means(qb, kb, causal_log_sum_exp(qb, kb, params), sentences, params);
  EXPECT_EQ(means_b.scalar_type(), torch::kFloat32);
  EXPECT_LT(max_abs_diff(means_b, ref_b.means), 1e-5);
}

TEST(SentencePooling, CustomScale) {
  torch::manual_seed(5);
  const torch::Tensor q = torch::randn({1, 2, 20, 4}), k = torch::randn({1, 2, 20, 4});
  SentencePoolingParams params;
  params.scale = 1.0;  // twice the default 1/sqrt(4): the reference sees q * 2 at the default scale
  const std::vector<TokenSpan> sentences{{0, 7}, {7, 20}};
  const ReferencePooling ref = reference_pooling(q * 2, k, sentences);
  EXPECT_LT(max_abs_diff(sentence_block_sums(q, k, causal_log_sum_exp(q, k, params), sentences, params), ref.sums),
            1e-5);
}

// ---------------------------------------------------------------------------
// Suppression / boost control (attention.h's rule) vs the reference with the
// same regions applied to the full score matrix.
// ---------------------------------------------------------------------------

// Three lanes with different regions for layer 0 and one region for layer 1:
//  lane 0: keys [10, 20) hidden from every query, every head;
//  lane 1: two overlapping boosts (they add up; one only on heads 0 and 3) and
//          a suppression on head 3 inside the boosted block (suppression wins);
//  lane 2: query slots [40, 46) see only suppressed keys (uniform rows), and
//          a key span reaching past the sequence (clipped);
//  layer 1 only: lane 0 loses every key (ignored at layer 0).
AttentionControl mixed_control(std::int64_t Tk) {
  AttentionControl control;
  control.regions.push_back(AttentionRegion::suppress(0, {0, Tk}, {10, 20}));
  AttentionRegion boost = AttentionRegion::boost(1, {30, 50}, {5, 15}, 2.5);
  boost.heads = {0, 3};
  control.regions.push_back(boost);
  control.regions.push_back(AttentionRegion::boost(1, {0, Tk}, {0, 8}, -1.0));
  AttentionRegion hidden = AttentionRegion::suppress(1, {40, Tk}, {6, 12});
  hidden.heads = {3};
  control.regions.push_back(hidden);
  control.regions.push_back(AttentionRegion::suppress(2, {40, 46}, {0, Tk + 5}));
  AttentionRegion other_layer = AttentionRegion::suppress(0, {0, Tk}, {0, Tk});
  other_layer.layers = {1};
  control.regions.push_back(other_layer);
  return control;
}

// Contiguous sentences over [0, 60) (every token in one), so every present
// query row contributes exactly 1 to its sentence's row of sums.
const std::vector<TokenSpan> kCovering{{0, 7}, {7, 20}, {20, 25}, {25, 40}, {40, 46}, {46, 53}, {53, 60}};

// |a - b| <= tol · max(1, |b|) everywhere: an lse of an all-suppressed row is
// about the dtype's lowest value, where float32 has no absolute 1e-5.
bool lse_close(const torch::Tensor& a, const torch::Tensor& b, double tol = 1e-5) {
  const torch::Tensor a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  return ((a64 - b64).abs() <= b64.abs().clamp_min(1.0) * tol).all().item<bool>();
}

// Σ_j sums[b, h, i, j] must be the number of query rows of sentence i present.
double row_total_error(const torch::Tensor& sums, const std::vector<TokenSpan>& sentences, std::int64_t first) {
  torch::Tensor rows = torch::empty({static_cast<std::int64_t>(sentences.size())}, torch::kFloat32);
  for (std::size_t i = 0; i < sentences.size(); ++i)
    rows[static_cast<std::int64_t>(i)] =
        static_cast<float>(std::max<std::int64_t>(0, sentences[i].end - std::max(sentences[i].begin, first)));
  return (sums.sum(-1) - rows).abs().max().item<double>();
}

// (query heads, kv heads, Tq, query tile, key tile, dtype); Tk = 60, B = 3.
using ControlCase = std::tuple<int, int, int, int, int, torch::ScalarType>;
class SentencePoolingControlCases : public ::testing::TestWithParam<ControlCase> {};

TEST_P(SentencePoolingControlCases, MatchesReferenceAndAttentionOp) {
  const auto [Hq, Hkv, Tq, tile_q, tile_k, dtype] = GetParam();
  const std::int64_t B = 3, Tk = 60, D = 16, first = Tk - Tq;
  torch::manual_seed(99 + Hq + Tq);
  const torch::Tensor q = (torch::randn({B, Hq, Tq, D}) * 1.5).to(dtype);
  const torch::Tensor k = (torch::randn({B, Hkv, Tk, D}) * 1.5).to(dtype);
  const torch::Tensor v = torch::randn({B, Hkv, Tk, D}).to(dtype);
  const AttentionControl control = mixed_control(Tk);

  for (const std::int64_t layer : {0, 1}) {
    SCOPED_TRACE("layer " + std::to_string(layer));
    SentencePoolingParams params;
    params.query_tile = tile_q;
    params.key_tile = tile_k;
    params.control = &control;
    params.layer = layer;
    const ReferencePooling ref = reference_pooling(q, k, kCovering, &control, layer);

    // The lse is the attention op's, all-suppressed rows included.
    const torch::Tensor lse = causal_log_sum_exp(q, k, params);
    AttentionParams attention_params;
    attention_params.control = &control;
    attention_params.layer = layer;
    const torch::Tensor op_lse = attention_with_lse(q, k, v, attention_params).log_sum_exp;
    EXPECT_TRUE(lse_close(lse, op_lse)) << (lse - op_lse).abs().max().item<double>();
    EXPECT_TRUE(lse_close(lse, ref.lse));
    // The control changes the lse of lane 0 (keys hidden), so it was applied.
    const torch::Tensor plain_lse = causal_log_sum_exp(q, k, {.query_tile = tile_q, .key_tile = tile_k});
    EXPECT_GT((lse[0] - plain_lse[0]).abs().max().item<float>(), 1e-3);

    const torch::Tensor sums = sentence_block_sums(q, k, lse, kCovering, params);
    const double error = max_abs_diff(sums, ref.sums);
    EXPECT_LT(error, 1e-5);
    EXPECT_LT(max_abs_diff(sentence_block_sums(q, k, op_lse, kCovering, params), ref.sums), 1e-5);
    EXPECT_LT(max_abs_diff(sentence_block_means(q, k, lse, kCovering, params), ref.means), 1e-5);
    // Rows of P still sum to 1, uniform all-suppressed rows included.
    EXPECT_LT(row_total_error(sums, kCovering, first), 1e-4);
    std::cout << "[ control layer " << layer << " ] max abs error of the sums " << error << "\n";
  }
}

std::string control_case_name(const ::testing::TestParamInfo<ControlCase>& info) {
  const auto [hq, hkv, tq, a, b, dtype] = info.param;
  return "Hq" + std::to_string(hq) + "_Hkv" + std::to_string(hkv) + "_Tq" + std::to_string(tq) + "_tile" +
         std::to_string(a) + "x" + std::to_string(b) + "_" + std::string(c10::toString(dtype));
}

INSTANTIATE_TEST_SUITE_P(
    SentencePoolingControl, SentencePoolingControlCases,
    ::testing::Values(ControlCase{4, 4, 60, 7, 5, torch::kFloat32},     // MHA, tiles smaller than sentences
                      ControlCase{4, 2, 35, 4, 16, torch::kFloat32},    // GQA 2, cached prefix (first slot 25)
                      ControlCase{8, 2, 60, 64, 64, torch::kFloat32},   // GQA 4, one tile
                      ControlCase{4, 1, 60, 1, 1, torch::kBFloat16},    // 1×1 tiles, bf16 lowest
                      ControlCase{4, 2, 20, 8, 8, torch::kFloat16}),    // fp16: lowest = -65504, prefix
    control_case_name);

// With one-token sentences the block sums ARE the probability matrix: an
// all-suppressed row t must read 1/(t+1) on each visible key (the exp(score −
// lse) shortcut would give 1, because lowest + log(n) rounds to lowest).
TEST(SentencePoolingControl, AllSuppressedRowIsUniform) {
  torch::manual_seed(17);
  const std::int64_t T = 12;
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    const torch::Tensor q = torch::randn({1, 2, T, 8}).to(dtype), k = torch::randn({1, 1, T, 8}).to(dtype);
    AttentionControl control;
    control.regions.push_back(AttentionRegion::suppress(0, {5, 8}, {0, T}));
    SentencePoolingParams params;
    params.control = &control;
    params.query_tile = 3;
    params.key_tile = 4;
    std::vector<TokenSpan> tokens;
    for (std::int64_t t = 0; t < T; ++t) tokens.push_back({t, t + 1});
    // [1, 2, T, T]: the probability matrix itself.
    const torch::Tensor p = sentence_block_sums(q, k, causal_log_sum_exp(q, k, params), tokens, params);
    for (std::int64_t t = 5; t < 8; ++t) {
      const torch::Tensor expected = torch::zeros({2, T}).index_fill_(1, torch::arange(t + 1), 1.0 / (t + 1));
      EXPECT_LT((p[0].select(1, t) - expected).abs().max().item<float>(), 1e-6) << "row " << t;
    }
    EXPECT_LT((p.sum(-1) - 1).abs().max().item<float>(), 1e-5);
    EXPECT_LT(max_abs_diff(p, reference_pooling(q, k, tokens, &control).sums), 1e-5);
  }
}

// Sliding windows: the lse, sums and means of the weights a windowed layer
// computes, plain and controlled (rows whose whole window is suppressed are
// uniform over the window), over tiles, prefixes and windows wider than T.
TEST(SentencePoolingWindow, MatchesReferenceAndAttentionOp) {
  const std::int64_t B = 3, Tk = 60, D = 16;
  for (const std::int64_t Tq : {60, 35, 1})
    for (const std::int64_t window : {1, 4, 13, 100})
      for (const auto [tile_q, tile_k] : {std::pair<int, int>{7, 5}, {64, 64}, {1, 3}}) {
        SCOPED_TRACE(::testing::Message() << "Tq " << Tq << ", window " << window << ", tiles " << tile_q << "x"
                                          << tile_k);
        torch::manual_seed(5 + Tq + window);
        const torch::Tensor q = torch::randn({B, 4, Tq, D}) * 1.5, k = torch::randn({B, 2, Tk, D}) * 1.5;
        const torch::Tensor v = torch::randn({B, 2, Tk, D});
        const AttentionControl control = mixed_control(Tk);
        for (const AttentionControl* applied : {static_cast<const AttentionControl*>(nullptr), &control}) {
          SentencePoolingParams params;
          params.query_tile = tile_q;
          params.key_tile = tile_k;
          params.control = applied;
          params.sliding_window = window;
          const ReferencePooling ref = reference_pooling(q, k, kCovering, applied, 0, window);
          const torch::Tensor lse = causal_log_sum_exp(q, k, params);
          EXPECT_TRUE(lse_close(lse, ref.lse));
          AttentionParams op;
          op.control = applied;
          op.sliding_window = window;
          EXPECT_TRUE(lse_close(lse, attention_with_lse(q, k, v, op).log_sum_exp));
          const torch::Tensor sums = sentence_block_sums(q, k, lse, kCovering, params);
          EXPECT_LT(max_abs_diff(sums, ref.sums), 1e-5);
          EXPECT_LT(max_abs_diff(sentence_block_means(q, k, lse, kCovering, params), ref.means), 1e-5);
          EXPECT_LT(row_total_error(sums, kCovering, Tk - Tq), 1e-4);
        }
      }
  // One-token sentences: a row whose W keys are all suppressed reads 1/W on each of them.
  const std::int64_t T = 12, W = 3;
  const torch::Tensor q = torch::randn({1, 2, T, 8}), k = torch::randn({1, 1, T, 8});
  AttentionControl control;
  control.regions.push_back(AttentionRegion::suppress(0, {6, 9}, {0, T}));
  SentencePoolingParams params;
  params.control = &control;
  params.sliding_window = W;
  params.query_tile = 5;
  std::vector<TokenSpan> tokens;
  for (std::int64_t t = 0; t < T; ++t) tokens.push_back({t, t + 1});
  const torch::Tensor p = sentence_block_sums(q, k, causal_log_sum_exp(q, k, params), tokens, params);
  for (std::int64_t t = 6; t < 9; ++t) {
    const torch::Tensor expected = torch::zeros({2, T}).index_fill_(1, torch::arange(t - W + 1, t + 1), 1.0 / W);
    EXPECT_LT((p[0].select(1, t) - expected).abs().max().item<float>(), 1e-6) << "row " << t;
  }
  params.sliding_window = -2;
  EXPECT_THROW(causal_log_sum_exp(q, k, params), Error);
}

TEST(SentencePoolingControl, RejectsBadControl) {
  const torch::Tensor q = torch::randn({2, 4, 20, 8}), k = torch::randn({2, 2, 20, 8});
  const std::vector<TokenSpan> ok{{0, 10}, {10, 20}};
  const auto run = [&](const AttentionControl& control) {
    SentencePoolingParams params;
    params.control = &control;
    const torch::Tensor lse = causal_log_sum_exp(q, k, params);
    return sentence_block_sums(q, k, lse, ok, params);
  };
  AttentionControl lane;
  lane.regions.push_back(AttentionRegion::suppress(2, {0, 20}, {0, 5}));  // lane 2 of 2
  EXPECT_THROW(run(lane), Error);
  AttentionControl head;
  head.regions.push_back(AttentionRegion::suppress(0, {0, 20}, {0, 5}));
  head.regions.back().heads = {4};  // 4 query heads
  EXPECT_THROW(run(head), Error);
  AttentionControl inverted;
  inverted.regions.push_back(AttentionRegion::suppress(0, {0, 20}, {5, 3}));
  EXPECT_THROW(run(inverted), Error);
  AttentionControl beta;
  beta.regions.push_back(AttentionRegion::boost(0, {0, 20}, {0, 5}, std::numeric_limits<double>::infinity()));
  EXPECT_THROW(run(beta), Error);
  try {
    run(lane);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("causal_log_sum_exp"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("lane 2"), std::string::npos) << e.what();
  }
  // An empty control is plain causal attention.
  const AttentionControl empty;
  const torch::Tensor lse = causal_log_sum_exp(q, k);
  EXPECT_TRUE(torch::equal(run(empty), sentence_block_sums(q, k, lse, ok)));
}

// Every query row's probabilities add up to 1, so with sentences covering
// every token, Σ_j sums[i, j] = |i| exactly — a check that needs no T×T
// reference, used at T = 4096 (S ≈ 100) where the reference would be the
// T×T matrix we avoid. Peak resident memory growth is checked against a
// single T×T float32 matrix (64 MiB) where Linux lets us reset the peak.
TEST(SentencePooling, LongSequenceStaysBelowTxT) {
  torch::manual_seed(3);
  const std::int64_t T = 4096, H = 4, Hkv = 2, D = 16;
  const torch::Tensor q = torch::randn({1, H, T, D}), k = torch::randn({1, Hkv, T, D});
  std::vector<TokenSpan> sentences;
  for (std::int64_t at = 0; at < T;) {  // 41 tokens a sentence (the last one shorter): S = 100
    const std::int64_t end = std::min(T, at + 41);
    sentences.push_back({at, end});
    at = end;
  }
  ASSERT_EQ(sentences.size(), 100u);

  const auto read_kib = [](const char* field) -> std::int64_t {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind(field, 0) == 0) return std::stoll(line.substr(std::string(field).size()));
    return -1;
  };
  bool peak_reset = false;
  {
    std::ofstream clear("/proc/self/clear_refs");
    if (clear) {
      clear << "5";
      clear.flush();
      peak_reset = static_cast<bool>(clear);
    }
  }
  const std::int64_t rss_before = read_kib("VmRSS:");

  const auto start = std::chrono::steady_clock::now();
  const torch::Tensor lse = causal_log_sum_exp(q, k);
  const torch::Tensor sums = sentence_block_sums(q, k, lse, sentences);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::int64_t peak = read_kib("VmHWM:");

  torch::Tensor sizes = torch::empty({static_cast<std::int64_t>(sentences.size())});
  for (std::size_t i = 0; i < sentences.size(); ++i) sizes[static_cast<std::int64_t>(i)] = sentences[i].size();
  const torch::Tensor row_totals = sums.sum(-1);  // [1, H, S]
  EXPECT_LT((row_totals - sizes).abs().max().item<float>(), 1e-3);
  EXPECT_EQ(sums.triu(1).abs().max().item<float>(), 0.0f);

  const std::int64_t txt_kib = T * T * 4 / 1024;
  std::cout << "[ T=4096 S=100 H=4 ] lse + block sums in " << seconds << " s";
  if (peak_reset && peak > 0 && rss_before > 0) {
    std::cout << ", peak RSS growth " << (peak - rss_before) << " KiB (one T×T float32 = " << txt_kib << " KiB)";
    EXPECT_LT(peak - rss_before, txt_kib / 2);
  }
  std::cout << "\n";
}

TEST(SentencePooling, RejectsBadInput) {
  const torch::Tensor q = torch::randn({1, 4, 20, 8}), k = torch::randn({1, 2, 20, 8});
  const torch::Tensor lse = causal_log_sum_exp(q, k);
  const auto sums = [&](const std::vector<TokenSpan>& spans) { return sentence_block_sums(q, k, lse, spans); };
  EXPECT_THROW(sums({}), Error);                      // no sentences
  EXPECT_THROW(sums({{0, 5}, {5, 5}}), Error);        // empty span
  EXPECT_THROW(sums({{-1, 5}}), Error);               // negative
  EXPECT_THROW(sums({{6, 4}}), Error);                // inverted
  EXPECT_THROW(sums({{5, 10}, {0, 5}}), Error);       // out of order
  EXPECT_THROW(sums({{0, 6}, {5, 10}}), Error);       // overlapping
  EXPECT_THROW(sums({{0, 10}, {10, 21}}), Error);     // past the end
  EXPECT_NO_THROW(sums({{0, 10}, {12, 20}}));
  try {
    sums({{0, 6}, {5, 10}});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sentence 1"), std::string::npos) << e.what();
  }

  const std::vector<TokenSpan> ok{{0, 10}, {10, 20}};
  SentencePoolingParams zero_tile;
  zero_tile.query_tile = 0;
  EXPECT_THROW(sentence_block_sums(q, k, lse, ok, zero_tile), Error);
  EXPECT_THROW(causal_log_sum_exp(q, k, zero_tile), Error);
  EXPECT_THROW(sentence_block_sums(q, k, lse.narrow(2, 0, 19), ok), Error);           // lse shape
  EXPECT_THROW(sentence_block_sums(q, k, torch::Tensor(), ok), Error);                // undefined lse
  EXPECT_THROW(sentence_block_sums(q, torch::randn({1, 3, 20, 8}), lse, ok), Error);  // 4 heads over 3
  EXPECT_THROW(sentence_block_sums(q, torch::randn({1, 2, 20, 4}), lse, ok), Error);  // head dim
  EXPECT_THROW(sentence_block_sums(q, torch::randn({2, 2, 20, 8}), lse, ok), Error);  // batch
  EXPECT_THROW(sentence_block_sums(q, k.narrow(2, 0, 10), lse, {{0, 5}}), Error);     // Tq > Tk
  EXPECT_THROW(sentence_block_sums(q[0], k, lse, ok), Error);                          // rank
  EXPECT_THROW(sentence_block_sums(q.to(torch::kInt64), k.to(torch::kInt64), lse, ok), Error);
  EXPECT_THROW(sentence_block_sums(q, k.to(torch::kFloat64), lse, ok), Error);
}

// ---------------------------------------------------------------------------
// sentence_attention on the tiny checkpoints vs the reference on the
// callback's own q and k.
// ---------------------------------------------------------------------------

std::string fixture_dir(const std::string& name) { return anchors::testing::data_dir() + "/tiny_models/" + name; }

class SentenceAttentionModels : public ::testing::TestWithParam<std::string> {};

TEST_P(SentenceAttentionModels, MatchesReferenceOnCallbackQueriesAndKeys) {
  const auto model = CausalLM::load(fixture_dir(GetParam()));
  const ModelConfig& config = model->config();
  torch::manual_seed(21);
  const std::int64_t T = 90;
  const torch::Tensor random_ids = torch::randint(config.vocab_size, {T}, torch::kInt64);
  const std::vector<std::int64_t> ids(random_ids.data_ptr<std::int64_t>(), random_ids.data_ptr<std::int64_t>() + T);
  const std::vector<TokenSpan> spans{{0, 9}, {9, 10}, {10, 31}, {33, 40}, {40, 77}, {77, 88}};

  SentencePoolingParams params;
  params.query_tile = 16;
  params.key_tile = 8;
  const torch::Tensor got = sentence_attention(*model, ids, spans, std::nullopt, params);
  ASSERT_EQ(got.sizes(), (std::vector<std::int64_t>{config.num_hidden_layers, config.num_attention_heads, 6, 6}));
  ASSERT_EQ(got.scalar_type(), torch::kFloat32);

  // The same forward pass, q and k kept for the explicit reference.
  std::vector<torch::Tensor> queries, keys;
  const torch::Tensor id_tensor = torch::tensor(ids, torch::kInt64).view({1, T});
  model->hidden_states(id_tensor, torch::arange(T), nullptr, nullptr,
                       [&](std::int64_t, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor&) {
                         queries.push_back(q.clone());
                         keys.push_back(k.clone());
                       });
  ASSERT_EQ(static_cast<std::int64_t>(queries.size()), config.num_hidden_layers);
  double worst = 0;
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    // The weights the layer computes: within its sliding window, if it has one.
    const ReferencePooling ref = reference_pooling(queries[l], keys[l], spans, nullptr, 0, config.sliding_window(l));
    worst = std::max(worst, max_abs_diff(got[l], ref.means[0]));
  }
  EXPECT_LT(worst, 1e-5);
  std::cout << "[ " << GetParam() << " ] max abs error of the block means " << worst << "\n";

  // A layer subset, in the order asked, with repeats; default tiles.
  const torch::Tensor subset = sentence_attention(*model, ids, spans, std::vector<std::int64_t>{1, 0, 1});
  ASSERT_EQ(subset.size(0), 3);
  EXPECT_LT((subset[0] - got[1]).abs().max().item<float>(), 1e-6);
  EXPECT_LT((subset[1] - got[0]).abs().max().item<float>(), 1e-6);
  EXPECT_TRUE(torch::equal(subset[0], subset[2]));
}

INSTANTIATE_TEST_SUITE_P(SentenceAttention, SentenceAttentionModels,
                         ::testing::Values("qwen2_bias_tied", "llama_rope_llama3_gqa2", "qwen3_gqa4_head16_tied",
                                           "olmo3_window4_yarn"));

TEST(SentenceAttention, RejectsBadInput) {
  const auto model = CausalLM::load(fixture_dir("llama_rope_llama3_gqa2"));
  const std::int64_t max_positions = model->config().max_position_embeddings;
  const std::vector<std::int64_t> ids(20, 3);
  const std::vector<TokenSpan> ok{{0, 10}, {10, 20}};
  EXPECT_NO_THROW(sentence_attention(*model, ids, ok));
  EXPECT_THROW(sentence_attention(*model, {}, ok), Error);                               // empty trace
  EXPECT_THROW(sentence_attention(*model, ids, {}), Error);                              // no sentences
  EXPECT_THROW(sentence_attention(*model, ids, {{10, 20}, {0, 10}}), Error);             // out of order
  EXPECT_THROW(sentence_attention(*model, ids, {{0, 11}, {10, 20}}), Error);             // overlapping
  EXPECT_THROW(sentence_attention(*model, ids, {{0, 10}, {10, 21}}), Error);             // past the end
  EXPECT_THROW(sentence_attention(*model, ids, {{0, 0}}), Error);                        // empty span
  EXPECT_THROW(sentence_attention(*model, ids, ok, std::vector<std::int64_t>{}), Error);   // no layers
  EXPECT_THROW(sentence_attention(*model, ids, ok, std::vector<std::int64_t>{-1}), Error);
  EXPECT_THROW(sentence_attention(*model, ids, ok, std::vector<std::int64_t>{0, 2}), Error);
  const std::vector<std::int64_t> too_long(static_cast<std::size_t>(max_positions + 1), 3);
  EXPECT_THROW(sentence_attention(*model, too_long, {{0, 10}}), Error);  // beyond max positions
  EXPECT_THROW(sentence_attention(*model, std::vector<std::int64_t>{-1, 2}, {{0, 2}}), Error);  // bad id
}

}  // namespace
}  // namespace anchors::model
