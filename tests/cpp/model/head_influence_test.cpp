// head_influence (anchors/model/head_influence.h) against one masked forward
// pass per head written out here, on a tiny random checkpoint: batching heads
// into lanes, scored spans, layer subsets, progress and input checks.
#include "anchors/model/head_influence.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>

#include "anchors/core/attention_control.h"
#include "anchors/model/causal_lm.h"
#include "expect_error.h"
#include "test_paths.h"

namespace anchors::model {
namespace {

std::shared_ptr<CausalLM> tiny() {
  static const auto model = CausalLM::load(anchors::testing::data_dir() + "/tiny_models/llama_rope_llama3_gqa2");
  return model;
}

// Mean next-token loss over tokens [begin, end) of `ids` with `control` (null: none), one plain forward pass.
double mean_loss(const CausalLM& model, const std::vector<std::int64_t>& ids, TokenSpan span,
                 const AttentionControl* control) {
  const auto T = static_cast<std::int64_t>(ids.size());
  const torch::Tensor logits =
      model.forward(torch::tensor(ids, torch::kInt64).unsqueeze(0), torch::arange(T, torch::kInt64), nullptr, control)[0];
  const torch::Tensor log_probs = torch::log_softmax(logits.to(torch::kFloat64), -1);
  double sum = 0;
  for (std::int64_t t = span.begin; t < span.end; ++t) sum -= log_probs[t - 1][ids[t]].item<double>();
  return sum / static_cast<double>(span.size());
}

TEST(HeadInfluence, EqualsOneMaskedPassPerHead) {
  const auto model = tiny();
  const std::vector<HeadInfluenceText> texts = {{{5, 77, 3, 19, 200, 8, 41, 9, 120, 6, 33, 2}, {4, 12}},
                                                {{250, 1, 7, 66, 90, 14, 3}, {}}};
  const std::int64_t L = model->config().num_hidden_layers, H = model->config().num_attention_heads;
  HeadInfluenceOptions options;
  options.batch_lanes = 3;  // not a divisor of L * H: the last pass is partial
  std::size_t reports = 0, total = 0;
  RunControl control;
  control.progress = [&](std::size_t done, std::size_t all, const std::string& unit) {
    ++reports;
    total = all;
    EXPECT_EQ(unit, "passes");
    EXPECT_LE(done, all);
  };
  const HeadInfluenceResult r = head_influence(*model, texts, options, control);
  ASSERT_EQ(r.influence.sizes(), (std::vector<std::int64_t>{L, H}));
  EXPECT_EQ(reports, total);
  EXPECT_EQ(total, 2 * (1 + static_cast<std::size_t>((L * H + 2) / 3)));
  double largest = 0;
  for (std::int64_t l = 0; l < L; ++l)
    for (std::int64_t h = 0; h < H; ++h) {
      AttentionControl ablate;
      ablate.ablate_heads(l, {h});
      double expected = 0;
      for (const auto& text : texts) {
        const TokenSpan span = text.scored.empty() ? TokenSpan{1, static_cast<std::int64_t>(text.ids.size())} : text.scored;
        expected += mean_loss(*model, text.ids, span, &ablate) - mean_loss(*model, text.ids, span, nullptr);
      }
      expected /= 2;
      EXPECT_NEAR(r.influence[l][h].item<double>(), expected, 1e-5) << l << ":" << h;
      largest = std::max(largest, std::abs(expected));
    }
  EXPECT_GT(largest, 1e-4);
  // Per token: NaN outside the scored span.
  EXPECT_TRUE(std::isnan(r.plain_loss[0][3].item<double>()));
  EXPECT_FALSE(std::isnan(r.plain_loss[0][4].item<double>()));
  EXPECT_TRUE(std::isnan(r.token_delta[1][0][0][0].item<float>()));
}

TEST(HeadInfluence, LayerSubsetsAndErrors) {
  const auto model = tiny();
  const std::vector<HeadInfluenceText> text = {{{5, 77, 3, 19, 200}, {}}};
  HeadInfluenceOptions options;
  options.layers = {1};
  const HeadInfluenceResult r = head_influence(*model, text, options);
  EXPECT_TRUE(torch::isnan(r.influence[0]).all().item<bool>());
  EXPECT_FALSE(torch::isnan(r.influence[1]).any().item<bool>());
  EXPECT_ANCHORS_ERROR(head_influence(*model, {}), "no texts");
  EXPECT_ANCHORS_ERROR(head_influence(*model, {{{5}, {}}}), "text 0 has 1 tokens");
  EXPECT_ANCHORS_ERROR(head_influence(*model, {{{5, 999}, {}}}), "id 999 outside");
  EXPECT_ANCHORS_ERROR(head_influence(*model, {{{5, 6, 7}, {2, 9}}}), "scored span [2, 9)");
  options.layers = {0, 0};
  EXPECT_ANCHORS_ERROR(head_influence(*model, text, options), "layer 0 is given twice");
  options.layers = {};
  options.batch_lanes = 0;
  EXPECT_ANCHORS_ERROR(head_influence(*model, text, options), "batch_lanes");
  std::atomic<bool> stop{true};
  RunControl cancelled;
  cancelled.cancel = &stop;
  EXPECT_ANCHORS_ERROR(head_influence(*model, text, {}, cancelled), "cancelled");
}

}  // namespace
}  // namespace anchors::model
