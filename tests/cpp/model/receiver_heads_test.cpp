// receiver_heads on the random tiny checkpoints against a slow reference
// written here: the full T×T attention of every layer and head from the
// forward pass's own q and k (float64 softmax), block means by loops, vertical
// scores and kurtosis by the textbook formulas, means over the traces.
#include "anchors/model/receiver_heads.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "test_paths.h"
#include "anchors/core/error.h"
#include "anchors/model/causal_lm.h"

namespace anchors::model {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string fixture_dir(const std::string& name) { return anchors::testing::data_dir() + "/tiny_models/" + name; }

TokenTrace random_trace(const CausalLM& model, std::int64_t T, std::vector<TokenSpan> spans, std::uint64_t seed) {
  torch::manual_seed(seed);
  const torch::Tensor ids = torch::randint(model.config().vocab_size, {T}, torch::kInt64);
  TokenTrace trace;
  trace.ids.assign(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + T);
  trace.sentences = std::move(spans);
  return trace;
}

// Block means [L, H, S, S] float64 from the explicit T×T attention of each layer.
torch::Tensor reference_block_means(const CausalLM& model, const TokenTrace& trace) {
  const auto T = static_cast<std::int64_t>(trace.ids.size());
  const auto S = static_cast<std::int64_t>(trace.sentences.size());
  const std::int64_t L = model.config().num_hidden_layers, H = model.config().num_attention_heads;
  torch::Tensor means = torch::zeros({L, H, S, S}, torch::kFloat64);
  const torch::Tensor invisible = torch::ones({T, T}, torch::kBool).triu(1);
  model.hidden_states(torch::tensor(trace.ids, torch::kInt64).view({1, T}), torch::arange(T), nullptr, nullptr,
                      [&](std::int64_t layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor&) {
                        const auto q64 = q.to(torch::kFloat64), k64 = k.to(torch::kFloat64);
                        const std::int64_t group = q.size(1) / k.size(1);
                        const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
                        for (std::int64_t h = 0; h < H; ++h) {
                          const torch::Tensor p = torch::softmax(
                              torch::matmul(q64[0][h], k64[0][h / group].t()).mul(scale).masked_fill(invisible, -INFINITY),
                              -1);
                          for (std::int64_t i = 0; i < S; ++i)
                            for (std::int64_t j = 0; j < S; ++j) {
                              const TokenSpan a = trace.sentences[i], b = trace.sentences[j];
                              means[layer][h][i][j] =
                                  p.slice(0, a.begin, a.end).slice(1, b.begin, b.end).sum().item<double>() /
                                  static_cast<double>(a.size() * b.size());
                            }
                        }
                      });
  return means;
}

std::vector<double> reference_vertical(const torch::Tensor& m, std::size_t proximity_ignore) {
  const auto S = static_cast<std::size_t>(m.size(0));
  std::vector<double> v(S, kNaN);
  for (std::size_t j = 0; j < S; ++j) {
    double sum = 0;
    int count = 0;
    for (std::size_t i = j + proximity_ignore; i < S; ++i, ++count)
      sum += m[static_cast<std::int64_t>(i)][static_cast<std::int64_t>(j)].item<double>();
    if (count > 0) v[j] = sum / count;
  }
  return v;
}

double reference_kurtosis(const std::vector<double>& values) {
  std::vector<double> x;
  for (const double v : values)
    if (!std::isnan(v)) x.push_back(v);
  if (x.size() < 2) return kNaN;
  double mean = 0, m2 = 0, m4 = 0;
  for (const double v : x) mean += v;
  mean /= static_cast<double>(x.size());
  for (const double v : x) {
    m2 += std::pow(v - mean, 2);
    m4 += std::pow(v - mean, 4);
  }
  m2 /= static_cast<double>(x.size());
  m4 /= static_cast<double>(x.size());
  return m4 / (m2 * m2) - 3.0;
}

class ReceiverHeadsModels : public ::testing::TestWithParam<std::string> {};

TEST_P(ReceiverHeadsModels, MatchesSlowReference) {
  const auto model = CausalLM::load(fixture_dir(GetParam()));
  const std::int64_t L = model->config().num_hidden_layers, H = model->config().num_attention_heads;
  // Two traces of different lengths and sentence counts, with gaps between sentences.
  const std::vector<TokenTrace> traces{
      random_trace(*model, 60, {{0, 5}, {5, 12}, {12, 13}, {15, 22}, {22, 30}, {30, 38}, {40, 47}, {47, 55}, {55, 60}},
                   3),
      random_trace(*model, 48, {{2, 8}, {8, 15}, {15, 20}, {20, 27}, {27, 33}, {33, 40}, {40, 46}}, 4)};
  ReceiverHeadsOptions options;
  options.top_k = 3;
  options.proximity_ignore = 2;
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  RunControl control;
  control.progress = [&](std::size_t done, std::size_t total, const std::string& unit) {
    EXPECT_EQ(unit, "traces");
    calls.push_back({done, total});
  };
  const ReceiverHeadsResult got = receiver_heads(*model, traces, options, control);
  EXPECT_EQ(calls, (std::vector<std::pair<std::size_t, std::size_t>>{{1, 2}, {2, 2}}));

  // The reference.
  Matrix kurt_sum(L, H, 0.0);
  std::vector<std::vector<std::vector<double>>> verticals;  // [trace][layer*H + head][S]
  for (const TokenTrace& trace : traces) {
    const torch::Tensor means = reference_block_means(*model, trace);
    auto& per_head = verticals.emplace_back();
    for (std::int64_t l = 0; l < L; ++l)
      for (std::int64_t h = 0; h < H; ++h) {
        per_head.push_back(reference_vertical(means[l][h], options.proximity_ignore));
        kurt_sum(l, h) += reference_kurtosis(per_head.back()) / static_cast<double>(traces.size());
      }
  }

  ASSERT_EQ(got.kurtosis.rows, static_cast<std::size_t>(L));
  ASSERT_EQ(got.kurtosis.cols, static_cast<std::size_t>(H));
  ASSERT_EQ(got.vertical.size(), traces.size());
  double worst_v = 0, worst_k = 0;
  for (std::size_t n = 0; n < traces.size(); ++n) {
    const std::size_t S = traces[n].sentences.size();
    ASSERT_EQ(got.vertical[n].rows, static_cast<std::size_t>(L * H));
    ASSERT_EQ(got.vertical[n].cols, S);
    for (std::size_t row = 0; row < static_cast<std::size_t>(L * H); ++row)
      for (std::size_t j = 0; j < S; ++j) {
        const double want = verticals[n][row][j], have = got.vertical[n](row, j);
        ASSERT_EQ(std::isnan(want), std::isnan(have)) << "trace " << n << " row " << row << " sentence " << j;
        if (!std::isnan(want)) worst_v = std::max(worst_v, std::abs(want - have));
      }
  }
  for (std::size_t i = 0; i < kurt_sum.data.size(); ++i)
    worst_k = std::max(worst_k, std::abs(kurt_sum.data[i] - got.kurtosis.data[i]) / std::max(1.0, std::abs(kurt_sum.data[i])));
  EXPECT_LT(worst_v, 1e-6);
  EXPECT_LT(worst_k, 1e-3);  // kurtosis amplifies the float32 block means' rounding
  std::cout << "[ " << GetParam() << " ] max abs error: vertical " << worst_v << ", kurtosis (relative) " << worst_k
            << "\n";

  // Top 3 of layer 1 (layer 0 excluded) by the reference kurtosis, highest first.
  ASSERT_EQ(got.heads.size(), 3u);
  for (std::size_t r = 0; r < got.heads.size(); ++r) {
    EXPECT_EQ(got.heads[r].layer, 1);
    EXPECT_EQ(got.heads[r].kurtosis, got.kurtosis(1, static_cast<std::size_t>(got.heads[r].head)));
    if (r > 0) EXPECT_GE(got.heads[r - 1].kurtosis, got.heads[r].kurtosis);
  }
  std::vector<double> layer1;
  for (std::int64_t h = 0; h < H; ++h) layer1.push_back(kurt_sum(1, h));
  std::vector<double> sorted = layer1;
  std::sort(sorted.rbegin(), sorted.rend());
  for (std::size_t r = 0; r < 3; ++r) EXPECT_NEAR(got.heads[r].kurtosis, sorted[r], 1e-3 * std::max(1.0, std::abs(sorted[r])));

  // Sentence scores: mean of v over the receiver heads; NaN exactly for the last proximity_ignore sentences.
  ASSERT_EQ(got.sentence_scores.size(), traces.size());
  for (std::size_t n = 0; n < traces.size(); ++n) {
    const std::size_t S = traces[n].sentences.size();
    ASSERT_EQ(got.sentence_scores[n].size(), S);
    for (std::size_t j = 0; j < S; ++j) {
      if (j + options.proximity_ignore >= S) {
        EXPECT_TRUE(std::isnan(got.sentence_scores[n][j]));
        continue;
      }
      double want = 0;
      for (const ReceiverHead& h : got.heads) want += verticals[n][h.layer * H + h.head][j] / 3.0;
      EXPECT_NEAR(got.sentence_scores[n][j], want, 1e-6);
    }
  }

  // User-given heads replace the selection (layer 0 allowed); kurtosis filled in.
  ReceiverHeadsOptions user = options;
  user.heads = {{0, 2}, {1, 0}};
  const ReceiverHeadsResult mine = receiver_heads(*model, traces, user);
  ASSERT_EQ(mine.heads.size(), 2u);
  EXPECT_EQ(mine.heads[0].layer, 0);
  EXPECT_EQ(mine.heads[0].head, 2);
  EXPECT_EQ(mine.heads[0].kurtosis, got.kurtosis(0, 2));
  EXPECT_EQ(mine.heads[1].kurtosis, got.kurtosis(1, 0));
  for (std::size_t j = 0; j + options.proximity_ignore < traces[0].sentences.size(); ++j)
    EXPECT_NEAR(mine.sentence_scores[0][j], (got.vertical[0](2, j) + got.vertical[0](H, j)) / 2, 1e-12);

  // Layer 0 allowed in the selection: top_k beyond L*H gives every head with a kurtosis.
  ReceiverHeadsOptions all = options;
  all.top_k = 1000;
  all.exclude_layer0 = false;
  EXPECT_EQ(receiver_heads(*model, traces, all).heads.size(), static_cast<std::size_t>(L * H));
}

INSTANTIATE_TEST_SUITE_P(ReceiverHeads, ReceiverHeadsModels,
                         ::testing::Values("qwen2_bias_tied", "llama_rope_llama3_gqa2", "qwen3_gqa4_head16_tied",
                                           "llama_linear_bias_mha_tied"));

TEST(ReceiverHeads, KurtosisIsMeanOverTracesSkippingNaN) {
  const auto model = CausalLM::load(fixture_dir("qwen2_bias_tied"));
  const TokenTrace a = random_trace(*model, 40, {{0, 5}, {5, 10}, {10, 15}, {15, 20}, {20, 25}, {25, 30}, {30, 40}}, 7);
  const TokenTrace b = random_trace(*model, 44, {{0, 6}, {6, 12}, {12, 18}, {18, 24}, {24, 30}, {30, 36}, {36, 44}}, 8);
  const TokenTrace tiny = random_trace(*model, 10, {{0, 5}, {5, 10}}, 9);  // too short: every kurtosis NaN
  ReceiverHeadsOptions options;
  options.proximity_ignore = 3;
  const auto ra = receiver_heads(*model, {a}, options), rb = receiver_heads(*model, {b}, options);
  const auto both = receiver_heads(*model, {a, tiny, b}, options);
  for (std::size_t i = 0; i < both.kurtosis.data.size(); ++i)
    EXPECT_NEAR(both.kurtosis.data[i], (ra.kurtosis.data[i] + rb.kurtosis.data[i]) / 2, 1e-12);
  ASSERT_EQ(both.sentence_scores.size(), 3u);
  EXPECT_TRUE(std::isnan(both.sentence_scores[1][0]) && std::isnan(both.sentence_scores[1][1]));
  // Only short traces: nothing to select, but user heads still work.
  EXPECT_THROW(receiver_heads(*model, {tiny}, options), Error);
  options.heads = {{1, 1}};
  const auto user = receiver_heads(*model, {tiny}, options);
  EXPECT_TRUE(std::isnan(user.heads[0].kurtosis));
}

TEST(ReceiverHeads, RejectsBadInput) {
  const auto model = CausalLM::load(fixture_dir("llama_rope_llama3_gqa2"));
  const TokenTrace ok = random_trace(*model, 30, {{0, 5}, {5, 10}, {10, 15}, {15, 20}, {20, 25}, {25, 30}}, 1);
  EXPECT_NO_THROW(receiver_heads(*model, {ok}));
  EXPECT_THROW(receiver_heads(*model, {}), Error);  // no traces
  ReceiverHeadsOptions zero;
  zero.top_k = 0;
  EXPECT_THROW(receiver_heads(*model, {ok}, zero), Error);
  for (const HeadIndex bad : {HeadIndex{2, 0}, HeadIndex{-1, 0}, HeadIndex{0, 4}, HeadIndex{1, -1}}) {
    ReceiverHeadsOptions o;
    o.heads = {bad};
    EXPECT_THROW(receiver_heads(*model, {ok}, o), Error) << bad.layer << ":" << bad.head;
  }
  ReceiverHeadsOptions twice;
  twice.heads = {{1, 1}, {1, 1}};
  EXPECT_THROW(receiver_heads(*model, {ok}, twice), Error);

  TokenTrace empty_ids = ok;
  empty_ids.ids.clear();
  TokenTrace no_sentences = ok;
  no_sentences.sentences.clear();
  TokenTrace overlapping = ok;
  overlapping.sentences = {{0, 6}, {5, 10}};
  TokenTrace past_end = ok;
  past_end.sentences = {{0, 10}, {10, 31}};
  TokenTrace bad_id = ok;
  bad_id.ids[3] = model->config().vocab_size;
  TokenTrace too_long = ok;
  too_long.ids.assign(static_cast<std::size_t>(model->config().max_position_embeddings + 1), 1);
  for (const TokenTrace& bad : {empty_ids, no_sentences, overlapping, past_end, bad_id, too_long}) {
    // The bad trace is reported even after a good one, before any forward pass.
    try {
      receiver_heads(*model, {ok, bad});
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("trace 1"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace anchors::model
