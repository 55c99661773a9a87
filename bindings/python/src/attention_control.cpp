// ta.AttentionControl: heads ablated, keys suppressed or boosted while a model
// runs or generates (core/attention_control.h), built with chainable methods.
#include <pybind11/stl.h>

#include "anchors/core/attention_control.h"
#include "anchors/core/error.h"
#include "bindings.h"

namespace anchors::python {
namespace {

std::vector<std::int64_t> all_if_none(const std::optional<std::vector<std::int64_t>>& list) {
  return list.value_or(std::vector<std::int64_t>{});
}

// keys=(begin, end); end None = to the end of the sequence.
TokenSpan key_span(const std::pair<std::int64_t, std::optional<std::int64_t>>& keys) {
  return {keys.first, keys.second.value_or(kToTheEnd)};
}

py::object span_to_python(TokenSpan span) {
  return py::make_tuple(span.begin, span.end == kToTheEnd ? py::object(py::none()) : py::object(py::int_(span.end)));
}

py::dict region_to_python(const AttentionRegion& r) {
  py::dict d;
  d["effect"] = r.effect == RegionEffect::kAblate ? "ablate" : r.effect == RegionEffect::kBoost ? "boost" : "suppress";
  d["lane"] = r.lane;
  d["queries"] = span_to_python(r.queries);
  if (r.effect != RegionEffect::kAblate) d["keys"] = span_to_python(r.keys);
  d["heads"] = r.heads;
  d["layers"] = r.layers;
  if (r.effect == RegionEffect::kBoost) d["beta"] = r.beta;
  return d;
}

}  // namespace

void bind_attention_control(py::module_& m) {
  py::class_<AttentionControl>(
      m, "AttentionControl",
      "What changes about attention while a model runs or generates: heads ablated (their output zeroed, as "
      "zeroing their slice of o_proj's input), keys suppressed (hidden) or boosted (+beta on the scaled score), "
      "each from token position `start` on (positions count prompt tokens, then generated ones). Methods chain: "
      "`ta.AttentionControl().ablate_heads(3, [1, 5]).suppress_keys((40, 55), start=60)`. Pass it as "
      "`control=` to Model.sample, Model.logits and a provider's complete / prompt_logprobs (`anchors serve` "
      "takes its to_json() in a request's \"attention_control\" field). docs/attention-control.md.")
      .def(py::init<>())
      .def(
          "ablate_heads",
          [](AttentionControl& c, std::int64_t layer, std::optional<std::vector<std::int64_t>> heads,
             std::int64_t start) -> AttentionControl& { return c.ablate_heads(layer, all_if_none(heads), start); },
          py::arg("layer"), py::arg("heads") = py::none(), py::kw_only(), py::arg("start") = 0,
          py::return_value_policy::reference_internal,
          "Zero the output of `heads` (None: every head) of `layer` for positions >= start. Returns self.")
      .def(
          "suppress_keys",
          [](AttentionControl& c, const std::pair<std::int64_t, std::optional<std::int64_t>>& keys, std::int64_t start,
             std::optional<std::vector<std::int64_t>> layers,
             std::optional<std::vector<std::int64_t>> heads) -> AttentionControl& {
            return c.suppress_keys(key_span(keys), start, all_if_none(layers), all_if_none(heads));
          },
          py::arg("keys"), py::kw_only(), py::arg("start") = 0, py::arg("layers") = py::none(),
          py::arg("heads") = py::none(), py::return_value_policy::reference_internal,
          "Hide key positions keys=(begin, end) (end None: to the end) from queries at positions >= start, in "
          "`layers` and `heads` (None: all). Returns self.")
      .def(
          "boost_keys",
          [](AttentionControl& c, const std::pair<std::int64_t, std::optional<std::int64_t>>& keys, double beta,
             std::int64_t start, std::optional<std::vector<std::int64_t>> layers,
             std::optional<std::vector<std::int64_t>> heads) -> AttentionControl& {
            return c.boost_keys(key_span(keys), beta, start, all_if_none(layers), all_if_none(heads));
          },
          py::arg("keys"), py::arg("beta"), py::kw_only(), py::arg("start") = 0, py::arg("layers") = py::none(),
          py::arg("heads") = py::none(), py::return_value_policy::reference_internal,
          "Add beta to the scaled attention scores of key positions keys=(begin, end) for queries at positions "
          ">= start, in `layers` and `heads` (None: all). Returns self.")
      .def_static(
          "ablating",
          [](const std::vector<std::pair<std::int64_t, std::int64_t>>& layer_heads, std::int64_t start) {
            return AttentionControl::ablating(layer_heads, start);
          },
          py::arg("heads"), py::kw_only(), py::arg("start") = 0,
          "A control that ablates (layer, head) pairs, e.g. a receiver-head result's top heads.")
      .def_property_readonly(
          "regions",
          [](const AttentionControl& c) {
            py::list out;
            for (const AttentionRegion& r : c.regions) out.append(region_to_python(r));
            return out;
          },
          "The regions as dicts (effect, lane, queries, keys, heads, layers, beta); None as a span end: to the end.")
      .def("to_json", &attention_control_json, "The JSON `anchors serve` takes in \"attention_control\".")
      .def_static(
          "from_json", [](const std::string& text) { return parse_attention_control(text, "AttentionControl.from_json"); },
          py::arg("text"))
      .def("__len__", [](const AttentionControl& c) { return c.regions.size(); })
      .def("__eq__", [](const AttentionControl& a, const AttentionControl& b) { return a == b; }, py::is_operator())
      .def(py::pickle([](const AttentionControl& c) { return attention_control_json(c); },
                      [](const std::string& text) { return parse_attention_control(text, "AttentionControl pickle"); }))
      .def("__repr__", [](const AttentionControl& c) { return "AttentionControl(" + attention_control_json(c) + ")"; });
}

}  // namespace anchors::python
