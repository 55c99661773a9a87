#pragma once
// Internal: the shape of an attention call and the input checks shared by the
// attention op and the sentence-pooling kernels (same q/k layout, GQA and slot
// rules: the Tq queries are the last Tq of the Tk key slots).
#include <torch/types.h>

#include <cstdint>

namespace anchors::model::detail {

struct AttentionShape {
  std::int64_t batch, query_heads, kv_heads, queries, keys, head_dim;
  std::int64_t group() const { return query_heads / kv_heads; }
  std::int64_t first_query_slot() const { return keys - queries; }
};

// Checks q [B, Hq, Tq, D] and k [B, Hkv, Tk, D] (and v, when given, shaped
// like k): defined, 4-D, float32/bfloat16/float16 alike, one device, matching
// batch and head_dim, Hq a multiple of Hkv, 0 < Tq <= Tk. anchors::Error
// prefixed with `what` otherwise.
AttentionShape check_attention_inputs(const char* what, const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor* v = nullptr);

// Checks the log-sum-exp of an attention call, lse [B, Hq, Tq] (the row
// normalisers the pooling and band-statistics kernels recompute P from):
// defined, that shape, floating point, on q's device. anchors::Error prefixed
// with `what` otherwise.
void check_lse(const char* what, const torch::Tensor& lse, const AttentionShape& shape, const torch::Tensor& q);

// The masking rule of attention.h on scores [..., rows, cols] of query slots
// [first_row_slot, first_row_slot + rows) against key slots [c0, c0 + cols):
// -inf where the key follows the query's slot and, with a sliding window
// W > 0, where it lies at or before the query's slot - W. In place; nothing is
// allocated for a tile no rule touches.
void mask_invisible_keys(torch::Tensor& scores, std::int64_t first_row_slot, std::int64_t c0, std::int64_t window);

// The score a suppressed key gets (attention.h): the lowest finite value of the
// input dtype, which float32 scores hold exactly for all three input dtypes.
double lowest_finite(torch::ScalarType dtype);

// The first key slot a query at `slot` sees under a sliding window (0: none):
// it sees [first_visible_key(slot, window), slot].
inline std::int64_t first_visible_key(std::int64_t slot, std::int64_t window) {
  return window > 0 && slot - window + 1 > 0 ? slot - window + 1 : 0;
}

}  // namespace anchors::model::detail
