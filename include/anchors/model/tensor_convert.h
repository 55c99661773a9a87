#pragma once
// Conversions between the core's value types and LibTorch tensors, with the
// dtype/device/shape checks that turn a wrong tensor into a clear error.
#include <torch/types.h>

#include <vector>

#include "anchors/core/matrix.h"

namespace anchors::model {

// A float64 CPU tensor of shape [rows, cols] holding a copy of the matrix.
torch::Tensor to_tensor(const Matrix& matrix);
// A float64 CPU tensor of shape [n].
torch::Tensor to_tensor(const std::vector<double>& values);

// From a 2-D floating-point tensor on any device (copied to CPU float64).
// anchors::Error naming `what` for other ranks or non-floating dtypes.
Matrix matrix_from_tensor(const torch::Tensor& tensor, const char* what = "tensor");
// From a 1-D floating-point tensor; same checks.
std::vector<double> vector_from_tensor(const torch::Tensor& tensor, const char* what = "tensor");

}  // namespace anchors::model
