#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include "anchors/core/distribution.h"
#include "anchors/core/embedder.h"
#include "anchors/core/error.h"
#include "anchors/core/reference_import.h"
#include "anchors/core/reference_schema.h"
#include "anchors/core/outcome.h"
#include "anchors/core/resampling_metrics.h"
#include "anchors/core/rollouts.h"
#include "anchors/methods/resampling.h"
#include "anchors/rollout/chat_similarity.h"
#include "anchors/model/tensor_convert.h"
#include "bindings.h"

namespace anchors::python {
namespace {

// A SentenceSimilarity implemented by a Python callable taking a list of
// (a, b) pairs and returning one similarity per pair. Called with the GIL held.
class CallableSimilarity : public SentenceSimilarity {
 public:
  explicit CallableSimilarity(py::function fn) : fn_(std::move(fn)) {}
  std::vector<double> similarities(const std::vector<std::pair<std::string, std::string>>& pairs) override {
    py::gil_scoped_acquire gil;
    std::vector<double> out;
    try {
      out = fn_(pairs).cast<std::vector<double>>();
    } catch (const py::cast_error&) {
      throw Error("similarity callable must return a list of numbers, one per pair");
    }
    if (out.size() != pairs.size())
      throw Error("similarity callable returned " + std::to_string(out.size()) + " values for " +
                  std::to_string(pairs.size()) + " pairs");
    return out;
  }

 private:
  py::function fn_;
};

// An Embedder implemented by a Python object with .embed(list[str]) (e.g. a
// sentence-transformers model wrapped by the caller).
class PythonEmbedder : public Embedder {
 public:
  explicit PythonEmbedder(py::object obj) : obj_(std::move(obj)) {}
  std::vector<std::vector<float>> embed(const std::vector<std::string>& texts) override {
    py::gil_scoped_acquire gil;
    py::object result = obj_.attr("embed")(texts);
    if (THPVariable_Check(result.ptr())) result = result.attr("tolist")();
    else if (py::hasattr(result, "tolist")) result = result.attr("tolist")();
    try {
      return result.cast<std::vector<std::vector<float>>>();
    } catch (const py::cast_error&) {
      throw Error("embedder.embed must return one vector of numbers per text");
    }
  }
  std::string name() const override { return "python:" + py::str(py::type::of(obj_).attr("__name__")).cast<std::string>(); }

 private:
  py::object obj_;
};

}  // namespace

// similarity= accepts a dict {(a, b): value}, a callable(pairs) -> values, or
// an object with .embed(texts) -> vectors (cosine similarity of embeddings).
std::shared_ptr<SentenceSimilarity> similarity_from_python(const py::object& obj) {
  // A C++ embedder (thought_anchors.Embedder) is used directly, never through Python.
  if (py::isinstance<Embedder>(obj)) return std::make_shared<EmbeddingSimilarity>(obj.cast<std::shared_ptr<Embedder>>());
  if (py::isinstance<rollout::ChatSimilarity>(obj)) return obj.cast<std::shared_ptr<rollout::ChatSimilarity>>();
  if (py::isinstance<py::dict>(obj)) {
    auto table = std::make_shared<TableSimilarity>();
    for (auto [key, value] : obj.cast<py::dict>()) {
      auto pair = key.cast<std::pair<std::string, std::string>>();
      table->set(pair.first, pair.second, value.cast<double>());
    }
    return table;
  }
  if (py::hasattr(obj, "embed")) return std::make_shared<EmbeddingSimilarity>(std::make_shared<PythonEmbedder>(obj));
  if (py::isinstance<py::function>(obj) || py::hasattr(obj, "__call__"))
    return std::make_shared<CallableSimilarity>(obj.cast<py::function>());
  throw Error("similarity must be a dict {(a, b): value}, a callable(pairs) -> values, or an object with .embed(texts)");
}


void bind_metrics(py::module_& m) {
  py::class_<AnswerDistribution>(m, "AnswerDistribution", "Counts of normalized answers over rollouts.")
      .def(py::init<>())
      .def_static("from_answers", &AnswerDistribution::from_answers, py::arg("answers"), py::arg("normalize") = true)
      .def("add", &AnswerDistribution::add, py::arg("answer"), py::arg("count") = 1, py::arg("normalize") = true)
      .def("merge", &AnswerDistribution::merge, py::arg("other"))
      .def_property_readonly("total", &AnswerDistribution::total)
      .def("count", &AnswerDistribution::count, py::arg("answer"))
      .def("probability", &AnswerDistribution::probability, py::arg("answer"))
      .def_property_readonly("counts", &AnswerDistribution::counts)
      .def("__len__", [](const AnswerDistribution& d) { return d.counts().size(); })
      .def("__eq__", [](const AnswerDistribution& a, const AnswerDistribution& b) { return a == b; })
      .def("__repr__", [](const AnswerDistribution& d) {
        std::string r = "AnswerDistribution({";
        bool first = true;
        for (const auto& [k, v] : d.counts()) {
          r += (first ? "" : ", ") + py::repr(py::str(k)).cast<std::string>() + ": " + std::to_string(v);
          first = false;
        }
        return r + "})";
      });
  m.def("kl_divergence", &kl_divergence, py::arg("p"), py::arg("q"), py::arg("alpha") = 1e-9,
        "KL(P || Q) over the union of answers with additive smoothing alpha; 0 if either is empty.");
  m.def("kl_divergence_binary", &kl_divergence_binary, py::arg("correct_p"), py::arg("total_p"),
        py::arg("correct_q"), py::arg("total_q"), py::arg("alpha") = 1e-9,
        "KL between two Bernoulli(P(correct)) distributions (the authors' use_prob_true variant).");
  m.def("cosine_similarity", &cosine_similarity, py::arg("a"), py::arg("b"));

  py::class_<Rollout>(m, "Rollout")
      .def_readonly("chunk_removed", &Rollout::chunk_removed)
      .def_readonly("prefix_without_chunk", &Rollout::prefix_without_chunk)
      .def_readonly("chunk_resampled", &Rollout::chunk_resampled)
      .def_readonly("rollout", &Rollout::rollout)
      .def_readonly("full_cot", &Rollout::full_cot)
      .def_readonly("answer", &Rollout::answer)
      .def_readonly("is_correct", &Rollout::is_correct)
      .def_property_readonly("has_answer", &Rollout::has_answer);
  py::class_<SentenceRollouts>(m, "SentenceRollouts")
      .def_readonly("chunk_idx", &SentenceRollouts::chunk_idx)
      .def_readonly("present", &SentenceRollouts::present)
      .def_readonly("rollouts", &SentenceRollouts::rollouts)
      .def_readonly("num_errors", &SentenceRollouts::num_errors)
      .def_readonly("behavior", &SentenceRollouts::behavior)
      .def_property_readonly("num_valid", &SentenceRollouts::num_valid)
      .def_property_readonly("num_without_answer", &SentenceRollouts::num_without_answer)
      .def("__len__", [](const SentenceRollouts& s) { return s.rollouts.size(); });
  py::class_<Problem>(m, "Problem")
      .def_readonly("text", &Problem::text)
      .def_readonly("gt_answer", &Problem::gt_answer)
      .def_readonly("gt_solution", &Problem::gt_solution)
      .def_readonly("level", &Problem::level)
      .def_readonly("type", &Problem::type)
      .def_readonly("nickname", &Problem::nickname)
      .def_readonly("scenario", &Problem::scenario)
      .def_property_readonly("is_scenario", &Problem::is_scenario);
  py::class_<BaseSolution>(m, "BaseSolution")
      .def_readonly("prompt", &BaseSolution::prompt)
      .def_readonly("solution", &BaseSolution::solution)
      .def_readonly("full_cot", &BaseSolution::full_cot)
      .def_readonly("answer", &BaseSolution::answer)
      .def_readonly("is_correct", &BaseSolution::is_correct);
  py::class_<ProblemRollouts, std::shared_ptr<ProblemRollouts>>(m, "ProblemRollouts")
      .def_readonly("problem_dir", &ProblemRollouts::problem_dir)
      .def_readonly("problem_id", &ProblemRollouts::problem_id)
      .def_readonly("problem", &ProblemRollouts::problem)
      .def_readonly("base_solution", &ProblemRollouts::base_solution)
      .def_readonly("chunks", &ProblemRollouts::chunks)
      .def_readonly("separators", &ProblemRollouts::separators)
      .def_readonly("behavior", &ProblemRollouts::behavior)
      .def_readonly("resampled", &ProblemRollouts::resampled)
      .def_readonly("forced_dir", &ProblemRollouts::forced_dir)
      .def_readonly("forced", &ProblemRollouts::forced)
      .def_property_readonly("has_forced", &ProblemRollouts::has_forced)
      .def("trace", [](const ProblemRollouts& r, std::size_t min_sentence_chars) {
             return trace_from_rollouts(r, min_sentence_chars);
           }, py::arg("min_sentence_chars") = 4,
           "The base solution as a Trace (reference segmentation; an agentic folder's analysed chunks).")
      .def("__repr__", [](const ProblemRollouts& r) {
        return "ProblemRollouts(" + r.problem_id + ", " + std::to_string(r.chunks.size()) + " chunks" +
               (r.has_forced() ? ", forced" : "") + ")";
      });
  m.def(
      "read_rollouts",
      [](const std::string& dir, bool read_forced, std::string forced_dir, bool keep_full_texts) {
        ReadRolloutsOptions o;
        o.read_forced = read_forced;
        o.forced_dir = std::move(forced_dir);
        o.keep_full_texts = keep_full_texts;
        return std::make_shared<ProblemRollouts>(read_problem_rollouts(dir, o));
      },
      py::arg("problem_dir"), py::kw_only(), py::arg("read_forced") = true, py::arg("forced_dir") = "",
      py::arg("keep_full_texts") = false,
      "Read a problem folder of the authors' math-rollouts layout (and its forced-answer sibling).");

  py::class_<SentenceMetrics>(m, "SentenceMetrics")
      .def_readonly("chunk_idx", &SentenceMetrics::chunk_idx)
      .def_readonly("text", &SentenceMetrics::text)
      .def_readonly("accuracy", &SentenceMetrics::accuracy)
      .def_readonly("resampling_importance_accuracy", &SentenceMetrics::resampling_importance_accuracy)
      .def_readonly("resampling_importance_kl", &SentenceMetrics::resampling_importance_kl)
      .def_readonly("counterfactual_importance_accuracy", &SentenceMetrics::counterfactual_importance_accuracy)
      .def_readonly("counterfactual_importance_kl", &SentenceMetrics::counterfactual_importance_kl)
      .def_readonly("forced_importance_accuracy", &SentenceMetrics::forced_importance_accuracy)
      .def_readonly("forced_importance_kl", &SentenceMetrics::forced_importance_kl)
      .def_readonly("different_trajectories_fraction", &SentenceMetrics::different_trajectories_fraction)
      .def_readonly("overdeterminedness", &SentenceMetrics::overdeterminedness)
      .def_readonly("forced_accuracy", &SentenceMetrics::forced_accuracy)
      .def_readonly("num_rollouts", &SentenceMetrics::num_rollouts)
      .def_readonly("num_without_answer", &SentenceMetrics::num_without_answer)
      .def_readonly("num_errors", &SentenceMetrics::num_errors)
      .def_readonly("num_different", &SentenceMetrics::num_different)
      .def_readonly("num_forced", &SentenceMetrics::num_forced)
      .def_readonly("num_forced_errors", &SentenceMetrics::num_forced_errors)
      .def_readonly("next_chunk_idx", &SentenceMetrics::next_chunk_idx)
      .def_readonly("next_forced_chunk_idx", &SentenceMetrics::next_forced_chunk_idx);
  py::class_<ResamplingMetrics>(m, "ResamplingMetrics")
      .def_readonly("problem_id", &ResamplingMetrics::problem_id)
      .def_readonly("sentences", &ResamplingMetrics::sentences)
      .def_property_readonly("sentence_to_sentence",
                             [](const ResamplingMetrics& r) { return model::to_tensor(r.sentence_to_sentence); },
                             "Tensor[S, S]: rows source sentence i, columns target j > i (NaN elsewhere)")
      .def("series", [](const ResamplingMetrics& r, const std::string& name) { return model::to_tensor(r.series(name)); },
           py::arg("name"), "One per-sentence metric as a float64 tensor (NaN: no value).")
      .def_property_readonly_static("series_names", [](py::object) { return ResamplingMetrics::series_names(); })
      .def("to_attribution", &to_attribution)
      .def("__len__", [](const ResamplingMetrics& r) { return r.sentences.size(); });

  const ResamplingMetricsOptions d;
  m.def(
      "resampling_metrics",
      [](const ProblemRollouts& rollouts, const py::object& similarity, double similarity_threshold, double kl_alpha,
         std::size_t min_sentence_chars, bool compat, const std::string& correctness, bool compute_matrix,
         std::shared_ptr<Outcome> outcome, std::optional<py::function> progress) {
        ResamplingMetricsOptions o = resampling_metrics_options(
            {{"similarity_threshold", similarity_threshold},
             {"kl_alpha", kl_alpha},
             {"min_sentence_chars", static_cast<std::int64_t>(min_sentence_chars)},
             {"compat", compat},
             {"correctness", correctness},
             {"compute_matrix", compute_matrix}});
        o.control = control_from_python(progress);
        auto sim = similarity_from_python(similarity);
        if (!outcome) return compute_resampling_metrics(rollouts, *sim, o);
        ProblemRollouts relabelled = rollouts;  // re-scoring reads the rollouts again; nothing is generated
        relabel_rollouts(relabelled, *outcome);
        o.outcome = std::move(outcome);
        return compute_resampling_metrics(relabelled, *sim, o);
      },
      py::arg("rollouts"), py::arg("similarity"), py::kw_only(),
      py::arg("similarity_threshold") = d.similarity_threshold, py::arg("kl_alpha") = d.kl_alpha,
      py::arg("min_sentence_chars") = d.min_sentence_chars, py::arg("compat") = d.compat,
      py::arg("correctness") = "recorded", py::arg("compute_matrix") = d.compute_matrix,
      py::arg("outcome") = py::none(), py::arg("progress") = py::none(),
      "Resampling metrics of one problem's rollouts. similarity: dict {(a, b): cosine}, "
      "callable(pairs) -> cosines, or an object with .embed(texts) -> vectors.");
  m.def(
      "write_reference_outputs",
      [](const ProblemRollouts& rollouts, const ResamplingMetrics& metrics, const std::string& out_dir) {
        write_reference_outputs(rollouts, metrics, out_dir);
      },
      py::arg("rollouts"), py::arg("metrics"), py::arg("out_dir"),
      "Write chunks_labeled.json, step_importance.json and summary.json (reference schema) atomically.");
  m.def("import_reference", &import_reference_folder, py::arg("dir"),
        "Load a problem folder of the authors' published results as an AnalysisResult.");
  m.def("write_step_importance_supp", &write_step_importance_supp, py::arg("result"), py::arg("dir"),
        "Writes the result's attention_suppression matrix as the authors' step_importance_supp.json in dir (the web "
        "app's layout; docs/results.md) and returns the path.");
}

}  // namespace anchors::python
