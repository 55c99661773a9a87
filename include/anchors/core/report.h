#pragma once
// The HTML report of one analysed trace: a single self-contained file (no
// network access, no external scripts, styles or fonts) that shows the chain
// of thought with every sentence coloured by a chosen importance series and
// tagged by function, the top anchors, every matrix of the result as a
// heatmap, receiver-head sentence scores, and for the selected sentence its
// scores, resampled alternatives and strongest links. docs/report.md.
//
// The result travels as one JSON document inside
// <script type="application/json" id="ta-data"> (every '<' written as \u003c,
// so no sentence can close the script element); a small embedded script draws
// the page from it. The sentences are also written as escaped HTML, so the
// trace reads without scripts.
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "anchors/core/attribution.h"
#include "anchors/core/rollouts.h"
#include "anchors/core/trace.h"

namespace anchors {

// Resampled alternatives per sentence index: the first sentence of each
// rollout resampled from before sentence i (T_i of docs/design.md), in rollout order
// (repeats included: the report counts them).
using SentenceAlternatives = std::map<std::size_t, std::vector<std::string>>;

struct ReportOptions {
  std::string title;                 // "" : "Thought anchors — <problem_id>" (or "Thought anchors")
  // The score series the page opens with; "" picks the paper's headline metric
  // (counterfactual_importance_kl, ...) or else the first series. Naming one
  // the result lacks is an anchors::Error.
  std::string method;
  std::string score;
  std::size_t top_anchors = 10;      // length of the top-anchors list
  std::size_t max_alternatives = 12; // distinct alternatives listed per sentence (most frequent first)
  std::size_t max_links = 5;         // strongest incoming and outgoing links per sentence and matrix
  SentenceAlternatives alternatives; // indices must be < the number of sentences
};

// The whole page. Validates the result (AnalysisResult::validate) and the
// options; anchors::Error otherwise.
std::string render_report_html(const AnalysisResult& result, const ReportOptions& options = {});

// render_report_html written atomically (temporary file, then rename); errors name the path.
void write_report_html(const AnalysisResult& result, const std::string& path, const ReportOptions& options = {});

// ---- resampled alternatives ------------------------------------------------

// From rollouts already read: sentence i of `trace` gets chunk_resampled of
// every rollout of its chunk (chunks.json matched to the sentences by text, in
// order; chunks shorter than the analysis keeps are skipped). anchors::Error
// if no sentence of the trace is among the rollouts' chunks.
SentenceAlternatives alternatives_from_rollouts(const ProblemRollouts& rollouts, const Trace& trace);

// Reads a rollout problem folder (math-rollouts layout, docs/rollouts.md) and
// calls alternatives_from_rollouts.
SentenceAlternatives read_rollout_alternatives(const std::string& problem_dir, const Trace& trace);

// The authors' chunks_resampled.json ({"chunk_idx": [sentence, ...]}), given
// as the file or the reference folder holding it; chunk indices are sentence
// indices (as import_reference_folder). anchors::Error for malformed files or
// indices past the trace's sentences.
SentenceAlternatives read_reference_alternatives(const std::string& path, const Trace& trace);

// Either of the two: a file or a folder with chunks_resampled.json is read as
// the reference's, a folder with chunks.json as rollouts; anchors::Error
// otherwise.
SentenceAlternatives read_alternatives(const std::string& path, const Trace& trace);

}  // namespace anchors
