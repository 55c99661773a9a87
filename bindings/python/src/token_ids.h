#pragma once
// Internal to the Python module: token ids as Python users hold them. Every
// binding that takes one sequence of token ids takes a TokenIds, which loads
// from
//   - a list or tuple of ints (also NumPy / torch integer scalars in it),
//   - a 1-D torch.Tensor of any integer dtype, on the CPU or any device
//     (copied to the CPU as int64),
//   - a 1-D NumPy array of any integer dtype;
// and is handed back to Python as a list. Anything else -- floats, bools, a
// tensor or array that is not 1-D -- is a thought_anchors.Error naming what
// was given (not pybind's "incompatible function arguments").
#include <torch/extension.h>

#include <cstdint>
#include <string>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "anchors/core/error.h"

namespace anchors::python {

struct TokenIds {
  std::vector<std::int64_t> ids;
};

}  // namespace anchors::python

namespace pybind11::detail {

template <>
struct type_caster<anchors::python::TokenIds> {
  PYBIND11_TYPE_CASTER(anchors::python::TokenIds, const_name("Sequence[int] | torch.Tensor | numpy.ndarray"));

  bool load(handle src, bool convert) {
    if (THPVariable_Check(src.ptr())) {
      const at::Tensor& t = THPVariable_Unpack(src.ptr());
      if (t.dim() != 1 || !at::isIntegralType(t.scalar_type(), /*includeBool=*/false))
        throw anchors::Error("token ids must be a 1-D integer tensor, got a " + std::to_string(t.dim()) + "-D " +
                             std::string(c10::toString(t.scalar_type())) + " tensor");
      const at::Tensor c = t.to(at::kCPU, at::kLong).contiguous();
      value.ids.assign(c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel());
      return true;
    }
    if (isinstance<array>(src)) {
      const auto a = reinterpret_borrow<array>(src);
      const char kind = a.dtype().kind();
      if (a.ndim() != 1 || (kind != 'i' && kind != 'u'))
        throw anchors::Error("token ids must be a 1-D integer array, got a " + std::to_string(a.ndim()) +
                             "-D array of dtype " + std::string(str(a.dtype())));
      const auto ints = array_t<std::int64_t, array::c_style | array::forcecast>::ensure(src);
      value.ids.assign(ints.data(), ints.data() + ints.size());
      return true;
    }
    if (isinstance<list>(src) || isinstance<tuple>(src)) {
      const auto seq = reinterpret_borrow<sequence>(src);
      value.ids.clear();
      value.ids.reserve(seq.size());
      for (std::size_t k = 0; k < seq.size(); ++k) {
        const object item = seq[k];
        // A bool is an int to Python, never a token id; floats are refused too.
        if (isinstance<bool_>(item) || !hasattr(item, "__index__"))
          throw anchors::Error("token ids must be integers, got " + std::string(str(type::of(item).attr("__name__"))) +
                               " at position " + std::to_string(k));
        value.ids.push_back(item.attr("__index__")().cast<std::int64_t>());
      }
      return true;
    }
    (void)convert;
    throw anchors::Error("token ids must be a list of ints, a 1-D integer torch.Tensor or a 1-D integer NumPy "
                         "array, got " + std::string(str(type::of(src).attr("__name__"))));
  }

  static handle cast(const anchors::python::TokenIds& src, return_value_policy policy, handle parent) {
    return list_caster<std::vector<std::int64_t>, std::int64_t>::cast(src.ids, policy, parent);
  }
};

}  // namespace pybind11::detail
