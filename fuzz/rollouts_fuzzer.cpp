// Rollout records (core/rollouts.h, rollout/rollout_store.h): the
// solutions.json of a chunk, a whole problem folder, and the store's
// read-modify-write of a folder another run left.
//
// Input: mode byte, then
//   '0' solutions.json text     -> parse_sentence_rollouts
//   '1' problem.json @@@@ base_solution.json @@@@ chunks.json
//       @@@@ chunk_0/solutions.json @@@@ <forced>/chunk_0/solutions.json
//       @@@@ scenario.json      -> read_problem_rollouts on that folder (an
//                                  agentic one with scenario.json instead of
//                                  problem.json); for a scenario, its chunks
//                                  placed by chunked_solution must make a
//                                  valid Trace
//   '2' chunk_0/solutions.json @@@@ manifest.json @@@@ base_solution.json
//                               -> RolloutStore: load_rollouts, missing_indices,
//                                  begin_writing, append_rollouts, load again
// (empty parts are files that do not exist)
#include <cstdint>
#include <numeric>
#include <string>

#include "anchors/core/rollouts.h"
#include "anchors/core/trace.h"
#include "anchors/rollout/rollout_store.h"
#include "fuzz_common.h"

namespace {

using namespace anchors;

// Writes the non-empty parts under the scratch folder.
std::string write_folder(const std::vector<std::string>& parts, const std::vector<std::string>& names) {
  auto& dir = fuzz::ScratchDir::get();
  dir.clear();
  for (std::size_t k = 0; k < parts.size(); ++k)
    if (!parts[k].empty()) dir.write(names[k], parts[k]);
  return (dir.path() / "x_base_solution" / "problem_1").string();
}

void check_sentence(const SentenceRollouts& s, std::size_t chunk_idx) {
  FUZZ_CHECK(s.chunk_idx == chunk_idx, "chunk_idx");
  FUZZ_CHECK(s.num_valid() <= s.rollouts.size(), "num_valid");
}

void store_read_modify_write(const std::vector<std::string>& parts) {
  const std::string problem = write_folder(
      parts, {"x_base_solution/problem_1/chunk_0/solutions.json", "x_base_solution/problem_1/manifest.json",
              "x_base_solution/problem_1/base_solution.json"});
  rollout::RolloutStore store(problem);
  fuzz::expect_only_anchors_errors([&] {
    const SentenceRollouts before = store.load_rollouts(0, false);
    check_sentence(before, 0);
    const auto missing = store.missing_indices(0, false, 4);
    FUZZ_CHECK(missing.size() == store.missing(0, false, 4), "missing_indices and missing disagree");
    store.begin_writing({rollout::base_solution_hash("prompt", "solution"), 7, {{"temperature", 0.6}}});
    rollout::RolloutRecord record;
    record.rollout.rollout = "continuation";
    record.rollout.answer = "42";
    store.append_rollouts(0, false, {record, rollout::RolloutRecord::failure("timeout")});
    const SentenceRollouts after = store.load_rollouts(0, false);
    // Earlier error records are dropped, the new records are kept.
    FUZZ_CHECK(after.rollouts.size() == before.rollouts.size() + 1, "append lost or duplicated a record");
    FUZZ_CHECK(after.num_errors == 1, "append kept an old error record");
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = fuzz::split_mode(data, size, 3);
  switch (input.mode) {
    case 0:
      fuzz::expect_only_anchors_errors([&] {
        check_sentence(parse_sentence_rollouts(std::string(input.rest), "solutions.json", 3, size % 2 == 0), 3);
      });
      break;
    case 1: {
      const std::string problem = write_folder(
          fuzz::split_parts(input.rest, 6),
          {"x_base_solution/problem_1/problem.json", "x_base_solution/problem_1/base_solution.json",
           "x_base_solution/problem_1/chunks.json", "x_base_solution/problem_1/chunk_0/solutions.json",
           "x_base_solution_forced_answer/problem_1/chunk_0/solutions.json",
           "x_base_solution/problem_1/scenario.json"});
      fuzz::expect_only_anchors_errors([&] {
        const ProblemRollouts rollouts = read_problem_rollouts(problem);
        FUZZ_CHECK(rollouts.resampled.size() == rollouts.chunks.size(), "one entry per chunk");
        FUZZ_CHECK(!rollouts.has_forced() || rollouts.forced.size() == rollouts.chunks.size(), "forced entries");
        for (std::size_t i = 0; i < rollouts.resampled.size(); ++i) check_sentence(rollouts.resampled[i], i);
        if (rollouts.problem.is_scenario()) {
          std::vector<std::size_t> every(rollouts.chunks.size());
          std::iota(every.begin(), every.end(), std::size_t{0});
          const ChunkedSolution placed = chunked_solution(rollouts.base_solution.solution, rollouts.chunks,
                                                          rollouts.separators, every, "chunks.json");
          fuzz::expect_no_exception("the trace of placed chunks", [&] {
            Trace trace;
            trace.text = placed.text;
            trace.sentences = placed.sentences;
            trace.validate();
          });
        }
      });
      break;
    }
    default:
      store_read_modify_write(fuzz::split_parts(input.rest, 3));
      break;
  }
  return 0;
}
