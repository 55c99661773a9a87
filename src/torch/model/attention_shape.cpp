#include "attention_shape.h"

#include <fmt/format.h>

#include <limits>

#include "anchors/core/error.h"
#include "tensor_description.h"

namespace anchors::model::detail {

AttentionShape check_attention_inputs(const char* what, const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor* v) {
  // Messages list v only when the caller has one.
  const auto tensors = [&] {
    return v ? fmt::format("q {}, k {}, v {}", describe(q), describe(k), describe(*v))
             : fmt::format("q {}, k {}", describe(q), describe(k));
  };
  if (!q.defined() || !k.defined() || (v && !v->defined()))
    throw Error(fmt::format("{}: undefined {}", what, v ? "q, k or v" : "q or k"));
  if (q.dim() != 4 || k.dim() != 4 || (v && v->dim() != 4))
    throw Error(fmt::format("{}: inputs must be 4-D [B, H, T, D]; got {}", what, tensors()));
  const auto dtype = q.scalar_type();
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16 && dtype != torch::kFloat16)
    throw Error(fmt::format("{}: dtype must be float32, bfloat16 or float16; got q {}", what, describe(q)));
  if (k.scalar_type() != dtype || (v && v->scalar_type() != dtype))
    throw Error(fmt::format("{}: dtypes differ: {}", what, tensors()));
  if (k.device() != q.device() || (v && v->device() != q.device()))
    throw Error(fmt::format("{}: inputs on different devices: {}", what, tensors()));
  const AttentionShape shape{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3)};
  if (k.size(0) != shape.batch || k.size(3) != shape.head_dim || (v && !v->sizes().equals(k.sizes())))
    throw Error(fmt::format("{}: shapes disagree: {}", what, tensors()));
  if (shape.kv_heads == 0 || shape.query_heads % shape.kv_heads != 0)
    throw Error(fmt::format("{}: {} query heads are not a multiple of {} key/value heads", what,
                            shape.query_heads, shape.kv_heads));
  if (shape.queries > shape.keys)
    throw Error(fmt::format("{}: {} queries but only {} keys (queries are the last key slots)", what,
                            shape.queries, shape.keys));
  if (shape.queries == 0 || shape.head_dim == 0 || shape.batch == 0)
    throw Error(fmt::format("{}: empty q {}", what, describe(q)));
  return shape;
}

void check_lse(const char* what, const torch::Tensor& lse, const AttentionShape& shape, const torch::Tensor& q) {
  if (!lse.defined() || lse.dim() != 3 || lse.size(0) != shape.batch || lse.size(1) != shape.query_heads ||
      lse.size(2) != shape.queries)
    throw Error(fmt::format("{}: lse must be [B, Hq, Tq] = [{}, {}, {}]; got {}", what, shape.batch,
                            shape.query_heads, shape.queries, describe(lse)));
  if (!lse.is_floating_point())
    throw Error(fmt::format("{}: lse must be a floating-point tensor; got {}", what, describe(lse)));
  if (lse.device() != q.device())
    throw Error(fmt::format("{}: lse {} and q {} on different devices", what, describe(lse), describe(q)));
}

double lowest_finite(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kBFloat16: return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case torch::kFloat16: return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    default: return static_cast<double>(std::numeric_limits<float>::lowest());
  }
}

void mask_invisible_keys(torch::Tensor& scores, std::int64_t first_row_slot, std::int64_t c0, std::int64_t window) {
  const std::int64_t rows = scores.size(-2), cols = scores.size(-1);
  const auto bools = torch::dtype(torch::kBool).device(scores.device());
  if (c0 + cols - 1 > first_row_slot) {
    // Key c0 + b is invisible to query slot first_row_slot + a when b - a > first_row_slot - c0.
    scores.masked_fill_(torch::ones({rows, cols}, bools).triu(first_row_slot - c0 + 1),
                        -std::numeric_limits<float>::infinity());
  }
  if (window > 0 && c0 <= first_row_slot + rows - 1 - window) {
    // ... and outside its window when b - a <= first_row_slot - c0 - W.
    scores.masked_fill_(torch::ones({rows, cols}, bools).tril(first_row_slot - c0 - window),
                        -std::numeric_limits<float>::infinity());
  }
}

}  // namespace anchors::model::detail
