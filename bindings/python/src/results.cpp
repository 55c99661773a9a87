#include <pybind11/stl.h>

#include "anchors/core/attribution.h"
#include "anchors/core/error.h"
#include "anchors/model/tensor_convert.h"
#include "bindings.h"

namespace anchors::python {
namespace {

// Score series and matrices come in as tensors, numpy arrays or nested lists.
std::vector<double> series_from_python(const py::handle& obj, const std::string& what) {
  if (THPVariable_Check(obj.ptr())) return model::vector_from_tensor(THPVariable_Unpack(obj.ptr()), what.c_str());
  try {
    return obj.cast<std::vector<double>>();
  } catch (const py::cast_error&) {
    throw Error(what + ": expected a 1-D tensor or a list of numbers");
  }
}

Matrix matrix_from_python(const py::handle& obj, const std::string& what) {
  if (THPVariable_Check(obj.ptr())) return model::matrix_from_tensor(THPVariable_Unpack(obj.ptr()), what.c_str());
  std::vector<std::vector<double>> rows;
  try {
    rows = obj.cast<std::vector<std::vector<double>>>();
  } catch (const py::cast_error&) {
    throw Error(what + ": expected a 2-D tensor or a list of lists of numbers");
  }
  Matrix m(rows.size(), rows.empty() ? 0 : rows[0].size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].size() != m.cols) throw Error(what + ": rows have different lengths");
    for (std::size_t c = 0; c < m.cols; ++c) m(r, c) = rows[r][c];
  }
  return m;
}

py::dict scores_to_python(const Attribution& a) {
  py::dict d;
  for (const auto& [k, v] : a.scores) d[py::str(k)] = model::to_tensor(v);
  return d;
}

py::dict matrices_to_python(const Attribution& a) {
  py::dict d;
  for (const auto& [k, v] : a.matrices) d[py::str(k)] = model::to_tensor(v);
  return d;
}

}  // namespace

void bind_results(py::module_& m) {
  py::class_<Attribution>(m, "Attribution",
                          "One method's result on one trace: named per-sentence score series, named matrices, "
                          "the options used and metadata.")
      .def(py::init([](std::string method, py::dict scores, py::dict matrices, ValueMap options, ValueMap metadata) {
             Attribution a;
             a.method = std::move(method);
             for (auto [k, v] : scores) {
               const auto name = k.cast<std::string>();
               a.scores[name] = series_from_python(v, "scores[" + name + "]");
             }
             for (auto [k, v] : matrices) {
               const auto name = k.cast<std::string>();
               a.matrices[name] = matrix_from_python(v, "matrices[" + name + "]");
             }
             a.options = std::move(options);
             a.metadata = std::move(metadata);
             return a;
           }),
           py::arg("method"), py::arg("scores") = py::dict(), py::arg("matrices") = py::dict(),
           py::arg("options") = ValueMap{}, py::arg("metadata") = ValueMap{})
      .def_readonly("method", &Attribution::method)
      .def_property_readonly("scores", &scores_to_python, "dict[str, Tensor[S]] (float64; NaN: no value)")
      .def_property_readonly("matrices", &matrices_to_python, "dict[str, Tensor] (float64; NaN: no value)")
      .def_readonly("options", &Attribution::options)
      .def_readonly("metadata", &Attribution::metadata)
      .def("score", [](const Attribution& a, const std::string& name) { return model::to_tensor(a.score(name)); },
           py::arg("name"))
      .def("matrix", [](const Attribution& a, const std::string& name) { return model::to_tensor(a.matrix(name)); },
           py::arg("name"))
      .def("__eq__", [](const Attribution& a, const Attribution& b) { return a == b; })
      .def("__repr__", [](const Attribution& a) {
        std::string r = "Attribution(method=" + a.method + ", scores=[";
        bool first = true;
        for (const auto& [k, _] : a.scores) r += (first ? "" : ", ") + k, first = false;
        r += "], matrices=[";
        first = true;
        for (const auto& [k, v] : a.matrices)
          r += (first ? "" : ", ") + k + " " + std::to_string(v.rows) + "x" + std::to_string(v.cols), first = false;
        return r + "])";
      });

  py::class_<AnalysisResult>(m, "AnalysisResult",
                             "One analysed trace: the trace with its sentences and every method's results.")
      .def(py::init([](Trace trace, std::vector<Attribution> attributions) {
             AnalysisResult r{std::move(trace), std::move(attributions)};
             r.validate();
             return r;
           }),
           py::arg("trace"), py::arg("attributions") = std::vector<Attribution>{})
      .def_readwrite("trace", &AnalysisResult::trace)
      .def_readonly("attributions", &AnalysisResult::attributions)
      .def("attribution", &AnalysisResult::attribution, py::arg("method"), py::return_value_policy::copy)
      .def("set_attribution", &AnalysisResult::set_attribution, py::arg("attribution"))
      .def_property_readonly("methods",
                             [](const AnalysisResult& r) {
                               std::vector<std::string> names;
                               for (const auto& a : r.attributions) names.push_back(a.method);
                               return names;
                             })
      .def("validate", &AnalysisResult::validate)
      .def("to_json", &result_to_json, py::arg("indent") = 1)
      .def_static("from_json", &result_from_json, py::arg("text"), py::arg("source_name") = "<json>")
      .def("save", [](const AnalysisResult& r, const std::string& path) { save_result(r, path); }, py::arg("path"),
           "Write the result JSON atomically (temp file + rename).")
      .def_static("load", &load_result, py::arg("path"))
      .def("__eq__", [](const AnalysisResult& a, const AnalysisResult& b) { return a == b; })
      .def("__repr__", [](const AnalysisResult& r) {
        std::string methods;
        for (const auto& a : r.attributions) methods += (methods.empty() ? "" : ", ") + a.method;
        return "AnalysisResult(" + std::to_string(r.trace.sentences.size()) + " sentences, methods=[" + methods + "])";
      });

  m.def("load_result", &load_result, py::arg("path"), "Load a result JSON written by save_result / `anchors`.");
  m.def("save_result", &save_result, py::arg("result"), py::arg("path"));
}

}  // namespace anchors::python
