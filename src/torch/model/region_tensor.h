#pragma once
// Internal: the tensor encoding of attention regions and sentence spans that
// the torch ops (torch_ops.cpp) take, shared with the CUDA kernels, and its
// decoding into the C++ types of attention.h / span.h.
//
//   regions  int64 [R, 7], one row per region:
//            (lane, query_begin, query_end, key_begin, key_end, head, effect)
//            head -1 = every query head; effect 0 = suppress, 1 = boost.
//            Slots as in attention.h; a region applies to every layer.
//   betas    float64 [R]: the boost of row r (ignored for suppression rows)
//   spans    int64 [S, 2]: token spans [begin, end)
//
// R = 0 (regions [0, 7], betas [0]) means no control.
#include <torch/types.h>

#include <vector>

#include "anchors/core/span.h"
#include "anchors/model/attention.h"

namespace anchors::model::detail {

inline constexpr std::int64_t kRegionColumns = 7;

// anchors::Error (prefixed with `what`) for a tensor of the wrong dtype, rank
// or shape, betas not matching the rows, a negative lane, a negative or
// inverted span, a head below -1, an effect other than 0 / 1, or a non-finite
// boost beta. Lanes and heads are checked against the batch later
// (AttentionControl::validate in the op that uses the control).
AttentionControl control_from_tensors(const torch::Tensor& regions, const torch::Tensor& betas, const char* what);

// anchors::Error (prefixed with `what`) unless `spans` is int64 [S, 2]. The
// spans' values are checked by whoever uses them (validate_sentence_spans).
std::vector<TokenSpan> spans_from_tensor(const torch::Tensor& spans, const char* what);

}  // namespace anchors::model::detail
