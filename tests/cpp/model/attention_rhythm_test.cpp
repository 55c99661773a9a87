// attention_rhythm on the tiny random checkpoints against a slow reference
// written here: the same forward pass's q and k (hidden_states' callback), the
// full T×T float64 softmax per layer and head, span / WAAD / FAI by loops from
// their definitions, then the head groups and token sets chosen by the
// documented rules (counts max(1, round(f·n)), ties by (layer, head) and by
// position).
#include "anchors/model/attention_rhythm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <limits>
#include <numeric>
#include <string>

#include "test_paths.h"
#include "anchors/core/error.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/sentence_attention.h"

namespace anchors::model {
namespace {

std::string fixture_dir(const std::string& name) { return anchors::testing::data_dir() + "/tiny_models/" + name; }

std::vector<std::int64_t> random_ids(std::int64_t T, std::int64_t vocab, std::uint64_t seed) {
  torch::manual_seed(seed);
  const torch::Tensor ids = torch::randint(vocab, {T}, torch::kInt64);
  return {ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + T};
}

struct ReferenceHeads {
  torch::Tensor span;  // [L, H] float64
  torch::Tensor waad;  // [L, H, T] float64
  torch::Tensor fai;   // [L, H, T] float64, NaN where no row in the window
};

// Per analysed layer and head, from the explicit attention matrix.
ReferenceHeads reference_heads(const CausalLM& model, const std::vector<std::int64_t>& ids,
                               const std::vector<std::int64_t>& layers, const AttentionRhythmOptions& options) {
  const std::int64_t T = static_cast<std::int64_t>(ids.size());
  std::vector<torch::Tensor> queries, keys;
  model.hidden_states(torch::tensor(ids, torch::kInt64).view({1, T}), torch::arange(T), nullptr, nullptr,
                      [&](std::int64_t, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor&) {
                        queries.push_back(q.to(torch::kFloat64));
                        keys.push_back(k.to(torch::kFloat64));
                      });
  const std::int64_t L = static_cast<std::int64_t>(layers.size()), H = model.config().num_attention_heads;
  const std::int64_t W = options.waad_window, begin = options.response_begin;
  ReferenceHeads ref{torch::zeros({L, H}, torch::kFloat64), torch::zeros({L, H, T}, torch::kFloat64),
                     torch::zeros({L, H, T}, torch::kFloat64)};
  for (std::int64_t i = 0; i < L; ++i) {
    const std::int64_t layer = layers[static_cast<std::size_t>(i)];
    const torch::Tensor& q = queries[static_cast<std::size_t>(layer)];
    const torch::Tensor& k = keys[static_cast<std::size_t>(layer)];
    // The weights the layer computes: causal, and within its sliding window if it has one.
    torch::Tensor invisible = torch::ones({T, T}, torch::kBool).triu(1);
    if (const std::int64_t window = model.config().sliding_window(layer); window > 0)
      invisible.logical_or_(torch::ones({T, T}, torch::kBool).tril(-window));
    const std::int64_t group = H / k.size(1);
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    for (std::int64_t h = 0; h < H; ++h) {
      const torch::Tensor p =
          torch::softmax(torch::matmul(q[0][h], k[0][h / group].t()).mul(scale).masked_fill(invisible, -INFINITY), -1);
      const auto P = p.accessor<double, 2>();
      double span = 0;
      for (std::int64_t t = 0; t < T; ++t) {
        double distance = 0, windowed = 0;
        for (std::int64_t s = 0; s <= t; ++s) {
          distance += P[t][s] * static_cast<double>(t - s);
          windowed += P[t][s] * static_cast<double>(std::min(t - s, W));
        }
        ref.waad[i][h][t] = windowed;
        if (t >= begin) span += distance;
      }
      ref.span[i][h] = span / static_cast<double>(T - begin);
      for (std::int64_t s = 0; s < T; ++s) {
        double total = 0;
        std::int64_t rows = 0;
        for (std::int64_t t = s + options.fai_near; t <= std::min(s + options.fai_far, T - 1); ++t) {
          total += P[t][s];
          ++rows;
        }
        ref.fai[i][h][s] = rows == 0 ? std::numeric_limits<double>::quiet_NaN() : total / static_cast<double>(rows);
      }
    }
  }
  return ref;
}

std::int64_t kept(double fraction, std::int64_t n) {
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::llround(fraction * static_cast<double>(n))));
}

// The documented head ranking on spans [L, H]: by span (ascending for local,
// descending for global), ties by (layer, head) ascending.
std::vector<HeadIndex> rank_heads(const torch::Tensor& spans, const std::vector<std::int64_t>& layers, double fraction,
                                  bool largest) {
  const torch::Tensor s = spans.to(torch::kFloat64);
  struct Entry {
    double span;
    HeadIndex head;
  };
  std::vector<Entry> entries;
  for (std::int64_t i = 0; i < s.size(0); ++i)
    for (std::int64_t h = 0; h < s.size(1); ++h)
      entries.push_back({s[i][h].item<double>(), {layers[static_cast<std::size_t>(i)], h}});
  std::sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
    if (a.span != b.span) return largest ? a.span > b.span : a.span < b.span;
    return a.head.layer != b.head.layer ? a.head.layer < b.head.layer : a.head.head < b.head.head;
  });
  std::vector<HeadIndex> out;
  for (std::int64_t n = 0; n < kept(fraction, static_cast<std::int64_t>(entries.size())); ++n)
    out.push_back(entries[static_cast<std::size_t>(n)].head);
  return out;
}

// The documented token selection: the kept(fraction, n_response) response
// positions with the largest finite values, ties to the earlier position.
torch::Tensor top_tokens(const torch::Tensor& values, std::int64_t begin, double fraction) {
  const std::int64_t T = values.size(0);
  std::vector<std::int64_t> order;
  for (std::int64_t t = begin; t < T; ++t)
    if (std::isfinite(values[t].item<double>())) order.push_back(t);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return values[a].item<double>() > values[b].item<double>(); });
  torch::Tensor chosen = torch::zeros({T}, torch::kBool);
  const std::int64_t count = std::min<std::int64_t>(kept(fraction, T - begin), static_cast<std::int64_t>(order.size()));
  for (std::int64_t n = 0; n < count; ++n) chosen[order[static_cast<std::size_t>(n)]] = true;
  return chosen;
}

// Mean over `heads` of per-head rows [L, H, T] (layers[i] is row i).
torch::Tensor head_mean(const torch::Tensor& per_head, const std::vector<HeadIndex>& heads,
                        const std::vector<std::int64_t>& layers) {
  torch::Tensor total = torch::zeros({per_head.size(2)}, torch::kFloat64);
  for (const HeadIndex& head : heads) {
    const auto row = std::find(layers.begin(), layers.end(), head.layer) - layers.begin();
    total += per_head[row][head.head];
  }
  return total / static_cast<double>(heads.size());
}

// Max |a - b| where both are finite; NaN positions must agree.
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(a64.isnan(), b64.isnan())) << "NaN patterns differ";
  const torch::Tensor finite = a64.isnan().logical_not();
  if (finite.sum().item<std::int64_t>() == 0) return 0.0;
  return (a64.masked_select(finite) - b64.masked_select(finite)).abs().max().item<double>();
}

// Max |a - b| / max(1, |b|): span and WAAD are distances in tokens, whose
// float32 error grows with their size (see band_statistics_test.cpp).
double max_scaled_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor b64 = b.to(torch::kFloat64);
  return max_abs_diff(a.to(torch::kFloat64) / b64.abs().clamp_min(1.0), b64 / b64.abs().clamp_min(1.0));
}

// Everything attention_rhythm returns vs the reference.
void check_rhythm(const CausalLM& model, const std::vector<std::int64_t>& ids, const AttentionRhythmOptions& options,
                  const std::vector<std::int64_t>& expected_layers) {
  const std::int64_t T = static_cast<std::int64_t>(ids.size()), H = model.config().num_attention_heads;
  const std::int64_t begin = options.response_begin;
  const AttentionRhythm got = attention_rhythm(model, ids, options);
  ASSERT_EQ(got.layers, expected_layers);
  const std::int64_t L = static_cast<std::int64_t>(got.layers.size());
  ASSERT_EQ(got.head_span.sizes(), (std::vector<std::int64_t>{L, H}));
  for (const auto& t : {got.waad, got.fai, got.waad_delta, got.preplan, got.anchor, got.gamma})
    ASSERT_EQ(t.sizes(), (std::vector<std::int64_t>{T}));
  EXPECT_EQ(got.preplan.scalar_type(), torch::kBool);
  EXPECT_EQ(got.gamma.scalar_type(), torch::kFloat32);

  const ReferenceHeads ref = reference_heads(model, ids, got.layers, options);
  const double span_error = max_scaled_diff(got.head_span, ref.span);
  EXPECT_LT(span_error, 1e-5);

  // Head groups: the documented rule applied to the returned spans, and to the
  // reference spans when no two heads near the cut are closer than the tolerance.
  const std::int64_t heads_total = L * H;
  EXPECT_EQ(got.local_heads, rank_heads(got.head_span, got.layers, options.local_fraction, false));
  EXPECT_EQ(got.global_heads, rank_heads(got.head_span, got.layers, options.global_fraction, true));
  EXPECT_EQ(static_cast<std::int64_t>(got.local_heads.size()), kept(options.local_fraction, heads_total));
  const torch::Tensor sorted_spans = std::get<0>(ref.span.flatten().sort());
  if (heads_total < 2 || (sorted_spans.narrow(0, 1, heads_total - 1) - sorted_spans.narrow(0, 0, heads_total - 1))
                                 .min()
                                 .item<double>() > 1e-4) {
    EXPECT_EQ(got.local_heads, rank_heads(ref.span, got.layers, options.local_fraction, false));
    EXPECT_EQ(got.global_heads, rank_heads(ref.span, got.layers, options.global_fraction, true));
  }

  // Token curves: group means of the reference per-head curves.
  const torch::Tensor ref_waad = head_mean(ref.waad, got.local_heads, got.layers);
  const torch::Tensor ref_fai = head_mean(ref.fai, got.global_heads, got.layers);
  const double waad_error = max_scaled_diff(got.waad, ref_waad), fai_error = max_abs_diff(got.fai, ref_fai);
  EXPECT_LT(waad_error, 1e-5);
  EXPECT_LT(fai_error, 1e-5);
  // The paper's Δ_t = |WAAD_t − WAAD_{t+1}| over the response, undefined (NaN) at the last token.
  torch::Tensor ref_delta = torch::zeros({T}, torch::kFloat64);
  for (std::int64_t t = begin; t + 1 < T; ++t) ref_delta[t] = (ref_waad[t] - ref_waad[t + 1]).abs();
  ref_delta[T - 1] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_LT(max_abs_diff(got.waad_delta, ref_delta), 2e-5);
  if (begin > 0) EXPECT_EQ(got.waad_delta.narrow(0, 0, begin).abs().max().item<float>(), 0.0f);

  // Token sets: the documented selection on the returned curves.
  EXPECT_TRUE(torch::equal(got.preplan, top_tokens(got.waad_delta, begin, options.top_fraction)));
  EXPECT_TRUE(torch::equal(got.anchor, top_tokens(got.fai, begin, options.top_fraction)));
  EXPECT_EQ(got.preplan.sum().item<std::int64_t>(),
            std::min(kept(options.top_fraction, T - begin), T - begin - 1));  // the last token has no Δ
  if (begin > 0) {
    EXPECT_FALSE(got.preplan.narrow(0, 0, begin).any().item<bool>());
    EXPECT_FALSE(got.anchor.narrow(0, 0, begin).any().item<bool>());
  }
  EXPECT_FALSE(got.anchor.logical_and(got.fai.isnan()).any().item<bool>());
  const torch::Tensor expected_gamma =
      at::where(got.preplan.logical_or(got.anchor), torch::full({}, options.gamma), torch::ones({}));
  EXPECT_TRUE(torch::equal(got.gamma, expected_gamma.to(torch::kFloat32)));
  std::cout << "[ " << model.config().model_type << " ] max error span (relative) " << span_error
            << ", waad (relative) " << waad_error << ", fai " << fai_error << "\n";
}

class AttentionRhythmModels : public ::testing::TestWithParam<std::string> {};

TEST_P(AttentionRhythmModels, MatchesExplicitAttentionReference) {
  const auto model = CausalLM::load(fixture_dir(GetParam()));
  const std::vector<std::int64_t> ids = random_ids(110, model->config().vocab_size, 31);
  AttentionRhythmOptions options;
  options.layers = std::vector<std::int64_t>{1, 0};  // order kept
  options.waad_window = 6;
  options.fai_near = 4;
  options.fai_far = 25;
  options.response_begin = 35;
  options.local_fraction = 0.25;   // 2 of 8 heads
  options.global_fraction = 0.5;   // 4 of 8
  options.top_fraction = 0.3;      // 22 of 75 response tokens
  options.gamma = 2.0;
  check_rhythm(*model, ids, options, {1, 0});
}

TEST_P(AttentionRhythmModels, DefaultOptions) {
  const auto model = CausalLM::load(fixture_dir(GetParam()));
  const std::vector<std::int64_t> ids = random_ids(130, model->config().vocab_size, 32);
  // Two layers: the middle third [0, 1) holds layer 0. FAI's window [s + 10,
  // s + 100] is empty for the last 10 tokens (NaN there, never an anchor).
  check_rhythm(*model, ids, {}, {0});
  const AttentionRhythm got = attention_rhythm(*model, ids);
  EXPECT_TRUE(got.fai.narrow(0, 120, 10).isnan().all().item<bool>());
  EXPECT_FALSE(got.fai.narrow(0, 0, 120).isnan().any().item<bool>());
  EXPECT_EQ(got.local_heads.size(), 1u);   // max(1, round(0.3 · 4))
  EXPECT_EQ(got.global_heads.size(), 1u);
  EXPECT_EQ(got.preplan.sum().item<std::int64_t>(), 52);  // round(0.4 · 130)
}

INSTANTIATE_TEST_SUITE_P(AttentionRhythm, AttentionRhythmModels,
                         ::testing::Values("qwen2_bias_tied", "llama_rope_llama3_gqa2", "qwen3_gqa4_head16_tied",
                                           "olmo3_window4_yarn"));

TEST(AttentionRhythm, RejectsBadInput) {
  const auto model = CausalLM::load(fixture_dir("llama_rope_llama3_gqa2"));
  const std::vector<std::int64_t> ids(20, 3);
  const auto with = [&](auto edit) {
    AttentionRhythmOptions options;
    edit(options);
    return attention_rhythm(*model, ids, options);
  };
  EXPECT_NO_THROW(with([](AttentionRhythmOptions&) {}));
  EXPECT_THROW(attention_rhythm(*model, {}), Error);
  const std::vector<std::int64_t> too_long(static_cast<std::size_t>(model->config().max_position_embeddings + 1), 3);
  EXPECT_THROW(attention_rhythm(*model, too_long), Error);
  EXPECT_THROW(attention_rhythm(*model, {1, 2, 256}), Error);  // vocabulary is 256
  EXPECT_THROW(attention_rhythm(*model, {1, -2, 3}), Error);
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.local_fraction = 0; }), Error);
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.global_fraction = 1.5; }), Error);
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.top_fraction = std::nan(""); }), Error);
  EXPECT_NO_THROW(with([](AttentionRhythmOptions& o) { o.top_fraction = 1.0; }));
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.gamma = INFINITY; }), Error);
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.layers = std::vector<std::int64_t>{}; }), Error);
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.layers = std::vector<std::int64_t>{2}; }), Error);
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.layers = std::vector<std::int64_t>{-1}; }), Error);
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.layers = std::vector<std::int64_t>{0, 0}; }), Error);
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.response_begin = -1; }), Error);
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.response_begin = 20; }), Error);
  EXPECT_NO_THROW(with([](AttentionRhythmOptions& o) { o.response_begin = 19; }));
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.waad_window = 0; }), Error);
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.fai_near = 5; o.fai_far = 4; }), Error);
  EXPECT_THROW(with([](AttentionRhythmOptions& o) { o.fai_near = -1; }), Error);
  try {
    with([](AttentionRhythmOptions& o) { o.response_begin = 20; });
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention_rhythm"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("response_begin"), std::string::npos) << e.what();
  }
}

// attention_rhythm and sentence_attention report one step per decoder layer
// and stop at the RunControl's flag (set here from the progress callback, as
// another thread would set it).
TEST(AttentionRhythm, ProgressAndCancelPerLayerAlsoForSentenceAttention) {
  const auto model = CausalLM::load(fixture_dir("llama_rope_llama3_gqa2"));
  const auto L = static_cast<std::size_t>(model->config().num_hidden_layers);
  ASSERT_GE(L, 2u);
  const std::vector<std::int64_t> ids(20, 3);
  const std::vector<TokenSpan> spans = {{0, 10}, {10, 20}};
  std::atomic<bool> stop{false};
  std::vector<std::size_t> seen;
  RunControl control;
  control.cancel = &stop;
  control.progress = [&](std::size_t done, std::size_t total, const std::string& unit) {
    EXPECT_EQ(unit, "layers");
    EXPECT_EQ(total, L);
    seen.push_back(done);
  };
  attention_rhythm(*model, ids, {}, control);
  std::vector<std::size_t> all(L);
  std::iota(all.begin(), all.end(), std::size_t{1});
  EXPECT_EQ(seen, all);
  seen.clear();
  sentence_attention(*model, ids, spans, std::nullopt, {}, control);
  EXPECT_EQ(seen, all);

  control.progress = [&](std::size_t done, std::size_t, const std::string&) {
    seen.push_back(done);
    stop = true;
  };
  for (int which = 0; which < 2; ++which) {
    seen.clear();
    stop = false;
    try {
      if (which == 0) attention_rhythm(*model, ids, {}, control);
      if (which == 1) sentence_attention(*model, ids, spans, std::nullopt, {}, control);
      ADD_FAILURE() << "not cancelled";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cancelled"), std::string::npos) << e.what();
    }
    EXPECT_EQ(seen, std::vector<std::size_t>{1});  // stopped at the next layer
  }
}

}  // namespace
}  // namespace anchors::model
