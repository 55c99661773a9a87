// Band statistics (head span, WAAD, FAI) against an explicit float64
// reference: the full T×T softmax, then the three sums by loops over (t, s)
// straight from their definitions in band_statistics.h. GQA, cached prefixes
// (Tq < Tk), windows wider than the sequence, the band-only path of query tiles
// before span_first_slot, tiles from 1×1 up, low precision and bad input.
#include "anchors/model/band_statistics.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "anchors/core/error.h"
#include "anchors/core/span.h"
#include "anchors/model/attention.h"
#include "anchors/model/sentence_pooling.h"

namespace anchors::model {
namespace {

struct ReferenceBand {
  torch::Tensor lse, span, waad, fai;  // float64
};

ReferenceBand reference_band(const torch::Tensor& q, const torch::Tensor& k, const BandStatisticsParams& params) {
  const auto q64 = q.to(torch::kFloat64), k64 = k.to(torch::kFloat64);
  const std::int64_t B = q.size(0), Hq = q.size(1), Tq = q.size(2), D = q.size(3);
  const std::int64_t Hkv = k.size(1), Tk = k.size(2), group = Hq / Hkv, first = Tk - Tq;
  const double scale = params.scale.value_or(1.0 / std::sqrt(static_cast<double>(D)));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::int64_t W = params.waad_window, near = params.fai_near, far = params.fai_far;
  ReferenceBand ref;
  ref.lse = torch::zeros({B, Hq, Tq}, torch::kFloat64);
  ref.span = torch::zeros({B, Hq}, torch::kFloat64);
  ref.waad = torch::zeros({B, Hq, Tq}, torch::kFloat64);
  ref.fai = torch::zeros({B, Hq, Tk}, torch::kFloat64);
  torch::Tensor invisible = torch::ones({Tq, Tk}, torch::kBool).triu(first + 1);
  if (params.sliding_window > 0)  // keys at or before slot - window are outside the window
    invisible.logical_or_(torch::ones({Tq, Tk}, torch::kBool).tril(first - params.sliding_window));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < Hq; ++h) {
      const torch::Tensor scores =
          torch::matmul(q64[b][h], k64[b][h / group].t()).mul(scale).masked_fill(invisible, -INFINITY);
      ref.lse[b][h].copy_(torch::logsumexp(scores, -1));
      const torch::Tensor p = torch::softmax(scores, -1);
      const auto P = p.accessor<double, 2>();
      double span_total = 0;
      std::int64_t span_rows = 0;
      for (std::int64_t r = 0; r < Tq; ++r) {
        const std::int64_t t = first + r;
        double distance = 0, windowed = 0;
        for (std::int64_t s = 0; s <= t; ++s) {
          distance += P[r][s] * static_cast<double>(t - s);
          windowed += P[r][s] * static_cast<double>(std::min(t - s, W));
        }
        ref.waad[b][h][r] = windowed;
        if (t >= params.span_first_slot) {
          span_total += distance;
          ++span_rows;
        }
      }
      ref.span[b][h] = span_rows == 0 ? nan : span_total / static_cast<double>(span_rows);
      for (std::int64_t s = 0; s < Tk; ++s) {
        double total = 0;
        std::int64_t rows = 0;
        for (std::int64_t r = 0; r < Tq; ++r) {
          const std::int64_t d = first + r - s;
          if (d < near || d > far) continue;
          total += P[r][s];
          ++rows;
        }
        ref.fai[b][h][s] = rows == 0 ? nan : total / static_cast<double>(rows);
      }
    }
  return ref;
}

// Max |a - b| where both are finite; NaN positions must agree.
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(a64.isnan(), b64.isnan())) << "NaN patterns differ";
  const torch::Tensor finite = a64.isnan().logical_not();
  if (finite.sum().item<std::int64_t>() == 0) return 0.0;
  return (a64.masked_select(finite) - b64.masked_select(finite)).abs().max().item<double>();
}

// Max |a - b| / max(1, |b|) where both are finite. Span and WAAD are
// distances (up to T and W tokens): float32 scores carry a relative error of
// ~1e-7 per probability, so their absolute error grows with the distance and
// 1e-5 is asked of them relative to their size (absolute below 1).
double max_scaled_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor b64 = b.to(torch::kFloat64);
  return max_abs_diff(a.to(torch::kFloat64) / b64.abs().clamp_min(1.0), b64 / b64.abs().clamp_min(1.0));
}

// (Hq, Hkv, Tq, Tk, W, near, far, span_first_slot, query tile, key tile)
using BandCase = std::tuple<int, int, int, int, int, int, int, int, int, int>;
class BandStatisticsCases : public ::testing::TestWithParam<BandCase> {};

TEST_P(BandStatisticsCases, MatchesFullSoftmaxReference) {
  const auto [Hq, Hkv, Tq, Tk, W, near, far, span_first, tile_q, tile_k] = GetParam();
  torch::manual_seed(4321 + Hq * 13 + Tq + W);
  const std::int64_t B = 2, D = 16;
  const torch::Tensor q = torch::randn({B, Hq, Tq, D}) * 1.5, k = torch::randn({B, Hkv, Tk, D}) * 1.5;
  BandStatisticsParams params;
  params.waad_window = W;
  params.fai_near = near;
  params.fai_far = far;
  params.span_first_slot = span_first;
  params.query_tile = tile_q;
  params.key_tile = tile_k;
  const ReferenceBand ref = reference_band(q, k, params);

  const torch::Tensor lse = causal_log_sum_exp(q, k, {.query_tile = tile_q, .key_tile = tile_k});
  const BandStatistics got = band_statistics(q, k, lse, params);
  ASSERT_EQ(got.span.sizes(), (std::vector<std::int64_t>{B, Hq}));
  ASSERT_EQ(got.waad.sizes(), (std::vector<std::int64_t>{B, Hq, Tq}));
  ASSERT_EQ(got.fai.sizes(), (std::vector<std::int64_t>{B, Hq, Tk}));
  for (const auto& t : {got.span, got.waad, got.fai}) EXPECT_EQ(t.scalar_type(), torch::kFloat32);
  const double span_error = max_scaled_diff(got.span, ref.span), waad_error = max_scaled_diff(got.waad, ref.waad),
               fai_error = max_abs_diff(got.fai, ref.fai);
  EXPECT_LT(span_error, 1e-5);
  EXPECT_LT(waad_error, 1e-5);
  EXPECT_LT(fai_error, 1e-5);
  // The reference's own lse gives the same statistics.
  const BandStatistics from_ref_lse = band_statistics(q, k, ref.lse.to(torch::kFloat32), params);
  EXPECT_LT(max_scaled_diff(from_ref_lse.waad, ref.waad), 1e-5);
  EXPECT_LT(max_scaled_diff(from_ref_lse.span, ref.span), 1e-5);
  EXPECT_LT(max_abs_diff(from_ref_lse.fai, ref.fai), 1e-5);
  // WAAD lies in [0, min(W, slot)] and FAI is a mean of probabilities.
  const torch::Tensor slots = torch::arange(Tk - Tq, Tk, torch::kFloat32);
  EXPECT_TRUE((got.waad >= -1e-6).all().item<bool>());
  EXPECT_TRUE((got.waad <= slots.clamp_max(static_cast<double>(W)) + 1e-5).all().item<bool>());
  const torch::Tensor fai_finite = got.fai.masked_select(got.fai.isnan().logical_not());
  if (fai_finite.numel() > 0) EXPECT_LE(fai_finite.max().item<float>(), 1.0f + 1e-6f);
  std::cout << "[ max error ] span (relative) " << span_error << ", waad (relative) " << waad_error << ", fai "
            << fai_error << "\n";
}

std::string band_case_name(const ::testing::TestParamInfo<BandCase>& info) {
  const auto [hq, hkv, tq, tk, w, near, far, first, a, b] = info.param;
  return "Hq" + std::to_string(hq) + "_Hkv" + std::to_string(hkv) + "_Tq" + std::to_string(tq) + "_Tk" +
         std::to_string(tk) + "_W" + std::to_string(w) + "_fai" + std::to_string(near) + "to" + std::to_string(far) +
         "_span" + std::to_string(first) + "_tile" + std::to_string(a) + "x" + std::to_string(b);
}

INSTANTIATE_TEST_SUITE_P(
    BandStatistics, BandStatisticsCases,
    ::testing::Values(BandCase{4, 4, 70, 70, 10, 10, 40, 0, 16, 16},     // MHA, defaults-like windows
                      BandCase{4, 2, 70, 70, 3, 2, 12, 40, 4, 4},        // GQA 2; tiles before slot 40 band-only
                      BandCase{8, 2, 70, 70, 5, 0, 0, 20, 7, 3},         // GQA 4; FAI of the diagonal only
                      BandCase{4, 1, 70, 70, 1, 5, 5, 0, 1, 1},          // W = 1, 1×1 tiles
                      BandCase{4, 2, 25, 70, 8, 3, 30, 0, 8, 8},         // cached prefix: first query slot 45
                      BandCase{4, 2, 25, 70, 8, 3, 30, 60, 8, 8},        // prefix, span from inside the queries
                      BandCase{4, 4, 40, 40, 500, 0, 1000, 0, 128, 128},  // W and far wider than T
                      BandCase{4, 2, 30, 30, 10, 50, 60, 35, 6, 6},      // near beyond T (all NaN FAI), no span rows
                      BandCase{8, 2, 1, 70, 10, 10, 100, 0, 4, 16}),     // one query (decoding step)
    band_case_name);

// A sliding window narrower and wider than the WAAD / FAI bands, with span
// rows and band-only rows, a prefix and small tiles.
TEST(BandStatistics, SlidingWindowMatchesReference) {
  for (const std::int64_t window : {1, 6, 25, 200})
    for (const std::int64_t Tq : {70, 25}) {
      SCOPED_TRACE(::testing::Message() << "window " << window << ", Tq " << Tq);
      torch::manual_seed(77 + window + Tq);
      const std::int64_t Tk = 70;
      const torch::Tensor q = torch::randn({2, 4, Tq, 16}) * 1.5, k = torch::randn({2, 2, Tk, 16}) * 1.5;
      BandStatisticsParams params;
      params.waad_window = 10;
      params.fai_near = 3;
      params.fai_far = 30;
      params.span_first_slot = 50;
      params.query_tile = 8;
      params.key_tile = 6;
      params.sliding_window = window;
      const ReferenceBand ref = reference_band(q, k, params);
      const torch::Tensor lse =
          causal_log_sum_exp(q, k, {.query_tile = 8, .key_tile = 6, .sliding_window = window});
      EXPECT_LT(max_abs_diff(lse, ref.lse), 1e-5);
      const BandStatistics got = band_statistics(q, k, lse, params);
      EXPECT_LT(max_scaled_diff(got.span, ref.span), 1e-5);
      EXPECT_LT(max_scaled_diff(got.waad, ref.waad), 1e-5);
      EXPECT_LT(max_abs_diff(got.fai, ref.fai), 1e-5);
      // No key further back than the window is ever attended: span < window.
      EXPECT_TRUE((got.span < static_cast<double>(window)).all().item<bool>());
    }
}

TEST(BandStatistics, LowPrecisionTransposedInputsAndCustomScale) {
  torch::manual_seed(8);
  // [B, T, H, D] transposed to [B, H, T, D], as the decoder hands them over.
  const torch::Tensor q = torch::randn({1, 50, 4, 8}).transpose(1, 2).to(torch::kBFloat16);
  const torch::Tensor k = torch::randn({1, 50, 2, 8}).transpose(1, 2).to(torch::kBFloat16);
  BandStatisticsParams params;
  params.scale = 0.9;
  params.waad_window = 4;
  params.fai_near = 2;
  params.fai_far = 9;
  params.query_tile = 6;
  params.key_tile = 11;
  const ReferenceBand ref = reference_band(q, k, params);
  const torch::Tensor lse = causal_log_sum_exp(q, k, {.scale = 0.9});
  const BandStatistics got = band_statistics(q, k, lse, params);
  EXPECT_LT(max_scaled_diff(got.span, ref.span), 1e-5);
  EXPECT_LT(max_scaled_diff(got.waad, ref.waad), 1e-5);
  EXPECT_LT(max_abs_diff(got.fai, ref.fai), 1e-5);
  // The attention op's lse works the same.
  const torch::Tensor op_lse = attention_with_lse(q, k, k, {.scale = 0.9}).log_sum_exp;
  EXPECT_LT(max_scaled_diff(band_statistics(q, k, op_lse, params).waad, ref.waad), 1e-5);
}

// A row at slot t spreads its attention over keys 0..t, so a W no smaller than
// T makes WAAD the full attention distance, whose mean over rows is the span.
TEST(BandStatistics, WaadWithWideWindowIsTheSpanDistance) {
  torch::manual_seed(9);
  const torch::Tensor q = torch::randn({1, 2, 64, 8}) * 2, k = torch::randn({1, 2, 64, 8}) * 2;
  const torch::Tensor lse = causal_log_sum_exp(q, k);
  BandStatisticsParams params;
  params.waad_window = 1000;
  params.query_tile = 16;
  params.key_tile = 16;
  const BandStatistics got = band_statistics(q, k, lse, params);
  EXPECT_LT((got.waad.mean(-1) - got.span).abs().max().item<float>(), 1e-4);
  // W = 1: every key except the query's own slot counts 1, i.e. 1 - P[t, t].
  params.waad_window = 1;
  const BandStatistics w1 = band_statistics(q, k, lse, params);
  // FAI with the window [0, 0] is the diagonal P[t, t] itself.
  params.fai_near = 0;
  params.fai_far = 0;
  const BandStatistics diagonal = band_statistics(q, k, lse, params);
  EXPECT_LT((w1.waad - (1 - diagonal.fai)).abs().max().item<float>(), 1e-5);
}

// Tile sizes beyond the sequence behave like one tile (no T-independent
// allocation, no overflow of slot + tile), in the pooling kernels too.
TEST(BandStatistics, HugeTilesAreOneTile) {
  torch::manual_seed(10);
  const torch::Tensor q = torch::randn({1, 2, 30, 8}), k = torch::randn({1, 2, 40, 8});
  const std::int64_t huge = std::numeric_limits<std::int64_t>::max();
  const torch::Tensor lse = causal_log_sum_exp(q, k, {.query_tile = huge, .key_tile = huge});
  EXPECT_TRUE(torch::allclose(lse, causal_log_sum_exp(q, k), 1e-6, 1e-6));
  BandStatisticsParams params;
  params.span_first_slot = 25;
  params.query_tile = huge;
  params.key_tile = huge;
  const BandStatistics got = band_statistics(q, k, lse, params);
  const ReferenceBand ref = reference_band(q, k, params);
  EXPECT_LT(max_scaled_diff(got.waad, ref.waad), 1e-5);
  EXPECT_LT(max_scaled_diff(got.span, ref.span), 1e-5);
  const std::vector<TokenSpan> sentences{{5, 20}, {20, 40}};
  EXPECT_TRUE(torch::allclose(sentence_block_sums(q, k, lse, sentences, {.query_tile = huge, .key_tile = huge}),
                              sentence_block_sums(q, k, lse, sentences), 1e-6, 1e-6));
}

TEST(BandStatistics, RejectsBadInput) {
  const torch::Tensor q = torch::randn({1, 4, 20, 8}), k = torch::randn({1, 2, 20, 8});
  const torch::Tensor lse = causal_log_sum_exp(q, k);
  const auto with = [&](auto edit) {
    BandStatisticsParams params;
    edit(params);
    return band_statistics(q, k, lse, params);
  };
  EXPECT_NO_THROW(with([](BandStatisticsParams&) {}));
  EXPECT_THROW(with([](BandStatisticsParams& p) { p.query_tile = 0; }), Error);
  EXPECT_THROW(with([](BandStatisticsParams& p) { p.key_tile = -3; }), Error);
  EXPECT_THROW(with([](BandStatisticsParams& p) { p.waad_window = 0; }), Error);
  EXPECT_THROW(with([](BandStatisticsParams& p) { p.fai_near = 12; p.fai_far = 11; }), Error);
  EXPECT_THROW(with([](BandStatisticsParams& p) { p.fai_near = -1; }), Error);
  EXPECT_THROW(with([](BandStatisticsParams& p) { p.span_first_slot = -1; }), Error);
  EXPECT_THROW(with([](BandStatisticsParams& p) { p.scale = std::nan(""); }), Error);
  EXPECT_NO_THROW(with([](BandStatisticsParams& p) { p.fai_near = p.fai_far = 3; }));
  try {
    with([](BandStatisticsParams& p) { p.fai_near = 12; p.fai_far = 11; });
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("band_statistics"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fai_near"), std::string::npos) << e.what();
  }
  EXPECT_THROW(band_statistics(q, k, lse.narrow(2, 0, 19)), Error);                    // lse rows
  EXPECT_THROW(band_statistics(q, k, lse.narrow(1, 0, 2)), Error);                     // lse heads
  EXPECT_THROW(band_statistics(q, k, lse[0]), Error);                                  // lse rank
  EXPECT_THROW(band_statistics(q, k, torch::Tensor()), Error);                         // undefined lse
  EXPECT_THROW(band_statistics(q, k, lse.to(torch::kInt64)), Error);                   // integer lse
  EXPECT_THROW(band_statistics(q, torch::randn({1, 3, 20, 8}), lse), Error);           // 4 heads over 3
  EXPECT_THROW(band_statistics(q, k.narrow(2, 0, 10), lse), Error);                    // Tq > Tk
  EXPECT_THROW(band_statistics(q, k.to(torch::kFloat64), lse), Error);                 // dtype
  EXPECT_THROW(band_statistics(q[0], k, lse), Error);                                  // rank
}

}  // namespace
}  // namespace anchors::model
