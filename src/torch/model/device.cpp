#include "anchors/model/device.h"

#include <fmt/format.h>
#include <torch/cuda.h>

#include "anchors/core/error.h"

namespace anchors::model {

void check_device(const torch::Device& device, const std::string& who) {
  if (device.is_cpu()) return;
  if (!device.is_cuda())
    throw Error(fmt::format("{}: device {} is not supported (use cpu or cuda)", who, device.str()));
  if (!torch::cuda::is_available())
    throw Error(fmt::format("{}: device {} asked for, but this process has no usable CUDA device (a CPU-only "
                            "torch, no driver, or no GPU; torch.cuda.is_available() is False); use device cpu",
                            who, device.str()));
  const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
  if (device.has_index() && device.index() >= count)
    throw Error(fmt::format("{}: device {} asked for, but this process sees {} CUDA device(s)", who, device.str(),
                            count));
}

}  // namespace anchors::model
