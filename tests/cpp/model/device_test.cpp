#include "anchors/model/device.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "anchors/model/causal_lm.h"
#include "expect_error.h"
#include "test_paths.h"

namespace anchors::model {
namespace {

// Model.load(device="cuda") without CUDA was a RuntimeError from inside torch;
// now every loader refuses a device this process cannot use, by name.
TEST(Device, UnusableDevicesAreRefusedByName) {
  EXPECT_NO_THROW(check_device(torch::kCPU, "test"));
  EXPECT_ANCHORS_ERROR(check_device(torch::Device("meta"), "test"), "test: device meta is not supported");
  const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
  EXPECT_ANCHORS_ERROR(check_device(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(count)), "test"),
                       "cuda:" + std::to_string(count));
  if (!torch::cuda::is_available()) {
    EXPECT_ANCHORS_ERROR(check_device(torch::kCUDA, "test"), "no usable CUDA device", "use device cpu");
    LoadOptions options;
    options.device = torch::kCUDA;
    const std::string dir = anchors::testing::data_dir() + "/tiny_models/qwen2_bias_tied";
    EXPECT_ANCHORS_ERROR(CausalLM::load(dir, options), "CausalLM::load(" + dir + ")", "no usable CUDA device");
  }
}

}  // namespace
}  // namespace anchors::model
