// Final answers (core/answers.h): \boxed{} extraction, both normalisers,
// numeric values and equivalence. answers.h promises that none of them fails
// on any input and that each is linear in it, so here every exception, even
// anchors::Error, is a finding, and so is a run past the -timeout.
//
// Input: answer a @@@@ answer b (the whole input is also searched for boxes).
#include <cmath>
#include <cstdint>
#include <string>

#include "anchors/core/answers.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace anchors;
  const std::string_view text = fuzz::text_of(data, size);
  const auto parts = fuzz::split_parts(text, 2);
  const std::string& a = parts[0];
  const std::string& b = parts[1];
  fuzz::expect_no_exception("the answer functions", [&] {
    const auto boxes = extract_all_boxed(text);
    const auto first = extract_boxed(text);
    FUZZ_CHECK(!first || !boxes.empty(), "extract_boxed found a box extract_all_boxed did not");
    normalize_answer_reference(a);
    const std::string norm_a = normalize_answer(a);
    if (const auto value = answer_numeric_value(norm_a))
      FUZZ_CHECK(std::isfinite(*value), "answer_numeric_value gave a non-finite value");
    // Equal normalized strings are equivalent when non-empty (answers.h).
    FUZZ_CHECK(answers_equivalent(a, a) == !norm_a.empty(), "answers_equivalent(a, a) is not reflexive");
    FUZZ_CHECK(answers_equivalent(a, b) == answers_equivalent(b, a), "answers_equivalent is not symmetric");
  });
  return 0;
}
