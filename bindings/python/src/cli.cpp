#include <iostream>

#include <pybind11/stl.h>

#include "model_commands.h"
#include "anchors/cli.h"
#include "bindings.h"

namespace anchors::python {

void bind_cli(py::module_& m) {
  cli::register_model_commands();
  m.def(
      "run_cli",
      [](const std::vector<std::string>& args) {
        // The C++ command writes straight to the process's stdout/stderr; flush
        // Python's buffers first so output stays in order.
        py::module_::import("sys").attr("stdout").attr("flush")();
        py::module_::import("sys").attr("stderr").attr("flush")();
        py::gil_scoped_release release;
        const int rc = run_cli(args, std::cin, std::cout, std::cerr);
        std::cout.flush();
        return rc;
      },
      py::arg("args"), "Run the `anchors` command line with these arguments; returns the exit code.");
}

}  // namespace anchors::python
