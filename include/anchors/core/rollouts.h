#pragma once
// Rollouts on disk in the authors' "math-rollouts" layout, read into value
// types (docs/rollouts.md describes the layout in full):
//
//   <root>/<kind>_base_solution/problem_N/
//       problem.json          {problem, gt_answer, level, type, gt_solution, nickname}
//       base_solution.json    {prompt, solution, full_cot, answer, is_correct}
//       chunks.json           {source_text, solution_text, chunks: [sentence, ...]}
//       chunk_i/solutions.json  [record, ...] resampled from before sentence i
//   <root>/<kind>_base_solution_forced_answer/problem_N/chunk_i/solutions.json
//
// A record is either a rollout {chunk_removed, prefix_without_chunk,
// chunk_resampled, rollout, full_cot, answer, is_correct} or an error record
// {"error": ...} left by a failed generation request.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace anchors {

// One resampled continuation. Every field is optional in the files (the
// authors' code reads them with defaults); a missing string reads as "".
struct Rollout {
  std::string chunk_removed;         // sentence i, which this rollout replaced
  std::string prefix_without_chunk;  // sentences 0..i-1 (kept only with keep_full_texts)
  std::string chunk_resampled;       // first sentence of `rollout` (T_i of docs/design.md)
  std::string rollout;               // the generated continuation
  std::string full_cot;              // prompt + rollout (kept only with keep_full_texts)
  std::string answer;                // the outcome's label (default: the \boxed{} answer); "" = no answer
  std::optional<bool> is_correct;    // as recorded; nullopt if absent or null
  // What the label was read from when an outcome keeps it (a chat judge's
  // verbatim answer, outcome.h); "" otherwise. File field "outcome_raw",
  // written only when non-empty (the authors' files have none).
  std::string outcome_raw;

  // A rollout is "valid" (docs/design.md §3: counts towards answer distributions
  // and accuracies) when it has a non-empty answer. Rollouts without one
  // (usually cut off at the token limit) stay in the data: they still count
  // for the sentence-to-sentence matrix, which only looks at the text.
  bool has_answer() const { return !answer.empty(); }

  bool operator==(const Rollout& o) const {
    return chunk_removed == o.chunk_removed && prefix_without_chunk == o.prefix_without_chunk &&
           chunk_resampled == o.chunk_resampled && rollout == o.rollout &&
           full_cot == o.full_cot && answer == o.answer && is_correct == o.is_correct &&
           outcome_raw == o.outcome_raw;
  }
};

// The records of one chunk_i/solutions.json.
struct SentenceRollouts {
  std::size_t chunk_idx = 0;       // i: index into ProblemRollouts::chunks
  bool present = false;            // chunk_i/solutions.json exists
  std::vector<Rollout> rollouts;   // every non-error record, in file order
  std::size_t num_errors = 0;      // {"error": ...} records: skipped, never "wrong answers"

  std::size_t num_records() const { return rollouts.size() + num_errors; }
  // Rollouts with a non-empty answer (R_i of docs/design.md).
  std::size_t num_valid() const;
  std::size_t num_without_answer() const { return rollouts.size() - num_valid(); }

  bool operator==(const SentenceRollouts& o) const {
    return chunk_idx == o.chunk_idx && present == o.present && rollouts == o.rollouts &&
           num_errors == o.num_errors;
  }
};

// problem.json
struct Problem {
  std::string text;         // "problem"
  std::string gt_answer;    // "" if absent
  std::string gt_solution;
  std::string level;
  std::string type;
  std::string nickname;

  bool operator==(const Problem& o) const {
    return text == o.text && gt_answer == o.gt_answer && gt_solution == o.gt_solution &&
           level == o.level && type == o.type && nickname == o.nickname;
  }
};

// base_solution.json
struct BaseSolution {
  std::string prompt;
  std::string solution;   // chain of thought and answer
  std::string full_cot;   // prompt + solution
  std::string answer;
  std::optional<bool> is_correct;

  bool operator==(const BaseSolution& o) const {
    return prompt == o.prompt && solution == o.solution && full_cot == o.full_cot &&
           answer == o.answer && is_correct == o.is_correct;
  }
};

// Everything about one problem folder.
struct ProblemRollouts {
  std::string problem_dir;          // as given to read_problem_rollouts
  std::string problem_id;           // the folder's name, e.g. "problem_330"
  Problem problem;
  BaseSolution base_solution;
  std::string source_text;          // chunks.json "source_text"
  std::string solution_text;        // chunks.json "solution_text"
  std::vector<std::string> chunks;  // chunks.json "chunks": every sentence, unfiltered
  // One entry per chunk (resampled[i].chunk_idx == i); `present` is false
  // where chunk_i/solutions.json does not exist.
  std::vector<SentenceRollouts> resampled;
  // Forced-answer rollouts, one entry per chunk, or empty when there is no
  // forced folder for this problem.
  std::string forced_dir;           // "" when none was found
  std::vector<SentenceRollouts> forced;

  bool has_forced() const { return !forced.empty(); }
  // N of a folder named "problem_N"; nullopt for other names.
  std::optional<std::int64_t> problem_index() const;
};

struct ReadRolloutsOptions {
  // Read <parent>_forced_answer/<problem_id> (see forced_sibling_dir) when it
  // exists. Off: never read forced rollouts.
  bool read_forced = true;
  // Explicit forced-answer problem folder; it must exist. Overrides the search.
  std::string forced_dir;
  // full_cot (= prompt + rollout) and prefix_without_chunk repeat text that is
  // already known and dominate memory on real data (100 rollouts x up to 16k
  // tokens per sentence); they are dropped unless asked for.
  bool keep_full_texts = false;
};

// Reads problem.json, base_solution.json, chunks.json and every
// chunk_i/solutions.json (i over chunks.json's list) of `problem_dir`, and the
// forced-answer sibling. Missing chunk folders are allowed (present = false);
// missing problem.json / base_solution.json / chunks.json, malformed JSON,
// invalid UTF-8, and fields of the wrong type are anchors::Error naming the
// file (and the record) and the problem.
ProblemRollouts read_problem_rollouts(const std::string& problem_dir,
                                      const ReadRolloutsOptions& options = {});

// Reads one solutions.json (a list of records). anchors::Error on bad input.
SentenceRollouts read_sentence_rollouts(const std::string& solutions_json_path,
                                        std::size_t chunk_idx, bool keep_full_texts = false);
// The same from the file's text; `source` names it in errors.
SentenceRollouts parse_sentence_rollouts(const std::string& json_text, const std::string& source,
                                         std::size_t chunk_idx, bool keep_full_texts = false);

// Where the authors' generator puts the forced-answer rollouts of a problem
// folder: ".../X_base_solution[_suffix]/problem_N" ->
// ".../X_base_solution_forced_answer[_suffix]/problem_N"; a parent without
// "_base_solution" gets "_forced_answer" appended. Does not touch the disk.
std::string forced_sibling_dir(const std::string& problem_dir);

}  // namespace anchors
