#pragma once
// Checking the device a model or embedder is asked to load on, so that a
// device this process cannot use is an anchors::Error naming it (Python:
// ta.Error) when the weights are loaded, not a RuntimeError from deep inside
// torch at the first tensor that moves there.
#include <torch/types.h>

#include <string>

namespace anchors::model {

// anchors::Error "<who>: ..." unless `device` is the CPU or a CUDA device this
// process sees (torch::cuda::is_available(), index < device_count()). Other
// device types (mps, xpu, ...) are not supported by the runtime. Cost: a
// query of the CUDA runtime for CUDA devices; none for the CPU.
void check_device(const torch::Device& device, const std::string& who);

}  // namespace anchors::model
