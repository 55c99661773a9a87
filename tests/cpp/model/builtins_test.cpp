// register_builtins() as a program linking anchors::anchors sees it: the
// definition that adds the white-box methods to the core's (builtins.h).
#include "anchors/methods/builtins.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "anchors/methods/registry.h"

namespace anchors {
namespace {

bool listed(const std::string& name) {
  const auto all = methods();
  return std::any_of(all.begin(), all.end(), [&](const MethodInfo& m) { return m.name == name; });
}

TEST(Builtins, TorchProgramsGetTheWhiteBoxMethodsToo) {
  register_builtins();
  register_builtins();  // idempotent
  for (const char* name :
       {"resampling", "sentence_attention", "receiver_heads", "attention_suppression", "attention_rhythm"})
    EXPECT_TRUE(listed(name)) << name;
  EXPECT_EQ(make_method("receiver_heads")->name(), "receiver_heads");
}

}  // namespace
}  // namespace anchors
