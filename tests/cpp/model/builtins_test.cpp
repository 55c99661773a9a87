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

// Each built-in states what it needs, its headline score and a line for every option.
TEST(Builtins, EveryMethodDocumentsEveryOptionAndNamesItsNeedsAndHeadline) {
  register_builtins();
  for (const MethodInfo& m : methods()) {
    if (m.name.rfind("test_", 0) == 0) continue;
    EXPECT_FALSE(m.headline_scores.empty()) << m.name;
    EXPECT_TRUE(m.needs.model || m.needs.rollouts) << m.name;
    std::vector<std::string> options, documented;
    for (const auto& [name, value] : m.default_options) options.push_back(name);
    for (const auto& [name, doc] : m.option_docs) {
      documented.push_back(name);
      EXPECT_FALSE(doc.empty()) << m.name << "." << name;
    }
    EXPECT_EQ(options, documented) << m.name;
  }
  EXPECT_TRUE(method_info("resampling").needs.similarity);
  EXPECT_TRUE(method_info("attention_rhythm").needs.model);
  EXPECT_EQ(method_info("attention_rhythm").headline_scores.front(), "fai");
}

}  // namespace
}  // namespace anchors
