#include <pybind11/stl.h>

#include "anchors/methods/registry.h"
#include "bindings.h"

namespace anchors::python {

void bind_methods(py::module_& m) {
  py::class_<MethodInfo>(m, "MethodInfo")
      .def_readonly("name", &MethodInfo::name)
      .def_readonly("description", &MethodInfo::description)
      .def_readonly("default_options", &MethodInfo::default_options)
      .def("__repr__", [](const MethodInfo& i) { return "MethodInfo(" + i.name + ": " + i.description + ")"; });
  m.def("methods", &methods, "The registered attribution methods, sorted by name.");
}

}  // namespace anchors::python
