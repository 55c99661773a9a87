// Studies: the table of a study's sentences and its aggregates
// (anchors/core/study_table.h, study_aggregates.h). thought_anchors.Study
// (study.py) turns them into pandas DataFrames and figures.
#include <pybind11/stl.h>

#include "anchors/core/study_aggregates.h"
#include "anchors/core/study_report.h"
#include "anchors/core/study_table.h"
#include "bindings.h"

namespace anchors::python {

void bind_study(py::module_& m) {
  py::class_<StudyTable>(m, "StudyTable",
                         "One row per sentence of every analysed trace of a study (columnar; "
                         "thought_anchors.Study.table() makes a DataFrame of it).")
      .def(py::init<>())
      .def("__len__", &StudyTable::size)
      .def(
          "append",
          [](StudyTable& t, const AnalysisResult& result, const std::string& model, const std::string& base,
             const std::string& source) { t.append(result, model, base, source); },
          py::arg("result"), py::arg("model") = "", py::arg("base") = "", py::arg("source") = "",
          "Appends the sentences of one analysed trace (base \"\": from its metadata is_correct).")
      .def(
          "columns",
          [](const StudyTable& t) {
            py::dict d;
            d["model"] = t.model;
            d["problem"] = t.problem;
            d["base"] = t.base;
            d["level"] = t.level;
            d["type"] = t.type;
            d["sentence"] = t.sentence;
            d["position"] = t.position;
            d["tag"] = t.tag;
            d["tags"] = t.tags;
            d["text"] = t.text;
            d["source"] = t.source;
            for (const auto& [name, values] : t.scores) d[py::str(name)] = values;
            return d;
          },
          "Every column as a list: model, problem, base, level, type, sentence, position, tag, tags, text, source, "
          "then one \"<method>.<series>\" column per score (NaN where absent).")
      .def_property_readonly("score_columns",
                             [](const StudyTable& t) {
                               std::vector<std::string> names;
                               for (const auto& [name, values] : t.scores) names.push_back(name);
                               return names;
                             })
      .def("score_column", &StudyTable::score_column, py::arg("name"),
           "The full column name of a score given by its full or its series name.")
      .def("__eq__", [](const StudyTable& a, const StudyTable& b) { return a == b; });

  m.def(
      "study_table_from_folders", [](const std::string& root) { return study_table_from_folders(root); },
      py::arg("root"),
        py::call_guard<py::gil_scoped_release>(),
        "Every analysed trace under root (folders with result.json, or the authors' layout) as a StudyTable.");

  const AggregateOptions d;
  m.def(
      "study_mean_by",
      [](const StudyTable& t, const std::string& score, const std::string& by, std::size_t resamples,
         double confidence, std::uint64_t seed, bool debias_position) {
        AggregateOptions o;
        o.resamples = resamples;
        o.confidence = confidence;
        o.seed = seed;
        o.debias_position = debias_position;
        py::list rows;
        for (const GroupAggregate& g : mean_by(t, score, by, o))
          rows.append(py::dict(py::arg(by.c_str()) = g.group, py::arg("sentences") = g.sentences,
                               py::arg("problems") = g.problems, py::arg("mean") = g.mean,
                               py::arg("ci_low") = g.ci_low, py::arg("ci_high") = g.ci_high));
        return rows;
      },
      py::arg("table"), py::arg("score"), py::arg("by") = "tag", py::kw_only(), py::arg("resamples") = d.resamples,
      py::arg("confidence") = d.confidence, py::arg("seed") = d.seed, py::arg("debias_position") = d.debias_position,
      "Mean score per group with a bootstrap interval over problems (docs/studies.md); one dict per group.");
  m.def(
      "study_method_agreement",
      [](const StudyTable& t, const std::string& a, const std::string& b, std::size_t k) {
        py::list rows;
        for (const TraceAgreement& r : method_agreement(t, a, b, k))
          rows.append(py::dict(py::arg("source") = r.source, py::arg("model") = r.model,
                               py::arg("problem") = r.problem, py::arg("base") = r.base,
                               py::arg("sentences") = r.sentences, py::arg("spearman") = r.spearman,
                               py::arg("top_k_overlap") = r.top_k_overlap));
        return rows;
      },
      py::arg("table"), py::arg("score_a"), py::arg("score_b"), py::arg("k") = 5,
      "Per trace: Spearman correlation and top-k overlap of two score columns.");
  const ReliabilityOptions ro;
  m.def(
      "study_receiver_head_reliability",
      [](const StudyTable& t, std::size_t splits, std::uint64_t seed, bool include_layer0, const std::string& matrix) {
        ReliabilityOptions o;
        o.splits = splits;
        o.seed = seed;
        o.include_layer0 = include_layer0;
        o.matrix = matrix;
        const SplitHalfReliability r = receiver_head_reliability(t, o);
        return py::dict(py::arg("traces") = r.traces, py::arg("heads") = r.heads, py::arg("mean_r") = r.mean_r,
                        py::arg("spearman_brown") = r.spearman_brown, py::arg("split_r") = r.split_r);
      },
      py::arg("table"), py::kw_only(), py::arg("splits") = ro.splits, py::arg("seed") = ro.seed,
      py::arg("include_layer0") = ro.include_layer0, py::arg("matrix") = ro.matrix,
      "Split-half reliability of the per-head kurtosis across traces (docs/studies.md).");
  m.def(
      "write_study_report",
      [](const std::string& root, const std::string& out_dir, const std::string& title, const std::string& score,
         std::size_t resamples, std::uint64_t seed) {
        StudyReportOptions o;
        o.title = title;
        o.score = score;
        o.aggregate.resamples = resamples;
        o.aggregate.seed = seed;
        StudyReportSummary r;
        {
          py::gil_scoped_release release;  // the dict below needs it back
          r = write_study_report(root, out_dir, o);
        }
        return py::dict(py::arg("index") = r.index, py::arg("traces") = r.traces, py::arg("score") = r.score);
      },
      py::arg("root"), py::arg("out_dir"), py::kw_only(), py::arg("title") = "", py::arg("score") = "",
      py::arg("resamples") = d.resamples, py::arg("seed") = d.seed,
      "The study's HTML index (out_dir/index.html) and one report per trace (docs/studies.md).");
}

}  // namespace anchors::python
