// Result files (format "thought-anchors/result"): result_from_json, which
// load_result runs on the file's text. A result that loads must save, and
// load back equal (attribution.h: load(save(x)) == x).
#include <cstdint>
#include <string>

#include "anchors/core/attribution.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace anchors;
  std::optional<AnalysisResult> result;
  fuzz::expect_only_anchors_errors(
      [&] { result = result_from_json(std::string(fuzz::text_of(data, size)), "result.json"); });
  if (!result) return 0;
  fuzz::expect_no_exception("saving and reloading a loaded result", [&] {
    const AnalysisResult again = result_from_json(result_to_json(*result), "saved result");
    FUZZ_CHECK(again == *result, "load(save(x)) differs from x");
  });
  return 0;
}
