// padded_batch (anchors/model/padded_batch.h): a left- and right-padded batch
// through CausalLM::forward gives each row what its real tokens alone give;
// the positions and regions it builds; refusals of masks it cannot honour.
#include "anchors/model/padded_batch.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "anchors/model/causal_lm.h"
#include "expect_error.h"
#include "test_paths.h"

namespace anchors::model {
namespace {

TEST(PaddedBatch, RowsEqualTheirUnpaddedPasses) {
  const auto model = CausalLM::load(anchors::testing::data_dir() + "/tiny_models/qwen3_gqa4_head16_tied");
  const std::vector<std::vector<std::int64_t>> rows = {{5, 77, 3, 19, 200, 8, 41}, {9, 120, 6}, {33, 2, 71, 4, 18}};
  const std::int64_t T = 9;
  // Row 0 right-padded, row 1 left-padded, row 2 padded on the left (the common case for generation).
  const std::vector<std::int64_t> offsets = {0, 6, 4};
  torch::Tensor ids = torch::zeros({3, T}, torch::kInt64), mask = torch::zeros({3, T}, torch::kInt64);
  for (std::int64_t b = 0; b < 3; ++b)
    for (std::size_t k = 0; k < rows[b].size(); ++k) {
      ids[b][offsets[b] + static_cast<std::int64_t>(k)] = rows[b][k];
      mask[b][offsets[b] + static_cast<std::int64_t>(k)] = 1;
    }
  const PaddedBatch padded = padded_batch(mask);
  EXPECT_EQ(padded.control.regions.size(), 2u);  // the two left-padded rows
  EXPECT_EQ(padded.positions[1][6].item<std::int64_t>(), 0);
  EXPECT_EQ(padded.positions[1][8].item<std::int64_t>(), 2);
  const torch::Tensor logits = model->forward(ids, padded.positions, nullptr, &padded.control);
  for (std::int64_t b = 0; b < 3; ++b) {
    const auto n = static_cast<std::int64_t>(rows[b].size());
    const torch::Tensor alone =
        model->forward(torch::tensor(rows[b], torch::kInt64).unsqueeze(0), torch::arange(n, torch::kInt64))[0];
    EXPECT_LT((logits[b].narrow(0, offsets[b], n) - alone).abs().max().item<double>(), 1e-5) << "row " << b;
  }
}

TEST(PaddedBatch, RefusesMasksItCannotHonour) {
  EXPECT_ANCHORS_ERROR(padded_batch(torch::ones({4}, torch::kInt64)), "must be 2-D");
  EXPECT_ANCHORS_ERROR(padded_batch(torch::tensor({1, 1, 0, 0, 0, 0}, torch::kInt64).reshape({2, 3})),
                       "row 1 of the attention mask has no real token");
  EXPECT_ANCHORS_ERROR(padded_batch(torch::tensor({1, 0, 1}, torch::kInt64).reshape({1, 3})), "row 0",
                       "gap at token 1");
  const PaddedBatch right = padded_batch(torch::tensor({true, true, false}).reshape({1, 3}));
  EXPECT_TRUE(right.control.empty());  // right padding keeps the fused attention path
}

}  // namespace
}  // namespace anchors::model
