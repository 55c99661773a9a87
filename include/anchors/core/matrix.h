#pragma once
// A small dense row-major matrix value type for results (S×S sentence
// matrices). Kept free of Eigen so public headers carry no third-party types.
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace anchors {

struct Matrix {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<double> data;  // row-major, rows*cols values; NaN marks "no value"

  Matrix() = default;
  Matrix(std::size_t r, std::size_t c, double fill = std::numeric_limits<double>::quiet_NaN())
      : rows(r), cols(c), data(r * c, fill) {}

  double& operator()(std::size_t r, std::size_t c) { return data[r * cols + c]; }
  double operator()(std::size_t r, std::size_t c) const { return data[r * cols + c]; }
  bool empty() const { return data.empty(); }

  // Equality treats NaN == NaN (a missing value equals a missing value).
  bool operator==(const Matrix& o) const {
    if (rows != o.rows || cols != o.cols) return false;
    for (std::size_t i = 0; i < data.size(); ++i) {
      const double a = data[i], b = o.data[i];
      if (!(a == b || (std::isnan(a) && std::isnan(b)))) return false;
    }
    return true;
  }
  bool operator!=(const Matrix& o) const { return !(*this == o); }
};

}  // namespace anchors
