#include "anchors/model/allocation_failure.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <new>
#include <stdexcept>

namespace anchors::model {
namespace {

// The allocation failures users meet are recognised, with torch's first line
// kept; other errors are not.
TEST(AllocationFailure, RecognisesTorchAndStdAllocationFailures) {
  try {
    // 4 PiB: the CPU allocator's posix_memalign fails at once (a plain c10::Error).
    (void)torch::empty({std::int64_t{1} << 50}, torch::kFloat32);
    FAIL() << "expected the allocation to fail";
  } catch (const std::exception& e) {
    const auto message = allocation_failure(e);
    ASSERT_TRUE(message.has_value()) << e.what();
    EXPECT_EQ(message->rfind("out of memory: ", 0), 0u) << *message;
    EXPECT_NE(message->find("4503599627370496 bytes"), std::string::npos) << *message;
    EXPECT_EQ(message->find('\n'), std::string::npos) << *message;
  }
  EXPECT_TRUE(allocation_failure(std::bad_alloc()).has_value());
  EXPECT_FALSE(allocation_failure(std::runtime_error("can't open file")).has_value());
  try {
    TORCH_CHECK(false, "shapes do not match");
  } catch (const c10::Error& e) {
    EXPECT_FALSE(allocation_failure(e).has_value());
  }
  try {
    TORCH_CHECK_WITH(OutOfMemoryError, false, "CUDA out of memory. Tried to allocate 2.00 GiB");
  } catch (const c10::Error& e) {
    EXPECT_EQ(allocation_failure(e), "out of memory: CUDA out of memory. Tried to allocate 2.00 GiB");
  }
}

}  // namespace
}  // namespace anchors::model
