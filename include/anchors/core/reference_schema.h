#pragma once
// The authors' published per-problem files (the thought-anchors.com layout of
// shared/data/reference), as value types with readers and writers:
//
//   chunks_labeled.json   one LabeledChunk per analysed sentence
//   step_importance.json  StepImportance: the sentence-to-sentence matrix, j > i
//                         (step_importance_supp.json has the same schema)
//   summary.json          StepImportanceSummary of step_importance.json
//
// Files are written as the reference writes them (Python json.dump, indent 2,
// non-ASCII escaped, keys in the reference order), atomically (temporary file
// in the same folder, then rename).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "anchors/core/attribution.h"
#include "anchors/core/resampling_metrics.h"
#include "anchors/core/rollouts.h"

namespace anchors {

// One entry of chunks_labeled.json. Metrics are optional because older files
// (e.g. the step_text copies inside the reference summary.json files) lack
// some and carry others; unknown keys are kept verbatim so that
// read -> write -> read returns the same value.
//
// Besides the math files of Thought Anchors, the reader takes the agentic files
// of Thought Branches (blackmail / whistleblowing scenarios, docs/results.md
// "Agentic scenario folders"), including the web app's string-typed copies:
// a number may be a string holding one ("0.25", "-3e-05"; "None", "nan",
// "inf" and "" mean no value and are kept verbatim, like null), chunk_idx a
// string of digits ("12"), function_tags and depends_on a Python list literal
// ("['plan_generation']", "['0', '3']", "[1, 2]", "[]") or a bare string (one
// element; "" is the empty list). They are read into the typed fields and
// written back as JSON numbers and lists.
struct LabeledChunk {
  std::string chunk;
  std::size_t chunk_idx = 0;
  std::vector<std::string> function_tags;  // docs/design.md §3 taxonomy, e.g. "plan_generation"
  std::vector<std::string> depends_on;     // chunk indices as strings, as the reference; each
                                           // names an entry of the same chunks_labeled.json
  std::optional<double> accuracy;
  std::optional<double> resampling_importance_accuracy;
  std::optional<double> resampling_importance_kl;
  std::optional<double> counterfactual_importance_accuracy;
  std::optional<double> counterfactual_importance_kl;
  std::optional<double> forced_importance_accuracy;
  std::optional<double> forced_importance_kl;
  std::optional<double> different_trajectories_fraction;
  std::optional<double> overdeterminedness;
  std::string summary;  // a few words describing the sentence (LLM-written in the reference)
  // The agentic files' numbers (the keys of scenario_metric_keys():
  // blackmail_rate, counterfactual_importance_blackmail_rate, semantic_entropy,
  // ...) as (key, value), in file order.
  std::vector<std::pair<std::string, double>> scenario_metrics;
  // Other keys (and known keys holding null or a no-value string such as
  // "nan"): name -> compact JSON text of the value, in file order.
  std::vector<std::pair<std::string, std::string>> extra;
  // Key order as read, so a rewritten file keeps its layout; empty = the
  // reference order. Presentation only: not part of equality.
  std::vector<std::string> key_order;

  // Equality of content (key_order ignored).
  bool operator==(const LabeledChunk& o) const;
  bool operator!=(const LabeledChunk& o) const { return !(*this == o); }
};

// The metric fields of LabeledChunk with their JSON keys, in the reference's
// key order (accuracy, resampling_importance_accuracy, ..., overdeterminedness).
struct LabeledChunkMetric {
  const char* key;
  std::optional<double> LabeledChunk::*member;
};
const std::vector<LabeledChunkMetric>& labeled_chunk_metrics();

// A number of the agentic chunks_labeled.json files (Thought Branches:
// analyze_rollouts.py of interp-reasoning/thought-branches and the
// blackmail-rollouts data) and the score series it is imported as. The
// behaviour ("did the model blackmail / blow the whistle") is the outcome and
// "yes" its target, so a rate is an accuracy with the same definitions
// (docs/resampling-metrics.md):
//   <b>_rate                                  -> accuracy
//   resampling_importance_<b>_rate            -> resampling_importance_accuracy
//   counterfactual_importance_<b>_rate        -> counterfactual_importance_accuracy
//   forced_importance_<b>_rate                -> forced_importance_accuracy
//   counterfactual_plusplus_importance_<b>_rate, and its aliases
//   counterfactual_plusplus_importance, counterfactual_importance_cfpp,
//   cfpp_importance                           -> counterfactual_plusplus_importance
//   semantic_entropy                          -> semantic_entropy
// for <b> = blackmail and whistleblowing. (The KL forms, different_trajectories_fraction
// and overdeterminedness carry the math files' names and are LabeledChunk
// fields. The authors' *_logodds keys use another estimator than ours and stay
// unknown keys.)
struct ScenarioMetricKey {
  const char* key;
  const char* series;
};
const std::vector<ScenarioMetricKey>& scenario_metric_keys();

struct TargetImpact {
  std::size_t target_chunk_idx = 0;
  double importance_score = 0.0;
  bool operator==(const TargetImpact& o) const {
    return target_chunk_idx == o.target_chunk_idx && importance_score == o.importance_score;
  }
};

struct StepImportanceRow {
  std::size_t source_chunk_idx = 0;
  std::string source_chunk_text;
  std::vector<TargetImpact> target_impacts;  // every later sentence, in order
  bool operator==(const StepImportanceRow& o) const {
    return source_chunk_idx == o.source_chunk_idx && source_chunk_text == o.source_chunk_text &&
           target_impacts == o.target_impacts;
  }
};

using StepImportance = std::vector<StepImportanceRow>;

struct InfluentialStep {
  std::size_t step_idx = 0;
  LabeledChunk step_text;  // the step's chunks_labeled.json entry (the reference's name)
  double avg_importance = 0.0;  // avg_outgoing_importance or avg_incoming_importance
  bool operator==(const InfluentialStep& o) const {
    return step_idx == o.step_idx && step_text == o.step_text && avg_importance == o.avg_importance;
  }
};

// summary.json, derived from step_importance.json exactly as the reference
// (step_attribution.py): with M the num_chunks × num_chunks matrix of
// importance scores (0 on and below the diagonal),
//   avg/max/min_importance = mean/max/min over all num_chunks² cells,
//   outgoing[i] = mean_{j>i} M[i][j],  incoming[j] = mean_{i<j} M[i][j],
//   top_influential_steps / top_dependent_steps = the 5 largest outgoing /
//   incoming values that are > 0, largest first (ties: later step first).
// Sums follow numpy's pairwise summation so the numbers match to the bit.
struct StepImportanceSummary {
  std::optional<std::int64_t> problem_idx;  // null when the folder is not "problem_N"
  std::size_t num_chunks = 0;
  double avg_importance = 0.0;
  double max_importance = 0.0;
  double min_importance = 0.0;
  std::vector<InfluentialStep> top_influential_steps;  // avg_outgoing_importance
  std::vector<InfluentialStep> top_dependent_steps;    // avg_incoming_importance
  bool operator==(const StepImportanceSummary& o) const {
    return problem_idx == o.problem_idx && num_chunks == o.num_chunks &&
           avg_importance == o.avg_importance && max_importance == o.max_importance &&
           min_importance == o.min_importance && top_influential_steps == o.top_influential_steps &&
           top_dependent_steps == o.top_dependent_steps;
  }
};

// -- readers: anchors::Error naming the file (or source_name) and the problem --
// In chunks_labeled.json every depends_on entry must be the chunk_idx of an
// entry of the same list ("<file>: entry 4 (chunk_idx 4): depends_on entry
// \"9\" names no sentence ..."); the writers refuse such lists alike.
std::vector<LabeledChunk> parse_chunks_labeled(const std::string& json_text,
                                               const std::string& source_name = "<chunks_labeled>");
StepImportance parse_step_importance(const std::string& json_text,
                                     const std::string& source_name = "<step_importance>");
StepImportanceSummary parse_summary(const std::string& json_text,
                                    const std::string& source_name = "<summary>");
std::vector<LabeledChunk> read_chunks_labeled(const std::string& path);
StepImportance read_step_importance(const std::string& path);
StepImportanceSummary read_summary(const std::string& path);

// -- writers --
std::string chunks_labeled_to_json(const std::vector<LabeledChunk>& chunks);
std::string step_importance_to_json(const StepImportance& rows);
std::string summary_to_json(const StepImportanceSummary& summary);
void write_chunks_labeled(const std::vector<LabeledChunk>& chunks, const std::string& path);
void write_step_importance(const StepImportance& rows, const std::string& path);
void write_summary(const StepImportanceSummary& summary, const std::string& path);

// -- building the files from metrics --

// One LabeledChunk per analysed sentence. Undefined metrics (NaN) are written
// as 0.0, as the reference does. Labels (function_tags, depends_on, summary)
// come from `existing_labels` when it describes exactly the same sentences
// (same length, and equal chunk_idx and chunk text at every position);
// otherwise function_tags = ["unknown"], depends_on = [], summary = "".
std::vector<LabeledChunk> labeled_chunks(const ResamplingMetrics& metrics,
                                         const std::vector<LabeledChunk>* existing_labels = nullptr);

// Rows i = every analysed sentence, targets j > i; indices are chunk indices.
// NaN cells are written as 0.0. anchors::Error if the matrix was not computed.
StepImportance step_importance(const ResamplingMetrics& metrics);

// The summary of `rows` (see StepImportanceSummary); step_text entries come
// from `chunks`, looked up by chunk_idx (anchors::Error if one is missing).
StepImportanceSummary summarize_step_importance(const StepImportance& rows,
                                                const std::vector<LabeledChunk>& chunks,
                                                std::optional<std::int64_t> problem_idx,
                                                std::size_t top_steps = 5);

// The authors' step_importance_supp.json from this library's
// attention_suppression attribution of `result`: its "suppression" matrix
// ([S x S], S[j, i] = the effect on sentence j of suppressing sentence i,
// rows centred, NaN where j <= i; docs/attention-suppression.md), in
// step_importance.json's schema as the authors write it: a row per sentence i
// (source_chunk_idx i, its text) with every later sentence j as a target,
// importance_score = S[j, i] (NaN written as 0.0). import_reference_folder
// reads it back as that attribution's "sentence_to_sentence" matrix
// (M[i][j] = S[j, i]). anchors::Error when the result has no
// attention_suppression attribution, or its matrix is not S x S.
StepImportance suppression_step_importance(const AnalysisResult& result);
// Writes it as <dir>/step_importance_supp.json (atomically) and returns the path.
std::string write_step_importance_supp(const AnalysisResult& result, const std::string& dir);

struct ReferenceOutputOptions {
  // chunks_labeled.json whose labels are kept (see labeled_chunks); "" means
  // <problem_dir>/chunks_labeled.json when that file exists. A file that
  // exists but cannot be read is an anchors::Error.
  std::string labels_path;
  bool keep_labels = true;
  std::size_t top_steps = 5;
};

struct ReferenceOutputs {
  std::vector<LabeledChunk> chunks_labeled;
  StepImportance step_importance;   // empty when the matrix was not computed
  std::optional<StepImportanceSummary> summary;
};

// Writes chunks_labeled.json, chunks_resampled.json (the authors' file:
// {"<chunk_idx>": [each rollout's chunk_resampled, sorted]} for every chunk
// with rollouts; sorted so that a resumed run writes the same bytes; report.h
// reads it back), and step_importance.json +
// summary.json when the metrics hold a matrix, into out_dir (created if
// missing), each atomically.
// Used by `anchors metrics PROBLEM_DIR --out DIR`. For the rollouts of an
// agentic folder (rollouts.behavior = "blackmail", say) chunks_labeled.json
// names the rates as the authors' agentic files do, in their key order:
// blackmail_rate, resampling_importance_blackmail_rate,
// counterfactual_importance_blackmail_rate, forced_importance_blackmail_rate
// (scenario_metric_keys() in reverse); the other keys keep their names.
ReferenceOutputs write_reference_outputs(const ProblemRollouts& rollouts,
                                         const ResamplingMetrics& metrics,
                                         const std::string& out_dir,
                                         const ReferenceOutputOptions& options = {});

}  // namespace anchors
