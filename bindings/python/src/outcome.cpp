// Outcomes (anchors/core/outcome.h, anchors/rollout/chat_judge.h):
// thought_anchors.Outcome (subclassable in Python), BoxedAnswer, RegexOutcome,
// MultipleChoice, ChatJudge, outcome_from_spec. thought_anchors.FunctionOutcome
// (a Python callable) is a Python subclass in outcomes.py.
#include <pybind11/stl.h>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/core/outcome.h"
#include "anchors/rollout/chat_judge.h"
#include "anchors/rollout/chat_similarity.h"
#include "bindings.h"

namespace anchors::python {
namespace {

// Python subclasses of ta.Outcome. The engine may call them from C++ code
// that released the GIL, so every call takes it; a Python exception becomes
// an anchors::Error naming the outcome, like every other failure the engine
// reports.
class PyOutcome : public Outcome {
 public:
  std::string name() const override {
    return call<std::string>("name", [this] { return "python:" + class_name(); });
  }
  std::optional<std::string> label(const std::string& text) const override {
    return call<std::optional<std::string>>("label", nullptr, text);
  }
  bool matches(const std::string& label, const std::string& target) const override {
    return call<bool>("matches", [&] { return Outcome::matches(label, target); }, label, target);
  }
  std::string distribution_key(const std::string& label) const override {
    return call<std::string>("distribution_key", [&] { return Outcome::distribution_key(label); }, label);
  }
  std::string forced_stub() const override {
    return call<std::string>("forced_stub", [&] { return Outcome::forced_stub(); });
  }

 private:
  // The Python class's name (the GIL must be held).
  std::string class_name() const {
    py::object self = py::cast(static_cast<const Outcome*>(this), py::return_value_policy::reference);
    return self.attr("__class__").attr("__name__").cast<std::string>();
  }

  // The Python override of `method`, or `fallback` (nullptr: it must exist).
  template <typename R, typename Fallback, typename... Args>
  R call(const char* method, Fallback fallback, const Args&... args) const {
    py::gil_scoped_acquire gil;
    py::function override = py::get_override(static_cast<const Outcome*>(this), method);
    if (!override) {
      if constexpr (std::is_same_v<Fallback, std::nullptr_t>) {
        throw Error(fmt::format("ta.Outcome subclass {} does not implement {}()", class_name(), method));
      } else {
        return fallback();
      }
    }
    py::object result;
    try {
      result = override(args...);
    } catch (py::error_already_set& e) {
      throw Error(fmt::format("outcome {}(): {}", method, e.what()));
    }
    try {
      return result.cast<R>();
    } catch (const py::cast_error&) {
      throw Error(fmt::format("outcome {}() returned {}, expected {}", method,
                              py::repr(result).cast<std::string>(),
                              std::is_same_v<R, bool> ? "a bool"
                              : std::is_same_v<R, std::string> ? "a str"
                                                               : "a str or None"));
    }
  }
};

}  // namespace

void bind_outcomes(py::module_& m) {
  py::class_<Outcome, PyOutcome, std::shared_ptr<Outcome>>(
      m, "Outcome",
      "What a rollout ended in. Subclass it and implement label(text) -> str | None (and, optionally, "
      "matches(label, target) -> bool, name(), distribution_key(label), forced_stub()); or use BoxedAnswer, "
      "RegexOutcome, MultipleChoice, ChatJudge, FunctionOutcome.")
      .def(py::init<>())
      .def("name", &Outcome::name, "How results name the outcome (\"boxed\", \"regex:...\", ...).")
      // Without the GIL: a judge may wait on a server of this very process
      // (a Python subclass takes the GIL back itself).
      .def("label", &Outcome::label, py::arg("text"), py::call_guard<py::gil_scoped_release>(),
           "The label of a text, or None.")
      .def("matches", &Outcome::matches, py::arg("label"), py::arg("target"),
           py::call_guard<py::gil_scoped_release>(), "Whether a label counts as the target (default: equal strings).")
      .def("distribution_key", &Outcome::distribution_key, py::arg("label"),
           "The key a label is counted under in label distributions (default: the label).")
      .def("forced_stub", &Outcome::forced_stub,
           "The text after which forced-outcome rollouts continue.")
      .def(
          "classify",
          [](const Outcome& o, const std::string& text) {
            OutcomeLabel l;
            {
              py::gil_scoped_release release;
              l = o.classify(text);
            }
            return py::make_tuple(l.label, l.raw);
          },
          py::arg("text"), "(label or None, raw evidence) as the engine records them.")
      .def("__repr__", [](const Outcome& o) { return "<Outcome " + o.name() + ">"; });

  py::class_<BoxedAnswer, Outcome, std::shared_ptr<BoxedAnswer>>(
      m, "BoxedAnswer", "\\boxed{} math answers (the default): answers_equivalent against gt_answer.")
      .def(py::init<>());

  const RegexOutcomeOptions ro;
  py::class_<RegexOutcome, Outcome, std::shared_ptr<RegexOutcome>>(
      m, "RegexOutcome",
      "The label is capture group `group` of the last match of a PCRE2 (Perl-syntax) pattern.")
      .def(py::init([](const std::string& pattern, int group, bool ignore_case, const std::string& forced_stub) {
             RegexOutcomeOptions o;
             o.group = group;
             o.ignore_case_labels = ignore_case;
             o.forced_stub = forced_stub;
             return std::make_shared<RegexOutcome>(pattern, o);
           }),
           py::arg("pattern"), py::arg("group") = ro.group, py::kw_only(),
           py::arg("ignore_case") = ro.ignore_case_labels, py::arg("forced_stub") = ro.forced_stub)
      .def_property_readonly("pattern", &RegexOutcome::pattern);

  py::class_<MultipleChoice, Outcome, std::shared_ptr<MultipleChoice>>(
      m, "MultipleChoice", "Multiple-choice answers: \\boxed{C}, or \"the answer is (C)\"; one letter or digit each.")
      .def(py::init<std::string>(), py::arg("choices") = "ABCD")
      .def_property_readonly("choices", &MultipleChoice::choices);

  const rollout::ChatJudgeOptions jo;
  py::class_<rollout::ChatJudge, Outcome, std::shared_ptr<rollout::ChatJudge>>(
      m, "ChatJudge",
      "An outcome decided by a chat model at an OpenAI-compatible /v1/chat/completions endpoint; the prompt's "
      "{text} is replaced by the rollout. Answers are cached per distinct text; the raw answer is recorded.")
      .def(py::init([](const std::string& url, const std::string& model, const std::string& prompt,
                       std::vector<std::string> labels, const std::string& system, const std::string& api_key,
                       double temperature, std::int64_t max_tokens, double timeout, int max_retries,
                       double backoff_base, double backoff_max) {
             rollout::ChatJudgeOptions o;
             o.base_url = url;
             o.model = model;
             o.prompt = prompt;
             o.labels = std::move(labels);
             o.system = system;
             o.api_key = api_key;
             o.temperature = temperature;
             o.max_tokens = max_tokens;
             o.timeout_seconds = timeout;
             o.max_retries = max_retries;
             o.backoff_base_seconds = backoff_base;
             o.backoff_max_seconds = backoff_max;
             return std::make_shared<rollout::ChatJudge>(o);
           }),
           py::arg("url"), py::kw_only(), py::arg("model") = jo.model, py::arg("prompt") = jo.prompt,
           py::arg("labels") = jo.labels, py::arg("system") = jo.system, py::arg("api_key") = jo.api_key,
           py::arg("temperature") = jo.temperature, py::arg("max_tokens") = jo.max_tokens,
           py::arg("timeout") = jo.timeout_seconds, py::arg("max_retries") = jo.max_retries,
           py::arg("backoff_base") = jo.backoff_base_seconds, py::arg("backoff_max") = jo.backoff_max_seconds)
      .def_property_readonly("requests", &rollout::ChatJudge::requests, "HTTP requests made (cache misses).");

  const rollout::ChatSimilarityOptions so;
  py::class_<rollout::ChatSimilarity, std::shared_ptr<rollout::ChatSimilarity>>(
      m, "ChatSimilarity",
      "Sentence similarity judged by a chat model at an OpenAI-compatible /v1/chat/completions endpoint: 1 when "
      "its answer starts with labels[0] (\"yes\": the same content), 0 for another label, ta.Error for an answer "
      "that starts with none. The prompt's {a} and {b} are the two sentences. Pass it as similarity= to any method "
      "(e.g. ta.Resilience) instead of the MiniLM embedder.")
      .def(py::init([](const std::string& url, const std::string& model, const std::string& prompt,
                       std::vector<std::string> labels, const std::string& system, const std::string& api_key,
                       double timeout, int max_retries) {
             rollout::ChatSimilarityOptions o;
             o.judge.base_url = url;
             o.judge.model = model;
             o.judge.system = system;
             o.judge.api_key = api_key;
             o.judge.timeout_seconds = timeout;
             o.judge.max_retries = max_retries;
             o.prompt = prompt;
             o.labels = std::move(labels);
             return std::make_shared<rollout::ChatSimilarity>(o);
           }),
           py::arg("url"), py::kw_only(), py::arg("model") = so.judge.model, py::arg("prompt") = so.prompt,
           py::arg("labels") = so.labels, py::arg("system") = so.judge.system, py::arg("api_key") = so.judge.api_key,
           py::arg("timeout") = so.judge.timeout_seconds, py::arg("max_retries") = so.judge.max_retries)
      .def("similarities", &rollout::ChatSimilarity::similarities, py::arg("pairs"),
           py::call_guard<py::gil_scoped_release>(), "One similarity (1 or 0) per (a, b) pair.")
      .def_property_readonly("requests", &rollout::ChatSimilarity::requests, "HTTP requests made (cache misses).");

  m.def(
      "outcome_from_spec",
      [](const std::string& spec) {
        return std::const_pointer_cast<Outcome>(rollout::outcome_from_spec(spec, rollout::ChatJudgeOptions{}));
      },
      py::arg("spec"), "An outcome from its CLI spelling: boxed, regex:PATTERN, choice:ABCD, judge:URL.");
}

}  // namespace anchors::python
