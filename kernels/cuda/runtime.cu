// Device discovery, free memory and error text for the kernel host API (src/torch/model/cuda_kernels.h).
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

int memory_info(std::int64_t* free_bytes, std::int64_t* total_bytes) {
  std::size_t free = 0, total = 0;
  const cudaError_t status = cudaMemGetInfo(&free, &total);
  if (status != cudaSuccess) return static_cast<int>(status);
  *free_bytes = static_cast<std::int64_t>(free);
  *total_bytes = static_cast<std::int64_t>(total);
  return 0;
}

const char* error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // namespace anchors::model::cuda_kernels
