// The CPU kernels of the decoder block against their composite LibTorch
// definitions (the transcription of transformers), in every dtype and for the
// strided views the decoder feeds them.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/decoder_kernels.h"

namespace anchors::model::kernels {
namespace {

torch::Tensor composite_rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  const torch::Tensor x32 = x.to(torch::kFloat32);
  const torch::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, true) + eps);
  return weight * normed.to(x.scalar_type());
}

torch::Tensor composite_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  // transformers: q * cos + rotate_half(q) * sin with the D/2 angles duplicated to D.
  const auto c = torch::cat({cos, cos}, -1).to(x.scalar_type()).unsqueeze(2);
  const auto s = torch::cat({sin, sin}, -1).to(x.scalar_type()).unsqueeze(2);
  const std::int64_t half = x.size(-1) / 2;
  const auto rotated_half = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * c + rotated_half * s;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

TEST(DecoderKernels, RmsNormMatchesTransformersFormula) {
  torch::manual_seed(3);
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat16}) {
    const auto fused = torch::randn({2, 5, 3 * 40}).to(dtype);                     // a fused projection
    const auto x = fused.narrow(-1, 40, 40).view({2, 5, 2, 20});                   // strided per-head view
    const auto weight = (1 + 0.2 * torch::randn({20})).to(dtype);
    const auto got = rms_norm(x, weight, 1e-6);
    ASSERT_EQ(got.scalar_type(), dtype);
    ASSERT_TRUE(got.is_contiguous());
    // Summation order differs from LibTorch's reduction; in low precision that
    // can flip one rounding of the normalised value (one ulp of the dtype).
    const double tolerance = dtype == torch::kFloat32 ? 1e-6 : dtype == torch::kBFloat16 ? 2e-2 : 4e-3;
    EXPECT_LT(max_abs_diff(got, composite_rms_norm(x, weight, 1e-6)), tolerance) << c10::toString(dtype);
  }
}

TEST(DecoderKernels, RotaryMatchesRotateHalf) {
  torch::manual_seed(4);
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat16}) {
    for (const std::int64_t table_lanes : {1, 2}) {
      const auto fused = torch::randn({2, 6, 3 * 32}).to(dtype);
      const auto x = fused.narrow(-1, 32, 32).view({2, 6, 2, 16});  // [B, T, H, D], strided
      const auto angles = torch::rand({table_lanes, 6, 8}) * 40;
      const auto got = rotary(x, angles.cos(), angles.sin());
      ASSERT_TRUE(got.is_contiguous());
      EXPECT_EQ(max_abs_diff(got, composite_rotary(x, angles.cos(), angles.sin())), 0.0)
          << c10::toString(dtype) << " table lanes " << table_lanes;  // same roundings: bitwise equal
    }
  }
}

}  // namespace
}  // namespace anchors::model::kernels
