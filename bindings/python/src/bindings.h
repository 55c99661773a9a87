#pragma once
// Internal to the Python module: one bind_* function per area of the API.
#include <torch/extension.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "anchors/core/run_control.h"
#include "anchors/core/embedder.h"
#include "anchors/core/sentence.h"
#include "anchors/core/trace.h"

namespace py = pybind11;

namespace anchors::python {

// Python's view of a sentence: the same fields as anchors::Sentence, but with
// Unicode code point offsets so `text[s.char_start:s.char_end]` works.
struct PySentence {
  std::size_t index = 0;
  std::string text;
  std::size_t char_start = 0;
  std::size_t char_end = 0;
  std::optional<std::int64_t> token_start;
  std::optional<std::int64_t> token_end;
  std::vector<std::string> tags;
};

PySentence to_python(const Sentence& s, const std::string& source_text);
Sentence from_python(const PySentence& s, const std::string& source_text);
std::vector<PySentence> to_python(const std::vector<Sentence>& s, const std::string& source_text);
std::vector<Sentence> from_python(const std::vector<PySentence>& s, const std::string& source_text);

// similarity= of the metrics functions: a dict {(a, b): cosine}, a callable(pairs) -> cosines,
// an object with .embed(texts) -> vectors, or a thought_anchors.Embedder. Needs the GIL when used.
std::shared_ptr<SentenceSimilarity> similarity_from_python(const py::object& obj);

// progress= of every long-running function: a callable(done, total, unit) or
// None, as a RunControl whose progress takes the GIL (the C++ side may run
// without it).
RunControl control_from_python(const std::optional<py::function>& progress);

void bind_text(py::module_& m);      // Sentence, Trace, segmentation, answers
void bind_metrics(py::module_& m);   // distributions, KL, rollouts, resampling metrics
void bind_results(py::module_& m);   // Attribution, AnalysisResult, save/load
void bind_methods(py::module_& m);   // registry
void bind_cli(py::module_& m);       // run_cli
void bind_tokenizer(py::module_& m); // Tokenizer, Encoding, Embedder (before bind_model and bind_metrics)
void bind_attention_control(py::module_& m);  // AttentionControl (before bind_model and bind_rollout)
void bind_model(py::module_& m);     // ModelConfig, Model (decoder LMs)
void bind_white_box(py::module_& m); // white-box methods, torch ops (after bind_model)
void bind_outcomes(py::module_& m);  // Outcome and the built-in outcomes (before bind_rollout)
void bind_rollout(py::module_& m);   // analyze (the black-box pipeline)
void bind_function_tags(py::module_& m);  // rule-based tagger, chat-model labeller
void bind_report(py::module_& m);    // HTML report (render_report_html, write_report, read_alternatives)
void bind_study(py::module_& m);     // StudyTable and its aggregates (after bind_results)

// A seed= argument: any Python int in [0, 2**64 - 1]. Anything else is
// ta.Error naming the value, where a plain std::uint64_t parameter would give
// pybind11's TypeError ("incompatible function arguments") for seed=-1.
struct Seed {
  std::uint64_t value = 0;
};

}  // namespace anchors::python

namespace pybind11::detail {
template <>
struct type_caster<anchors::python::Seed> {
  PYBIND11_TYPE_CASTER(anchors::python::Seed, const_name("int"));
  bool load(handle src, bool);
  static handle cast(anchors::python::Seed seed, return_value_policy, handle) {
    return PyLong_FromUnsignedLongLong(seed.value);
  }
};
}  // namespace pybind11::detail
