#include "decoder_kernels.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "anchors/core/error.h"

namespace anchors::model::kernels {
namespace {

// Element offset of each row of a tensor [..., n] whose last dimension has unit
// stride: strided views (a slice of the fused q/k/v projection) are read in
// place instead of being copied to contiguous memory first.
class RowAddressing {
 public:
  explicit RowAddressing(const torch::Tensor& t) {
    for (std::int64_t d = 0; d + 1 < t.dim(); ++d) {
      sizes_.push_back(t.size(d));
      strides_.push_back(t.stride(d));
      rows_ *= t.size(d);
    }
  }
  std::int64_t rows() const { return rows_; }
  std::int64_t offset(std::int64_t row) const {
    std::int64_t offset = 0;
    for (std::size_t d = sizes_.size(); d-- > 0;) {
      offset += (row % sizes_[d]) * strides_[d];
      row /= sizes_[d];
    }
    return offset;
  }

 private:
  std::vector<std::int64_t> sizes_, strides_;
  std::int64_t rows_ = 1;
};

std::int64_t rows_per_task(std::int64_t row_length) {
  return std::max<std::int64_t>(1, at::internal::GRAIN_SIZE / std::max<std::int64_t>(1, row_length));
}

bool runs_on_cpu_kernel(const torch::Tensor& x) {
  return x.device().is_cpu() && x.dim() >= 1 && x.stride(-1) == 1 &&
         (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16 ||
          x.scalar_type() == torch::kFloat16);
}

// --- RMSNorm ---------------------------------------------------------------

torch::Tensor rms_norm_composite(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  const torch::Tensor x32 = x.to(torch::kFloat32);
  const torch::Tensor mean_square = x32.pow(2).mean(-1, /*keepdim=*/true);
  const torch::Tensor normed = x32 * at::rsqrt(mean_square + eps);
  return weight * normed.to(x.scalar_type());
}

template <typename scalar_t>
void rms_norm_cpu(const torch::Tensor& x, const torch::Tensor& weight, float eps, torch::Tensor& out) {
  const RowAddressing rows(x);
  const std::int64_t n = x.size(-1);
  const scalar_t* input = x.const_data_ptr<scalar_t>();
  const scalar_t* w = weight.const_data_ptr<scalar_t>();
  scalar_t* output = out.mutable_data_ptr<scalar_t>();
  at::parallel_for(0, rows.rows(), rows_per_task(n), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const scalar_t* in = input + rows.offset(row);
      scalar_t* o = output + row * n;
      // Eight independent partial sums: the compiler vectorises this loop.
      float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      std::int64_t i = 0;
      for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) {
          const float v = static_cast<float>(in[i + j]);
          partial[j] += v * v;
        }
      float sum_squares = 0;
      for (; i < n; ++i) sum_squares += static_cast<float>(in[i]) * static_cast<float>(in[i]);
      for (const float p : partial) sum_squares += p;
      const float inverse_rms = 1.0f / std::sqrt(sum_squares / static_cast<float>(n) + eps);
      for (std::int64_t k = 0; k < n; ++k) {
        const auto normed = static_cast<scalar_t>(static_cast<float>(in[k]) * inverse_rms);  // .to(dtype)
        o[k] = w[k] * normed;
      }
    }
  });
}

// --- RoPE --------------------------------------------------------------------

torch::Tensor rotary_composite(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const std::int64_t half = x.size(-1) / 2;
  const torch::Tensor c = cos.to(x.scalar_type()).unsqueeze(2), s = sin.to(x.scalar_type()).unsqueeze(2);
  const torch::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  return at::cat({x1 * c - x2 * s, x2 * c + x1 * s}, -1);
}

template <typename scalar_t>
void rotary_cpu(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, torch::Tensor& out) {
  const RowAddressing rows(x);  // rows are (b, t, h)
  const std::int64_t tokens = x.size(1), heads = x.size(2), dim = x.size(3), half = dim / 2;
  const bool per_lane_tables = cos.size(0) > 1;
  const scalar_t* input = x.const_data_ptr<scalar_t>();
  const float* cos_table = cos.const_data_ptr<float>();
  const float* sin_table = sin.const_data_ptr<float>();
  scalar_t* output = out.mutable_data_ptr<scalar_t>();
  at::parallel_for(0, rows.rows(), rows_per_task(dim), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t t = (row / heads) % tokens, b = row / (heads * tokens);
      const std::int64_t table_row = (per_lane_tables ? b * tokens : 0) + t;
      const float* c = cos_table + table_row * half;
      const float* s = sin_table + table_row * half;
      const scalar_t* in = input + rows.offset(row);
      scalar_t* o = output + row * dim;
      for (std::int64_t i = 0; i < half; ++i) {
        const auto ci = static_cast<scalar_t>(c[i]), si = static_cast<scalar_t>(s[i]);
        const scalar_t x1 = in[i], x2 = in[i + half];
        // Each product rounded to the dtype, then the sum: transformers' roundings.
        o[i] = static_cast<scalar_t>(x1 * ci) - static_cast<scalar_t>(x2 * si);
        o[i + half] = static_cast<scalar_t>(x2 * ci) + static_cast<scalar_t>(x1 * si);
      }
    }
  });
}

}  // namespace

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  const bool kernel = runs_on_cpu_kernel(x) && weight.scalar_type() == x.scalar_type() && weight.dim() == 1 &&
                      weight.size(0) == x.size(-1) && weight.is_contiguous() && weight.device().is_cpu();
  if (!kernel) return rms_norm_composite(x, weight, eps);
  torch::Tensor out = torch::empty(x.sizes(), x.options().memory_format(c10::MemoryFormat::Contiguous));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "anchors_rms_norm", [&] {
    rms_norm_cpu<scalar_t>(x, weight, static_cast<float>(eps), out);
  });
  return out;
}

torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  if (x.dim() != 4 || cos.dim() != 3 || !cos.sizes().equals(sin.sizes()) || cos.size(1) != x.size(1) ||
      cos.size(2) * 2 != x.size(3) || (cos.size(0) != 1 && cos.size(0) != x.size(0)))
    throw Error("rotary: expected x [B, T, H, D] and cos/sin [B or 1, T, D/2]");
  const bool kernel = runs_on_cpu_kernel(x) && cos.scalar_type() == torch::kFloat32 &&
                      sin.scalar_type() == torch::kFloat32 && cos.is_contiguous() && sin.is_contiguous() &&
                      cos.device().is_cpu();
  if (!kernel) return rotary_composite(x, cos, sin);
  torch::Tensor out = torch::empty(x.sizes(), x.options().memory_format(c10::MemoryFormat::Contiguous));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "anchors_rotary", [&] {
    rotary_cpu<scalar_t>(x, cos, sin, out);
  });
  return out;
}

}  // namespace anchors::model::kernels
