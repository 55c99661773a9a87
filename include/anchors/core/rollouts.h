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
//
// The agentic folders of Thought Branches (blackmail / whistleblowing
// scenarios: interp-reasoning/thought-branches, the blackmail-rollouts data)
// are read too (docs/rollouts.md, "Agentic scenario folders"):
//
//   <root>/yes_base_solution/scenario_N/
//       scenario.json         {system_prompt, user_prompt, email_content, variables, nickname,
//                              scenario_id, ...} or {conversation_history: [{role, content}], ...}
//       base_solution.json    {prompt, solution, full_cot, contains_blackmail, reasoning}
//       chunks.json           {source_text, solution_text, chunks, separators}
//       chunk_i/solutions.json  records with contains_blackmail (or contains_whistleblowing)
//                               and the judge's reasoning instead of answer / is_correct
//
// The behaviour is the outcome and "yes" its target: a verdict true / false
// reads as answer "yes" / "no" with is_correct = the verdict (over any answer /
// is_correct of the same record); null as no answer (not counted, as the
// authors' rates leave it out).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "anchors/core/sentence.h"
#include "anchors/rollout/provider.h"

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
  // written only when non-empty (the authors' math files have none). In the
  // authors' agentic files the judge's text is "reasoning": read into this
  // field when the record has no outcome_raw, with keep_full_texts only (it is
  // about as long as a rollout).
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
  // "blackmail" / "whistleblowing" when the records carry contains_<behaviour>
  // verdicts (the first such record names it); "" otherwise.
  std::string behavior;

  std::size_t num_records() const { return rollouts.size() + num_errors; }
  // Rollouts with a non-empty answer (R_i of docs/design.md).
  std::size_t num_valid() const;
  std::size_t num_without_answer() const { return rollouts.size() - num_valid(); }

  bool operator==(const SentenceRollouts& o) const {
    return chunk_idx == o.chunk_idx && present == o.present && rollouts == o.rollouts &&
           num_errors == o.num_errors && behavior == o.behavior;
  }
};

// problem.json, or an agentic folder's scenario.json (parse_scenario).
struct Problem {
  std::string text;         // "problem"; for a scenario its transcript (parse_scenario)
  std::string gt_answer;    // "" if absent; "yes" for a scenario (the behaviour is the target)
  std::string gt_solution;
  std::string level;
  std::string type;
  std::string nickname;
  // scenario.json as compact JSON text (key order kept); "" for problem.json.
  std::string scenario;

  bool is_scenario() const { return !scenario.empty(); }
  bool operator==(const Problem& o) const {
    return text == o.text && gt_answer == o.gt_answer && gt_solution == o.gt_solution &&
           level == o.level && type == o.type && nickname == o.nickname && scenario == o.scenario;
  }
};

// base_solution.json
struct BaseSolution {
  std::string prompt;     // in a scenario folder without one: scenario_prompt(problem)
  std::string solution;   // chain of thought and answer
  std::string full_cot;   // prompt + solution
  std::string answer;     // in a scenario folder: "yes" / "no" from contains_<behaviour>
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
  // chunks.json "separators" (the agentic splitter: the text between chunk k
  // and chunk k+1), one per chunk; empty when the file has none.
  std::vector<std::string> separators;
  // "blackmail" or "whistleblowing" when the verdicts were read from
  // contains_<behaviour> fields (base_solution.json, else the first record
  // that has one); "" otherwise.
  std::string behavior;
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

// Reads problem.json (or, in an agentic folder, scenario.json),
// base_solution.json, chunks.json and every chunk_i/solutions.json (i over
// chunks.json's list) of `problem_dir`, and the forced-answer sibling. Missing
// chunk folders are allowed (present = false); a folder with neither or both
// of problem.json and scenario.json, missing base_solution.json / chunks.json,
// malformed JSON, invalid UTF-8, fields of the wrong type (a verdict that is
// not true, false or null; separators that are not one string per chunk) and
// a record with both contains_blackmail and contains_whistleblowing are
// anchors::Error naming the file (and the record) and the problem.
ProblemRollouts read_problem_rollouts(const std::string& problem_dir,
                                      const ReadRolloutsOptions& options = {});

// Reads one solutions.json (a list of records). anchors::Error on bad input.
SentenceRollouts read_sentence_rollouts(const std::string& solutions_json_path,
                                        std::size_t chunk_idx, bool keep_full_texts = false);
// The same from the file's text; `source` names it in errors.
SentenceRollouts parse_sentence_rollouts(const std::string& json_text, const std::string& source,
                                         std::size_t chunk_idx, bool keep_full_texts = false);

// chunks.json: {source_text, solution_text, chunks: [sentence, ...]} and, from
// the agentic splitter, separators: [text after chunk k, ...].
struct ChunksFile {
  std::string source_text;
  std::string solution_text;
  std::vector<std::string> chunks;
  std::vector<std::string> separators;  // empty when absent or null
};
// anchors::Error naming the file for malformed JSON, a missing "chunks", an
// entry that is not a string, and separators that are not one string per chunk.
ChunksFile read_chunks_file(const std::string& path);

// -- agentic scenarios (Thought Branches) --------------------------------------

// What the authors' prompt builders put after the transcript: the assistant's
// turn, opened in its reasoning.
inline constexpr const char* kScenarioAssistantOpener = "\n\nAssistant:\n<think>\n";

// scenario.json as a Problem: `scenario` = the document as compact JSON,
// `nickname` its "nickname", gt_answer "yes", and `text` the transcript the
// authors' raw-text prompt builders make of it (no chat template; spec of
// interp-reasoning/thought-branches, measure_determination.py and
// onpolicy_chain_disruption.py):
//   - with a non-empty "conversation_history" list (whistleblowing): the first
//     turn's content, then for every later turn with non-empty content
//     "\n\nUser: " + content (role "user", any case) or "\n\nAssistant: " +
//     content (any other role);
//   - else (blackmail): system_prompt, then "\n\nUser: " + user_prompt and
//     "\n\n" + email_content, each only when non-empty.
// gt_answer is "yes" (the behaviour is the target), or the scenario's own
// "target" (our scenario files, docs/thought-branches.md "Scenario files").
// Every key is optional and unknown keys are kept (in `scenario`). anchors::Error
// naming `source` and the field for malformed JSON, a top level that is not an
// object, and a known field of the wrong type (system_prompt, user_prompt,
// email_content, nickname, target: string or null; conversation_history: a list
// of objects whose role and content are strings or null).
Problem parse_scenario(const std::string& json_text, const std::string& source);
// The model's prompt: problem.text + kScenarioAssistantOpener.
std::string scenario_prompt(const Problem& scenario);
// The same scenario as chat turns (what a chat template or a chat endpoint
// sees), role by role as `text` reads it: with a conversation_history, the
// first turn as "system" (whatever its role: the authors' builder treats it as
// the system text), then every later non-empty turn as "user" (role "user", any
// case) or "assistant"; else "system" (system_prompt, when non-empty) and one
// "user" turn: user_prompt, then "\n\n" + email_content (each when non-empty).
// Empty turns are left out. A Problem that is no scenario: one "user" turn
// with its text. Errors as parse_scenario (the scenario is re-read).
std::vector<rollout::ChatMessage> problem_messages(const Problem& problem);

// Where the chunks `selected` (indices into `chunks`, strictly ascending) of
// chunks.json lie in the base solution, as Sentences (index = position in
// `selected`, text = the chunk, no tags). Each is searched in `solution` from
// the end of the one before (exact bytes); when one is not found there — the
// agentic splitter rewrites some text, e.g. the escaped "\n" of a tool call's
// e-mail body become newlines — `text` is instead the text the chunks describe,
// chunk_0 + separators[0] + chunk_1 + ... (with no separators, one space
// between chunks), `joined` is true and `not_found` names the first selected
// position that was missing. anchors::Error naming `source` when `selected`
// is not ascending or out of range. Cost: one forward search through the
// solution (std::string::find from chunk to chunk), plus building the joined
// text when a chunk is missing.
struct ChunkedSolution {
  std::string text;
  std::vector<Sentence> sentences;
  bool joined = false;
  std::optional<std::size_t> not_found;
};
ChunkedSolution chunked_solution(const std::string& solution, const std::vector<std::string>& chunks,
                                 const std::vector<std::string>& separators, const std::vector<std::size_t>& selected,
                                 const std::string& source);

// Where the authors' generator puts the forced-answer rollouts of a problem
// folder: ".../X_base_solution[_suffix]/problem_N" ->
// ".../X_base_solution_forced_answer[_suffix]/problem_N"; a parent without
// "_base_solution" gets "_forced_answer" appended. Does not touch the disk.
std::string forced_sibling_dir(const std::string& problem_dir);

}  // namespace anchors
