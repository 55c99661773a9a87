// thought_anchors._C — the compiled core of the Python package. Everything
// here is a thin binding of the C++ API; the Python package adds display and
// plotting on top.
#include "bindings.h"

#include <string>

#include "anchors/core/error.h"
#include "anchors/model/allocation_failure.h"
#include "anchors/version.h"

bool pybind11::detail::type_caster<anchors::python::Seed>::load(handle src, bool) {
  // Not a whole number (a float, a string): pybind11's TypeError, as for any
  // argument of the wrong type. bool is an int to Python but not a seed.
  if (!src || PyBool_Check(src.ptr()) || !PyIndex_Check(src.ptr())) return false;
  const object index = reinterpret_steal<object>(PyNumber_Index(src.ptr()));
  if (!index) {
    PyErr_Clear();
    return false;
  }
  const unsigned long long v = PyLong_AsUnsignedLongLong(index.ptr());
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    throw anchors::Error("seed " + str(index).cast<std::string>() +
                         " is outside [0, 2**64 - 1]: seeds are non-negative whole numbers");
  }
  value.value = v;
  return true;
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "thought_anchors compiled core (C++/LibTorch)";
  m.attr("__version__") = ANCHORS_VERSION;
  // anchors::Error -> thought_anchors.Error (a ValueError, so generic handlers
  // for bad input catch it too), with the same message.
  static py::exception<anchors::Error> error(m, "Error", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    const auto set_error = [](const std::string& message) {
      // Messages may quote bytes of a malformed file; never fail on decoding them.
      py::object text = py::reinterpret_steal<py::object>(
          PyUnicode_DecodeUTF8(message.data(), static_cast<Py_ssize_t>(message.size()), "replace"));
      py::set_error(error, text);
    };
    try {
      if (p) std::rethrow_exception(p);
    } catch (const anchors::Error& e) {
      set_error(e.what());
    } catch (const std::exception& e) {
      // A CUDA or CPU allocation that failed is ta.Error too, so every failure
      // of a request the user can act on is one exception type; anything else
      // goes on to pybind11's own translation (RuntimeError, ...).
      const auto message = anchors::model::allocation_failure(e);
      if (!message) throw;
      set_error(*message);
    }
  });
  anchors::python::bind_text(m);
  anchors::python::bind_tokenizer(m);
  anchors::python::bind_metrics(m);
  anchors::python::bind_results(m);
  anchors::python::bind_methods(m);
  anchors::python::bind_cli(m);
  anchors::python::bind_attention_control(m);
  anchors::python::bind_model(m);
  anchors::python::bind_white_box(m);
  anchors::python::bind_outcomes(m);
  anchors::python::bind_rollout(m);
  anchors::python::bind_function_tags(m);
  anchors::python::bind_report(m);
  anchors::python::bind_study(m);
}
