// The authors' per-problem files (reference_schema.h, reference_import.h).
// What parses must write and read back equal (reference_schema.h: read ->
// write -> read returns the same value).
//
// Input: mode byte, then
//   '0' chunks_labeled.json text    -> parse_chunks_labeled, write, parse
//   '1' step_importance.json text   -> parse_step_importance, write, parse
//   '2' summary.json text           -> parse_summary, write, parse
//   '3' base_solution.json @@@@ chunks_labeled.json @@@@ problem.json
//       @@@@ step_importance.json @@@@ step_importance_supp.json
//       @@@@ scenario.json @@@@ chunks.json
//                                   -> import_reference_folder on a folder
//                                      holding the non-empty parts (the last
//                                      two make an agentic scenario folder)
#include <cstdint>
#include <optional>
#include <string>

#include "anchors/core/attribution.h"
#include "anchors/core/reference_import.h"
#include "anchors/core/reference_schema.h"
#include "fuzz_common.h"

namespace {

using namespace anchors;

// Parses `text`; when that succeeds, writing and parsing again must give the same value.
template <class Value, class Parse, class Write>
void round_trip(const std::string& text, Parse parse, Write write) {
  std::optional<Value> value;
  fuzz::expect_only_anchors_errors([&] { value = parse(text, "input.json"); });
  if (!value) return;
  fuzz::expect_no_exception("writing and reading back a file that was read", [&] {
    const Value again = parse(write(*value), "written.json");
    FUZZ_CHECK(again == *value, "read -> write -> read changed the value");
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = fuzz::split_mode(data, size, 4);
  const std::string text(input.rest);
  switch (input.mode) {
    case 0:
      round_trip<std::vector<LabeledChunk>>(text, parse_chunks_labeled, chunks_labeled_to_json);
      break;
    case 1:
      round_trip<StepImportance>(text, parse_step_importance, step_importance_to_json);
      break;
    case 2:
      round_trip<StepImportanceSummary>(text, parse_summary, summary_to_json);
      break;
    default: {
      auto& dir = fuzz::ScratchDir::get();
      dir.clear();
      const auto parts = fuzz::split_parts(input.rest, 7);
      const char* names[] = {"base_solution.json",        "chunks_labeled.json", "problem.json", "step_importance.json",
                             "step_importance_supp.json", "scenario.json",       "chunks.json"};
      for (std::size_t k = 0; k < parts.size(); ++k)
        if (!parts[k].empty()) dir.write(names[k], parts[k]);
      fuzz::expect_only_anchors_errors([&] {
        const AnalysisResult result = import_reference_folder(dir.path().string());
        // An imported folder is a result like any other: it saves and loads back.
        fuzz::expect_no_exception("saving an imported folder", [&] {
          FUZZ_CHECK(result_from_json(result_to_json(result), "saved") == result, "load(save(x)) differs from x");
        });
      });
      break;
    }
  }
  return 0;
}
