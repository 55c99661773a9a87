#pragma once
// Loading the authors' published results (a thought-anchors.com problem folder,
// as in shared/data/reference) into our own result type, so they can be shown,
// compared and saved like any analysis of ours.
#include <string>

#include "anchors/core/attribution.h"

namespace anchors {

// Reads <dir>/base_solution.json (trace text, prompt, answer), segments the
// solution with the reference rules and checks the sentences against
// <dir>/chunks_labeled.json, whose function tags become the sentences' tags and
// whose metrics become the attribution "resampling" (one score series per
// metric, named as in the file). <dir>/step_importance.json, if present,
// becomes its "sentence_to_sentence" matrix (rows: source sentence, columns:
// target sentence); <dir>/step_importance_supp.json, if present, the matrix
// "sentence_to_sentence" of the attribution "attention_suppression" (the
// authors' row-centred suppression log-KL, same orientation). problem.json
// fills metadata (problem, gt_answer, level, type, nickname).
//
// An agentic folder of Thought Branches has scenario.json instead of
// problem.json (docs/results.md, "Agentic scenario folders"):
//   - prompt: base_solution.json's, else scenario_prompt(parse_scenario(...))
//     (rollouts.h: system_prompt + "\n\nUser: " + user_prompt + "\n\n" +
//     email_content, or the turns of conversation_history, then
//     "\n\nAssistant:\n<think>\n"); metadata "problem" = that transcript,
//     "scenario" = scenario.json as compact JSON, "nickname", "gt_answer" = "yes";
//   - answer: contains_blackmail / contains_whistleblowing true / false ->
//     "yes" / "no" and metadata is_correct (null: no answer); metadata
//     "behavior" ("blackmail" / "whistleblowing") and "judge_reasoning";
//   - sentences: the chunks_labeled.json entries (chunk_idx into chunks.json,
//     skipping chunks under 4 characters), located in the solution, or in the
//     chunks joined by their separators when the authors' splitter rewrote the
//     text (chunked_solution; metadata "text_source"); the attribution's
//     metadata "chunk_idx" lists their indices, and step_importance.json's
//     indices are read as chunk_idx values;
//   - scores: the agentic keys under the math names (scenario_metric_keys(),
//     reference_schema.h: blackmail_rate -> accuracy, ...), CF++ as
//     "counterfactual_plusplus_importance", "semantic_entropy"; string-typed
//     numbers and Python list literals are read (parse_chunks_labeled).
// anchors::Error names the file and the problem (missing files, neither or both
// of problem.json and scenario.json, malformed JSON, fields of the wrong type,
// strings that are not numbers or lists, chunks that do not match the
// segmentation or chunks.json, CF++ aliases that disagree, indices out of
// range). Cost: one parse of each file; the chunks are located by one forward
// search through the solution.
AnalysisResult import_reference_folder(const std::string& dir);

}  // namespace anchors
