#pragma once
// The study report: one self-contained HTML index of a study (every analysed
// trace under a folder, study_table.h), with a row per trace -- model,
// problem, base kind, level, type, sentences and the trace's mean of every
// score column -- sortable by any column, each row linking to that trace's
// own report (report.h), and the by-tag figures (study_aggregates.h: mean and
// bootstrap interval, plain and position-debiased) inline as SVG. No network
// access, no external files besides the trace reports it links.
//
//   anchors::write_study_report("runs/study", "runs/study-report");
//   // runs/study-report/index.html, runs/study-report/traces/trace_<k>.html
//
// The page marks on <body> what it rendered, as the trace report does:
// data-rendered="ok" (or data-errors="..."), data-rows, data-sorted (the
// column it is sorted by); "#sort=COLUMN" (or "#sort=-COLUMN", descending) in
// the URL sorts on load, a click on a header sorts by that column.
#include <cstddef>
#include <string>

#include "anchors/core/study_aggregates.h"

namespace anchors {

struct StudyReportOptions {
  std::string title;  // "" : "Thought anchors study - <root folder name>"
  // The score of the by-tag figures; "" : the first present of
  // counterfactual_importance_kl, counterfactual_importance_accuracy,
  // resampling_importance_kl, then the first score column. Naming one the
  // table lacks is an anchors::Error.
  std::string score;
  AggregateOptions aggregate;  // the figures' bootstrap (debias_position is set per figure)
};

// What write_study_report wrote.
struct StudyReportSummary {
  std::string index;          // <out_dir>/index.html
  std::size_t traces = 0;     // rows, = trace reports written
  std::string score;          // the figures' score column
};

// Reads every trace under `root` once (study_table_from_folders), writes
// out_dir/traces/trace_<k>.html per trace with sentences (k in table order;
// the folder's chunks_resampled.json alternatives when present) as the table
// reads it, then out_dir/index.html, each atomically; so a score the table
// lacks is reported after the trace pages and before index.html.
// anchors::Error for what study_table_from_folders refuses, a score the table
// lacks, or an unwritable out_dir. Cost: one load and one trace report per
// trace, plus the aggregates' bootstrap.
StudyReportSummary write_study_report(const std::string& root, const std::string& out_dir,
                                      const StudyReportOptions& options = {});

}  // namespace anchors
