// Device discovery and error text for the kernel host API (src/torch/model/cuda_kernels.h).
#include <cuda_runtime.h>

#include "cuda_kernels.h"

namespace anchors::model::cuda_kernels {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device / no driver" error
    return 0;
  }
  return count;
}

const char* error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // namespace anchors::model::cuda_kernels
