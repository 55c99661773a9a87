#pragma once
// A study's sentences as one table: one row per sentence of every analysed
// trace (many problems, several models), with its problem, model, base
// solution kind, position, function tags and every score of every method --
// what the paper's corpus-level results are computed from
// (study_aggregates.h; docs/studies.md). Python turns it into a pandas
// DataFrame (ta.Study.table()) and Parquet.
//
//   anchors::StudyTable t = anchors::study_table_from_folders("runs/study");
//   const std::vector<double>& ci = t.score("counterfactual_importance_accuracy");
//
// Columnar: every member vector has size() entries, one per row, in the order
// the traces were appended and, within a trace, sentence order.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "anchors/core/attribution.h"

namespace anchors {

struct StudyTable {
  std::vector<std::string> model;     // the model folder's name ("" when unknown)
  std::vector<std::string> problem;   // the problem's id, e.g. "problem_330"
  std::vector<std::string> base;      // "correct", "incorrect" or "unknown": the base solution's kind
  std::vector<std::string> level;     // the problem's level ("" when absent)
  std::vector<std::string> type;      // the problem's type ("" when absent)
  std::vector<std::int64_t> sentence; // the sentence's index in its trace
  std::vector<double> position;       // sentence / (S - 1) for a trace of S sentences (0 when S = 1)
  std::vector<std::string> tag;       // its first function tag ("" when none)
  std::vector<std::string> tags;      // all its tags, comma-separated
  std::vector<std::string> text;      // the sentence
  std::vector<std::string> source;    // the folder or file its trace came from
  // "<method>.<series>" -> one value per row; NaN where the row's trace has
  // no such series (or the method gave none for the sentence).
  std::map<std::string, std::vector<double>> scores;
  // Trace-level results: "<method>.<matrix>" -> (source, matrix) for every
  // appended trace whose attribution has that matrix, in append order, for
  // the names in keep_matrices only (an S x S matrix per trace would make a
  // large study's table large): by default the receiver heads' per-trace
  // head kurtosis [L x H], which receiver_head_reliability reads.
  std::set<std::string> keep_matrices = {"receiver_heads.head_kurtosis"};
  std::map<std::string, std::vector<std::pair<std::string, Matrix>>> matrices;

  std::size_t size() const { return sentence.size(); }

  // Appends the sentences of one analysed trace. problem: the trace's
  // metadata "problem_id", else the last component of `source`; level and
  // type from its metadata; base "correct"/"incorrect" from metadata
  // "is_correct" ("true"/"false") unless given. New score columns are filled
  // with NaN for the rows before. anchors::Error when a score series does not
  // have one value per sentence (AnalysisResult::validate). The matrices
  // named in keep_matrices are kept in `matrices`.
  void append(const AnalysisResult& result, const std::string& model, const std::string& base,
              const std::string& source);

  // The column `name`: a full "<method>.<series>" name, or a series name
  // that exactly one method has. anchors::Error listing the columns
  // otherwise (or naming the methods when it is ambiguous).
  const std::vector<double>& score(const std::string& name) const;
  // The full column name score(name) resolves to.
  std::string score_column(const std::string& name) const;

  bool operator==(const StudyTable& o) const;
};

// One analysed trace folder: result.json through load_result when present,
// else the authors' layout through import_reference_folder. anchors::Error
// from either (naming the file).
AnalysisResult load_analysed_folder(const std::string& dir);

// Every analysed trace under `root`, in sorted path order:
//   - a folder with result.json (this library's analyses: `anchors analyze`,
//     a study's folders) -> load_result;
//   - else a folder of the authors' layout (chunks_labeled.json beside
//     problem.json or scenario.json) -> import_reference_folder.
// chunk_<i> folders are not entered. A trace's model is the name of the
// folder above its "<kind>_base_solution" folder, and its base kind that
// <kind> ("correct", "incorrect"; else from the trace's metadata), as in the
// authors' layout <model>/<kind>_base_solution/problem_<id> and ours.
// anchors::Error naming the path: root missing or not a folder, no trace
// under it, or any folder that fails to load (the loader's message).
// Cost: one load per trace folder plus a directory walk. `visit`, when
// given, sees each loaded trace right after it is appended, with the table so
// far and the index of the trace's first row (= table.size() for a trace
// without sentences), so a caller that needs the whole results -- the study
// report's trace pages -- does not load them a second time.
using TraceVisitor =
    std::function<void(const AnalysisResult& result, const StudyTable& table, std::size_t first_row)>;
StudyTable study_table_from_folders(const std::string& root, const TraceVisitor& visit = {});

}  // namespace anchors
