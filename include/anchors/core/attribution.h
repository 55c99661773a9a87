#pragma once
// The result of one attribution method on one trace, and the document that
// holds a trace together with every method's results (our own file format).
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "anchors/core/matrix.h"
#include "anchors/core/trace.h"
#include "anchors/core/value.h"

namespace anchors {

// One method's output: named per-sentence score series (each of length S; NaN
// where a sentence has no value), named matrices (S×S sentence matrices, or
// other shapes such as per-head tables), the options used and free metadata.
struct Attribution {
  std::string method;                                   // registry name, e.g. "resampling"
  std::map<std::string, std::vector<double>> scores;    // e.g. "counterfactual_importance_kl"
  std::map<std::string, Matrix> matrices;               // e.g. "sentence_to_sentence"
  ValueMap options;                                     // options the method ran with
  ValueMap metadata;                                    // counts, timings, versions

  // The series named `name`; anchors::Error listing the available names otherwise.
  const std::vector<double>& score(const std::string& name) const;
  const Matrix& matrix(const std::string& name) const;

  // Content equality in which NaN equals NaN (a missing value equals a missing
  // value), in scores, matrices, options and metadata alike.
  bool operator==(const Attribution& o) const;
  bool operator!=(const Attribution& o) const { return !(*this == o); }
};

// One analysed trace: the trace with its sentences and every method's results.
struct AnalysisResult {
  Trace trace;
  std::vector<Attribution> attributions;

  // The attribution of `method`; anchors::Error if absent.
  const Attribution& attribution(const std::string& method) const;
  // Adds or replaces the attribution with the same method name.
  void set_attribution(Attribution attribution);

  // Checks the trace (Trace::validate) and that every score series has one
  // value per sentence; anchors::Error naming the method and series otherwise.
  void validate() const;

  bool operator==(const AnalysisResult& o) const {
    return trace == o.trace && attributions == o.attributions;
  }
};

// JSON document (format "thought-anchors/result", version 1). Char spans are
// written as Unicode code point offsets ("char_start", "char_end"), NaN as null;
// doubles are written with round-trip precision, so load(save(x)) == x.
std::string result_to_json(const AnalysisResult& result, int indent = 1);
AnalysisResult result_from_json(const std::string& json_text, const std::string& source_name = "<json>");

// Atomic write (temp file + rename) and load; errors name the path.
void save_result(const AnalysisResult& result, const std::string& path);
AnalysisResult load_result(const std::string& path);

}  // namespace anchors
