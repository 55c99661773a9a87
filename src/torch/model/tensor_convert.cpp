#include "anchors/model/tensor_convert.h"
#include "tensor_description.h"

#include <algorithm>
#include <sstream>

#include "anchors/core/error.h"

namespace anchors::model {
namespace {

using detail::describe;

torch::Tensor checked_cpu_double(const torch::Tensor& tensor, int64_t rank, const char* what) {
  if (!tensor.defined()) throw Error(std::string(what) + ": undefined tensor");
  if (tensor.dim() != rank)
    throw Error(std::string(what) + ": expected a " + std::to_string(rank) + "-D tensor, got a " + describe(tensor));
  if (!at::isFloatingType(tensor.scalar_type()))
    throw Error(std::string(what) + ": expected a floating-point tensor, got a " + describe(tensor));
  return tensor.detach().to(torch::kCPU, torch::kFloat64).contiguous();
}

}  // namespace

torch::Tensor to_tensor(const Matrix& matrix) {
  auto out = torch::empty({static_cast<int64_t>(matrix.rows), static_cast<int64_t>(matrix.cols)},
                          torch::dtype(torch::kFloat64));
  std::copy(matrix.data.begin(), matrix.data.end(), out.data_ptr<double>());
  return out;
}

torch::Tensor to_tensor(const std::vector<double>& values) {
  auto out = torch::empty({static_cast<int64_t>(values.size())}, torch::dtype(torch::kFloat64));
  std::copy(values.begin(), values.end(), out.data_ptr<double>());
  return out;
}

Matrix matrix_from_tensor(const torch::Tensor& tensor, const char* what) {
  const auto t = checked_cpu_double(tensor, 2, what);
  Matrix m(static_cast<std::size_t>(t.size(0)), static_cast<std::size_t>(t.size(1)));
  std::copy(t.data_ptr<double>(), t.data_ptr<double>() + t.numel(), m.data.begin());
  return m;
}

std::vector<double> vector_from_tensor(const torch::Tensor& tensor, const char* what) {
  const auto t = checked_cpu_double(tensor, 1, what);
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

}  // namespace anchors::model
