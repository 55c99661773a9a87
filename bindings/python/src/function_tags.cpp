// Function tags: the learned and the rule-based tagger (anchors/core/function_tags.h,
// learned_tagger.h) and the chat-model labeller (anchors/rollout/chat_labeler.h). Both return a new
// Trace and leave the one passed in unchanged.
#include <pybind11/stl.h>

#include "anchors/core/function_tags.h"
#include "anchors/rollout/chat_labeler.h"
#include "bindings.h"

namespace anchors::python {
namespace {

FunctionTaggerOptions tagger_options(std::size_t max_check_block, bool inherit_when_no_cue, bool use_problem_text) {
  FunctionTaggerOptions o;
  o.max_check_block = max_check_block;
  o.inherit_when_no_cue = inherit_when_no_cue;
  o.use_problem_text = use_problem_text;
  return o;
}

// What label_with_chat returns.
struct PyChatLabels {
  Trace trace;                                        // a copy with Sentence.tags filled
  std::vector<std::vector<std::string>> function_tags;
  std::vector<std::vector<std::size_t>> depends_on;
  std::string content;
  std::string model;
};

}  // namespace

void bind_function_tags(py::module_& m) {
  m.def("function_tag_names", &function_tag_names,
        "The paper's eight function-tag categories, then \"unknown\" (docs/design.md §3).");

  const FunctionTaggerOptions defaults;
  m.def("function_tag_methods", &function_tag_methods,
        "The methods tag_functions accepts: \"learned\" (the default) and \"rules\".");
  m.def(
      "tag_functions",
      [](const Trace& trace, const std::string& method, std::size_t max_check_block, bool inherit_when_no_cue,
         bool use_problem_text) {
        Trace tagged = trace;
        tag_functions(tagged, method, tagger_options(max_check_block, inherit_when_no_cue, use_problem_text));
        return tagged;
      },
      py::arg("trace"), py::kw_only(), py::arg("method") = "learned",
      py::arg("max_check_block") = defaults.max_check_block,
      py::arg("inherit_when_no_cue") = defaults.inherit_when_no_cue,
      py::arg("use_problem_text") = defaults.use_problem_text,
      "A copy of `trace` whose sentences each carry one function tag. method=\"learned\" (default): the learned "
      "tagger (logistic regression over words, neighbours and the rules' decision, trained on the authors' labels); "
      "method=\"rules\": the rule-based tagger (cue phrases, sentence shape, context), which the other options "
      "tune (docs/function-tags.md). The trace passed in is not changed. thought_anchors.Error for another method.");
  m.def(
      "function_tag_rules",
      [](const Trace& trace, const std::string& method, std::size_t max_check_block, bool inherit_when_no_cue,
         bool use_problem_text) {
        Trace tagged = trace;
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& d :
             tag_functions(tagged, method, tagger_options(max_check_block, inherit_when_no_cue, use_problem_text)))
          out.emplace_back(d.tag, d.rule);
        return out;
      },
      py::arg("trace"), py::kw_only(), py::arg("method") = "learned",
      py::arg("max_check_block") = defaults.max_check_block,
      py::arg("inherit_when_no_cue") = defaults.inherit_when_no_cue,
      py::arg("use_problem_text") = defaults.use_problem_text,
      "[(tag, rule)] per sentence: what tag_functions chooses with the same arguments and the name of the rule that "
      "chose it (\"learned\" for every sentence of the learned tagger).");

  py::class_<PyChatLabels>(m, "ChatLabels", "Labels a chat model gave a trace (thought_anchors.label_with_chat).")
      .def_readonly("trace", &PyChatLabels::trace, "A copy of the trace with each sentence's tags set.")
      .def_readonly("function_tags", &PyChatLabels::function_tags, "Per sentence, the tags the model chose.")
      .def_readonly("depends_on", &PyChatLabels::depends_on, "Per sentence, the earlier sentences it uses.")
      .def_readonly("content", &PyChatLabels::content, "The model's answer, verbatim.")
      .def_readonly("model", &PyChatLabels::model, "The model that answered, as the server reports it.")
      .def("__repr__", [](const PyChatLabels& l) {
        return "ChatLabels(" + std::to_string(l.function_tags.size()) + " sentences, model=" +
               py::repr(py::str(l.model)).cast<std::string>() + ")";
      });

  const rollout::ChatLabelerOptions chat;
  m.def(
      "label_with_chat",
      [](const Trace& trace, const std::string& base_url, const std::string& model,
         const std::optional<std::string>& api_key, double temperature, std::int64_t max_tokens, bool json_mode,
         const std::string& problem, bool strict, double timeout, int max_retries, double backoff_base,
         double backoff_max) {
        rollout::ChatLabelerOptions o;
        o.base_url = base_url;
        o.model = model;
        o.api_key = api_key.value_or("");
        o.temperature = temperature;
        o.max_tokens = max_tokens;
        o.json_mode = json_mode;
        o.problem = problem;
        o.strict = strict;
        o.timeout_seconds = timeout;
        o.max_retries = max_retries;
        o.backoff_base_seconds = backoff_base;
        o.backoff_max_seconds = backoff_max;
        PyChatLabels out;
        out.trace = trace;
        rollout::ChatLabels labels;
        {
          py::gil_scoped_release release;  // the request may take minutes
          rollout::ChatLabeler labeler(o);
          labels = labeler.label_trace(out.trace);
        }
        for (const auto& s : labels.sentences) {
          out.function_tags.push_back(s.function_tags);
          out.depends_on.push_back(s.depends_on);
        }
        out.content = std::move(labels.content);
        out.model = std::move(labels.model);
        return out;
      },
      py::arg("trace"), py::arg("base_url"), py::arg("model") = chat.model, py::arg("api_key") = py::none(),
      py::kw_only(), py::arg("temperature") = chat.temperature, py::arg("max_tokens") = chat.max_tokens,
      py::arg("json_mode") = chat.json_mode, py::arg("problem") = chat.problem, py::arg("strict") = chat.strict,
      py::arg("timeout") = chat.timeout_seconds, py::arg("max_retries") = chat.max_retries,
      py::arg("backoff_base") = chat.backoff_base_seconds, py::arg("backoff_max") = chat.backoff_max_seconds,
      "Label every sentence with an OpenAI-compatible chat model: one POST to {base_url}/v1/chat/completions "
      "asking for function tags and depends_on links (docs/function-tags.md). api_key=None uses $OPENAI_API_KEY. "
      "Returns a ChatLabels whose .trace is a tagged copy. thought_anchors.Error for network failures after the "
      "retries, 4xx answers, or labels that cannot be read (strict=False maps unknown names to \"unknown\" and "
      "drops indices outside the trace instead).");
}

}  // namespace anchors::python
