// Uses anchors::anchors (LibTorch): converts a result matrix to a tensor.
#include <anchors/core/error.h>
#include <anchors/model/tensor_convert.h>

#include <iostream>

int main() {
  anchors::Matrix m(2, 2, 0.5);
  const torch::Tensor t = anchors::model::to_tensor(m);
  std::cout << "tensor sum=" << t.sum().item<double>() << "\n";
  try {
    anchors::model::matrix_from_tensor(torch::zeros({3}), "probe");
    return 1;
  } catch (const anchors::Error& e) {
    std::cout << "error ok: " << e.what() << "\n";
  }
  return t.sum().item<double>() == 2.0 ? 0 : 1;
}
