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
// authors' row-centred suppression log-KL, same orientation). problem.json,
// if present, fills metadata (problem, gt_answer, level, type, nickname).
// anchors::Error names the file and the problem (missing files, malformed
// JSON, chunks that do not match the segmentation, indices out of range).
AnalysisResult import_reference_folder(const std::string& dir);

}  // namespace anchors
