// register_builtins() as a core-only program sees it: this binary links
// anchors::core alone, so the call resolves to the core's definition and adds
// no white-box method (builtins.h).
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

TEST(Builtins, CoreOnlyProgramsGetTheCoreMethods) {
  register_builtins();
  register_builtins();  // idempotent
  EXPECT_TRUE(listed("resampling"));
  for (const char* white_box : {"sentence_attention", "receiver_heads", "attention_suppression", "attention_rhythm"})
    EXPECT_FALSE(listed(white_box)) << white_box;
}

}  // namespace
}  // namespace anchors
