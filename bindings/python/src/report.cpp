// The HTML report (anchors/core/report.h). The page is rendered in C++ only;
// thought_anchors.display shows it in notebooks.
#include <pybind11/stl.h>

#include "anchors/core/error.h"
#include "anchors/core/report.h"
#include "bindings.h"

namespace anchors::python {
namespace {

std::string path_from_python(const py::handle& obj) {
  return py::str(py::module_::import("os").attr("fspath")(obj)).cast<std::string>();
}

bool is_path(const py::handle& obj) {
  return py::isinstance<py::str>(obj) || py::hasattr(obj, "__fspath__");
}

// alternatives=: None, a folder or file (read_alternatives), or {index: [text, ...]}.
SentenceAlternatives alternatives_from_python(const py::object& obj, const AnalysisResult& result) {
  if (obj.is_none()) return {};
  if (is_path(obj)) return read_alternatives(path_from_python(obj), result.trace);
  if (!py::isinstance<py::dict>(obj))
    throw Error("alternatives: expected None, a folder or file path, or a dict {sentence index: [text, ...]}");
  SentenceAlternatives out;
  for (auto [key, value] : obj.cast<py::dict>()) {
    long long index = -1;
    try {
      index = key.cast<long long>();
    } catch (const py::cast_error&) {
    }
    if (index < 0) throw Error("alternatives: keys must be sentence indices (integers >= 0), got " +
                               py::repr(key).cast<std::string>());
    if (py::isinstance<py::str>(value))
      throw Error("alternatives[" + std::to_string(index) + "]: expected a list of strings, got a string");
    try {
      out[static_cast<std::size_t>(index)] = value.cast<std::vector<std::string>>();
    } catch (const py::cast_error&) {
      throw Error("alternatives[" + std::to_string(index) + "]: expected a list of strings");
    }
  }
  return out;
}

ReportOptions options_from_python(const AnalysisResult& result, const py::object& alternatives,
                                  const std::string& title, const std::string& method, const std::string& score,
                                  std::size_t top, std::size_t max_alternatives, std::size_t max_links) {
  ReportOptions options;
  options.title = title;
  options.method = method;
  options.score = score;
  options.top_anchors = top;
  options.max_alternatives = max_alternatives;
  options.max_links = max_links;
  options.alternatives = alternatives_from_python(alternatives, result);
  return options;
}

}  // namespace

void bind_report(py::module_& m) {
  m.def(
      "render_report_html",
      [](const AnalysisResult& result, const py::object& alternatives, const std::string& title,
         const std::string& method, const std::string& score, std::size_t top, std::size_t max_alternatives,
         std::size_t max_links) {
        return render_report_html(
            result, options_from_python(result, alternatives, title, method, score, top, max_alternatives, max_links));
      },
      py::arg("result"), py::arg("alternatives") = py::none(), py::kw_only(), py::arg("title") = "",
      py::arg("method") = "", py::arg("score") = "", py::arg("top") = 10, py::arg("max_alternatives") = 12,
      py::arg("max_links") = 5,
      "The self-contained HTML report of a result (one page, no network access; docs/report.md).\n\n"
      "alternatives: None, a rollout problem folder, a reference folder or chunks_resampled.json file,\n"
      "or a dict {sentence index: [resampled sentence, ...]}. method/score: the series shown first.");
  m.def(
      "write_report",
      [](const AnalysisResult& result, const py::object& path, const py::object& alternatives, const std::string& title,
         const std::string& method, const std::string& score, std::size_t top, std::size_t max_alternatives,
         std::size_t max_links) {
        write_report_html(result, path_from_python(path),
                          options_from_python(result, alternatives, title, method, score, top, max_alternatives,
                                              max_links));
      },
      py::arg("result"), py::arg("path"), py::arg("alternatives") = py::none(), py::kw_only(), py::arg("title") = "",
      py::arg("method") = "", py::arg("score") = "", py::arg("top") = 10, py::arg("max_alternatives") = 12,
      py::arg("max_links") = 5, "render_report_html written atomically to path.");
  m.def(
      "read_alternatives",
      [](const py::object& path, const Trace& trace) { return read_alternatives(path_from_python(path), trace); },
      py::arg("path"), py::arg("trace"),
      "Resampled alternatives per sentence index, from a rollout problem folder (chunk_i/solutions.json)\n"
      "or the authors' chunks_resampled.json (the file or its folder).");
}

}  // namespace anchors::python
