#include <pybind11/stl.h>

#include "anchors/methods/registry.h"
#include "bindings.h"

namespace anchors::python {

void bind_methods(py::module_& m) {
  py::class_<MethodInfo>(m, "MethodInfo")
      .def_readonly("name", &MethodInfo::name)
      .def_readonly("description", &MethodInfo::description)
      .def_readonly("default_options", &MethodInfo::default_options)
      .def_readonly("option_docs", &MethodInfo::option_docs)
      .def_readonly("headline_scores", &MethodInfo::headline_scores)
      .def_property_readonly("needs",
                             [](const MethodInfo& i) {
                               py::list needs;
                               if (i.needs.model) needs.append("model");
                               if (i.needs.rollouts) needs.append("rollouts");
                               if (i.needs.similarity) needs.append("similarity");
                               return needs;
                             },
                             "What run() needs: \"model\", \"rollouts\" (on disk, or a provider to make them), "
                             "\"similarity\".")
      .def("__repr__", [](const MethodInfo& i) { return "MethodInfo(" + i.name + ": " + i.description + ")"; });
  m.def("methods", &methods, "The registered attribution methods, sorted by name.");
  m.def("parse_int_list", &parse_int_list, py::arg("text"), py::arg("what") = "list",
        "\"0,3,5\" or \"2:3,5:0\" as a list of integers (the command line's form of list options).");
  m.def(
      "check_options",
      [](const std::string& method, const ValueMap& options) {
        const ValueMap resolved = resolve_options(*make_method(method), options);
        ValueMap given;
        for (const auto& [key, _] : options) given[key] = resolved.at(key);
        return given;
      },
      py::arg("method"), py::arg("options"),
      "The given options of the registered method, checked by the registry's rule (resolve_options): an "
      "unknown name or a value of another type than the default's is a ta.Error; integers become numbers "
      "where numbers are expected.");
  m.def("method_info", &method_info, py::arg("name"), "The registered method's MethodInfo.");
  m.def("choose_score", &choose_score, py::arg("result"), py::arg("method") = "", py::arg("score") = "",
        "(method, score) to show of a result: `score`, else the first attribution's headline score (its "
        "method's headline_scores), else its first series; ('', '') when it has none.");
}

}  // namespace anchors::python
