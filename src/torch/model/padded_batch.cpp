#include "anchors/model/padded_batch.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "anchors/core/error.h"

namespace anchors::model {

PaddedBatch padded_batch(const torch::Tensor& mask) {
  if (!mask.defined() || mask.dim() != 2)
    throw Error(fmt::format("padded_batch: the attention mask must be 2-D [batch, tokens], got {}-D",
                            mask.defined() ? mask.dim() : 0));
  const torch::Tensor real = mask.ne(0).to(torch::kCPU).contiguous();
  const std::int64_t B = real.size(0), T = real.size(1);
  const auto r = real.accessor<bool, 2>();
  PaddedBatch out;
  out.positions = torch::zeros({B, T}, torch::kInt64);
  auto p = out.positions.accessor<std::int64_t, 2>();
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t first = -1, last = -1;
    for (std::int64_t t = 0; t < T; ++t)
      if (r[b][t]) {
        if (first < 0) first = t;
        last = t;
      }
    if (first < 0) throw Error(fmt::format("padded_batch: row {} of the attention mask has no real token", b));
    for (std::int64_t t = first; t <= last; ++t) {
      if (!r[b][t])
        throw Error(fmt::format("padded_batch: row {} of the attention mask has a gap at token {} (real tokens must "
                                "be one run: left or right padding)",
                                b, t));
      p[b][t] = t - first;
    }
    // Left padding is hidden from every query of the lane. Right padding
    // needs nothing: it comes after every real token, which causality
    // already keeps from seeing it (and a right-padded batch keeps the fused path).
    if (first > 0) out.control.regions.push_back(AttentionRegion::suppress(b, {0, kToTheEnd}, {0, first}));
  }
  out.positions = out.positions.to(mask.device());
  out.real = real.to(mask.device());
  return out;
}

}  // namespace anchors::model
