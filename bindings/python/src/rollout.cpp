// Rollout providers and the black-box pipeline: thought_anchors.LocalProvider,
// OpenAIProvider and _C.analyze (thought_anchors.analyze and
// thought_anchors.Resampling add the default MiniLM embedder and a progress
// printer in Python).
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <fmt/format.h>

#include "anchors/core/attention_control.h"
#include "anchors/core/error.h"
#include "anchors/core/outcome.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/analyze.h"
#include "anchors/rollout/intervention.h"
#include "anchors/rollout/local_provider.h"
#include "anchors/rollout/openai_provider.h"
#include "anchors/rollout/provider_pool.h"
#include "bindings.h"
#include "token_ids.h"

namespace anchors::python {
namespace {

// messages= of complete(): a list of {"role", "content"} dicts or (role, content) pairs.
std::vector<rollout::ChatMessage> messages_from_python(const py::object& obj) {
  std::vector<rollout::ChatMessage> out;
  if (obj.is_none()) return out;
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    throw Error("messages must be a list of {\"role\": ..., \"content\": ...} dicts or (role, content) pairs");
  std::size_t i = 0;
  for (const py::handle item : obj) {
    rollout::ChatMessage m;
    if (py::isinstance<py::dict>(item)) {
      const auto d = py::reinterpret_borrow<py::dict>(item);
      if (!d.contains("role") || !d.contains("content") || !py::isinstance<py::str>(d["role"]) ||
          !py::isinstance<py::str>(d["content"]))
        throw Error("messages[" + std::to_string(i) + "] must have string \"role\" and \"content\"");
      m.role = d["role"].cast<std::string>();
      m.content = d["content"].cast<std::string>();
    } else if ((py::isinstance<py::tuple>(item) || py::isinstance<py::list>(item)) && py::len(item) == 2 &&
               py::isinstance<py::str>(item[py::int_(0)]) && py::isinstance<py::str>(item[py::int_(1)])) {
      m.role = item[py::int_(0)].cast<std::string>();
      m.content = item[py::int_(1)].cast<std::string>();
    } else {
      throw Error("messages[" + std::to_string(i) + "] must be a {\"role\", \"content\"} dict or a (role, content) pair");
    }
    out.push_back(std::move(m));
    ++i;
  }
  return out;
}

py::list messages_to_python(const std::vector<rollout::ChatMessage>& messages) {
  py::list out;
  for (const auto& m : messages) {
    py::dict d;
    d["role"] = m.role;
    d["content"] = m.content;
    out.append(std::move(d));
  }
  return out;
}

// thought_anchors.RolloutProvider subclassed in Python. C++ (the pipeline, a
// server, a worker thread) calls complete() and name() without holding the
// GIL, so each override takes it first. trampoline_self_life_support with the
// smart_holder keeps the Python object alive while C++ holds a shared_ptr to
// it, even after the last Python reference is gone.
class PyRolloutProvider : public rollout::RolloutProvider, public py::trampoline_self_life_support {
 public:
  using Completion = rollout::Completion;

  // complete() in Python takes no control, so a request with one is refused
  // rather than answered from the unchanged model (provider.h).
  void refuse_attention_control(const rollout::CompletionRequest& r) const {
    if (r.attention_control.empty()) return;
    py::gil_scoped_acquire gil;
    throw Error(python_name() + ": a Python RolloutProvider cannot apply an attention control (LocalProvider, "
                                "`anchors serve` and OpenAIProvider pointed at it can)");
  }

  std::string name() const override {
    py::gil_scoped_acquire gil;
    return python_name();
  }

  std::vector<Completion> complete(const rollout::CompletionRequest& r) override {
    refuse_attention_control(r);
    py::gil_scoped_acquire gil;
    const py::function override = py::get_override(static_cast<const rollout::RolloutProvider*>(this), "complete");
    if (!override) throw Error(python_name() + ": the Python RolloutProvider subclass does not define complete()");
    py::object result;
    try {
      result = override(r.prompt_ids, r.n, py::arg("temperature") = r.temperature, py::arg("top_p") = r.top_p,
                        py::arg("top_k") = r.top_k, py::arg("max_tokens") = r.max_tokens, py::arg("stop") = r.stop,
                        py::arg("seed") = r.seed, py::arg("prompt_text") = r.prompt_text,
                        py::arg("messages") = messages_to_python(r.messages), py::arg("min_p") = r.min_p,
                        py::arg("repetition_penalty") = r.repetition_penalty,
                        py::arg("presence_penalty") = r.presence_penalty,
                        py::arg("frequency_penalty") = r.frequency_penalty);
    } catch (py::error_already_set& e) {
      // Ctrl-C and sys.exit() must stay what they are, not become a failed request.
      if (e.matches(PyExc_KeyboardInterrupt) || e.matches(PyExc_SystemExit)) throw;
      throw Error(python_name() + ": complete() raised " + e.what());
    }
    return completions_from(result, r.n);
  }

  // A subclass may define prompt_logprobs(self, prompt_ids) -> list of floats
  // (one per id, the first NaN); without it, the base class's error.
  std::vector<double> prompt_logprobs(const rollout::CompletionRequest& r) override {
    refuse_attention_control(r);
    py::gil_scoped_acquire gil;
    const py::function override =
        py::get_override(static_cast<const rollout::RolloutProvider*>(this), "prompt_logprobs");
    if (!override) return rollout::RolloutProvider::prompt_logprobs(r);
    std::vector<double> values;
    try {
      values = override(r.prompt_ids).cast<std::vector<double>>();
    } catch (py::error_already_set& e) {
      if (e.matches(PyExc_KeyboardInterrupt) || e.matches(PyExc_SystemExit)) throw;
      throw Error(python_name() + ": prompt_logprobs() raised " + e.what());
    } catch (const py::cast_error&) {
      throw Error(python_name() + ": prompt_logprobs() must return a list of floats");
    }
    if (values.size() != r.prompt_ids.size())
      throw Error(python_name() + ": prompt_logprobs() returned " + std::to_string(values.size()) +
                  " values for " + std::to_string(r.prompt_ids.size()) + " prompt ids");
    return values;
  }

 private:
  // name(): a method, a property or a plain string attribute of the subclass;
  // none of those: "python:<class name>".
  std::string python_name() const {
    const py::handle self = py::detail::get_object_handle(
        static_cast<const rollout::RolloutProvider*>(this), py::detail::get_type_info(typeid(rollout::RolloutProvider)));
    if (!self) return "python:?";
    const py::handle type = reinterpret_cast<PyObject*>(Py_TYPE(self.ptr()));
    const std::string class_name = py::str(type.attr("__qualname__")).cast<std::string>();
    try {
      const py::object attr = py::getattr(type, "name", py::none());
      // The base class's own `name` property would call back into this function.
      if (attr.is_none() || attr.is(py::type::of<rollout::RolloutProvider>().attr("name"))) return "python:" + class_name;
      py::object value = py::isinstance<py::str>(attr) ? attr : py::getattr(self, "name");
      if (PyCallable_Check(value.ptr())) value = value();
      if (!py::isinstance<py::str>(value))
        throw Error(class_name + ".name() must return a str, got " +
                    py::str(py::type::handle_of(value).attr("__name__")).cast<std::string>());
      return value.cast<std::string>();
    } catch (py::error_already_set& e) {
      if (e.matches(PyExc_KeyboardInterrupt) || e.matches(PyExc_SystemExit)) throw;
      throw Error(class_name + ".name() raised " + e.what());
    }
  }

  std::vector<Completion> completions_from(const py::object& result, std::int64_t n) const {
    const auto type_name = [](const py::handle& h) {
      return py::str(py::type::handle_of(h).attr("__name__")).cast<std::string>();
    };
    if (!py::isinstance<py::list>(result))
      throw Error(python_name() + ": complete() must return a list of ta.Completion, got " + type_name(result));
    const auto list = py::reinterpret_borrow<py::list>(result);
    if (static_cast<std::int64_t>(list.size()) != n)
      throw Error(python_name() + ": complete() returned " + std::to_string(list.size()) + " completions for n = " +
                  std::to_string(n) + " (one per lane, in lane order)");
    std::vector<Completion> out;
    out.reserve(list.size());
    for (std::size_t k = 0; k < list.size(); ++k) {
      if (!py::isinstance<Completion>(list[k]))
        throw Error(python_name() + ": complete() returned a " + type_name(list[k]) + " at index " + std::to_string(k) +
                    ", not a ta.Completion");
      out.push_back(list[k].cast<Completion>());
    }
    return out;
  }
};

void bind_providers(py::module_& m) {
  py::class_<rollout::Completion>(m, "Completion", "One sampled continuation from a rollout provider.")
      .def(py::init([](std::string text, std::vector<std::int64_t> ids, std::string finish_reason) {
             return rollout::Completion{std::move(ids), std::move(text), std::move(finish_reason)};
           }),
           py::kw_only(), py::arg("text") = "", py::arg("ids") = std::vector<std::int64_t>{},
           py::arg("finish_reason") = "",
           "Completion(text=..., ids=[...], finish_reason=\"stop\"|\"length\"); ids may be left empty when unknown.")
      .def_readonly("ids", &rollout::Completion::ids, "The new token ids (may be empty for remote servers).")
      .def_readonly("text", &rollout::Completion::text)
      .def_readonly("finish_reason", &rollout::Completion::finish_reason, "\"stop\" or \"length\".")
      .def("__eq__", [](const rollout::Completion& a, const rollout::Completion& b) { return a == b; })
      .def("__repr__", [](const rollout::Completion& c) {
        return "Completion(" + std::to_string(c.ids.size()) + " ids, finish_reason=" + c.finish_reason + ", text=" +
               py::repr(py::str(c.text.substr(0, 60))).cast<std::string>() + ")";
      });

  const rollout::CompletionRequest r;
  py::class_<rollout::RolloutProvider, PyRolloutProvider, py::smart_holder>(
      m, "RolloutProvider",
      "Where rollouts come from: n sampled continuations of a prompt. Subclass it in Python with "
      "`def complete(self, prompt_ids, n, *, temperature, top_p, top_k, max_tokens, stop, seed, prompt_text, "
      "messages, min_p, repetition_penalty, presence_penalty, frequency_penalty) -> list[ta.Completion]` "
      "(all keywords are always passed) and optionally `def name(self) -> str`; call super().__init__().")
      .def(py::init<>())
      .def_property_readonly("name", &rollout::RolloutProvider::name)
      .def(
          "complete",
          [](rollout::RolloutProvider& provider, TokenIds prompt_ids, std::int64_t n,
             double temperature, double top_p, std::int64_t top_k, std::int64_t max_tokens,
             std::vector<std::string> stop, Seed seed, std::string prompt_text, const py::object& messages,
             double min_p, double repetition_penalty, double presence_penalty, double frequency_penalty,
             const std::optional<AttentionControl>& control) {
            rollout::CompletionRequest request;
            if (control) request.attention_control = *control;
            request.prompt_ids = std::move(prompt_ids.ids);
            request.prompt_text = std::move(prompt_text);
            request.messages = messages_from_python(messages);
            request.n = n;
            request.temperature = temperature;
            request.top_p = top_p;
            request.top_k = top_k;
            request.max_tokens = max_tokens;
            request.stop = std::move(stop);
            request.seed = seed.value;
            request.min_p = min_p;
            request.repetition_penalty = repetition_penalty;
            request.presence_penalty = presence_penalty;
            request.frequency_penalty = frequency_penalty;
            // C++ providers call no Python code; a Python subclass reached through
            // here takes the GIL back in its trampoline.
            py::gil_scoped_release release;
            torch::NoGradGuard no_grad;
            return provider.complete(request);
          },
          py::arg("prompt_ids") = TokenIds{}, py::arg("n") = r.n, py::kw_only(),
          py::arg("temperature") = r.temperature, py::arg("top_p") = r.top_p, py::arg("top_k") = r.top_k,
          py::arg("max_tokens") = r.max_tokens, py::arg("stop") = std::vector<std::string>{},
          py::arg("seed") = r.seed, py::arg("prompt_text") = r.prompt_text, py::arg("messages") = py::none(),
          py::arg("min_p") = r.min_p, py::arg("repetition_penalty") = r.repetition_penalty,
          py::arg("presence_penalty") = r.presence_penalty, py::arg("frequency_penalty") = r.frequency_penalty,
          py::arg("control") = py::none(),
          "n continuations of the prompt (prompt_ids, prompt_text and/or messages: a list of {role, content} "
          "dicts or (role, content) pairs, the last the assistant's partial message), in lane order; lane k "
          "depends only on (prompt, options, seed, k). control: a ta.AttentionControl applied while generating "
          "(LocalProvider; `anchors serve` through OpenAIProvider, which refuses an answer that does not "
          "confirm it; other providers refuse it).")
      .def(
          "prompt_logprobs",
          [](rollout::RolloutProvider& provider, TokenIds prompt_ids, const std::optional<AttentionControl>& control) {
            rollout::CompletionRequest request;
            request.prompt_ids = std::move(prompt_ids.ids);
            if (control) request.attention_control = *control;
            py::gil_scoped_release release;
            torch::NoGradGuard no_grad;
            return provider.prompt_logprobs(request);
          },
          py::arg("prompt_ids"), py::kw_only(), py::arg("control") = py::none(),
          "log p(prompt_ids[k] | prompt_ids[:k]) under the model at temperature 1, one per id (NaN for the first), "
          "with an optional ta.AttentionControl applied. "
          "LocalProvider runs one forward pass; OpenAIProvider asks /v1/completions with echo and logprobs; a "
          "Python subclass may define prompt_logprobs(self, prompt_ids).")
      .def("__repr__", [](const rollout::RolloutProvider& p) { return "<RolloutProvider " + p.name() + ">"; });

  py::class_<rollout::LocalProvider, rollout::RolloutProvider, py::smart_holder>(
      m, "LocalProvider",
      "Rollouts from our own sampler on a loaded model; the KV cache of the previous prompt's common prefix "
      "is reused. Needs prompt_ids, or prompt_text (encoded with the model's tokenizer, special tokens added).")
      .def(py::init([](std::shared_ptr<model::CausalLM> lm) {
             if (!lm) throw Error("LocalProvider: model is None");
             return std::make_shared<rollout::LocalProvider>(std::move(lm));
           }),
           py::arg("model"))
      .def_property_readonly("tokenizer", [](const rollout::LocalProvider& p) {
        return std::const_pointer_cast<model::Tokenizer>(p.tokenizer());
      });

  const rollout::OpenAIOptions o;
  py::class_<rollout::OpenAIProvider, rollout::RolloutProvider, py::smart_holder>(
      m, "OpenAIProvider",
      "Rollouts from an OpenAI-compatible server (vLLM, SGLang, `anchors serve`): prompt_mode \"ids\" "
      "(/v1/completions with token ids), \"text\" (/v1/completions with text) or \"chat\" "
      "(/v1/chat/completions continuing the assistant's partial message); bounded concurrency, retries with "
      "backoff and jitter, and timeouts. api_key (explicit) wins over the environment variable api_key_env.")
      .def(py::init([](std::string base_url, std::string model, std::string api_key, double timeout,
                       int max_retries, int max_concurrency, bool return_token_ids, std::string prompt_mode,
                       std::string api_key_env) {
             rollout::OpenAIOptions options;
             options.base_url = std::move(base_url);
             options.model = std::move(model);
             options.api_key = std::move(api_key);
             options.timeout_seconds = timeout;
             options.max_retries = max_retries;
             options.max_concurrency = max_concurrency;
             options.return_token_ids = return_token_ids;
             options.prompt_mode = std::move(prompt_mode);
             options.api_key_env = std::move(api_key_env);
             return std::make_shared<rollout::OpenAIProvider>(options);
           }),
           py::arg("base_url"), py::kw_only(), py::arg("model") = o.model, py::arg("api_key") = o.api_key,
           py::arg("timeout") = o.timeout_seconds, py::arg("max_retries") = o.max_retries,
           py::arg("max_concurrency") = o.max_concurrency, py::arg("return_token_ids") = o.return_token_ids,
           py::arg("prompt_mode") = o.prompt_mode, py::arg("api_key_env") = o.api_key_env)
      .def_property_readonly("prompt_mode", [](const rollout::OpenAIProvider& p) { return p.options().prompt_mode; });

  const rollout::ProviderPoolOptions po;
  py::class_<rollout::ProviderPool, rollout::RolloutProvider, py::smart_holder>(
      m, "ProviderPool",
      "Several providers of the same model as one (e.g. a fleet of vLLM servers): each request goes to the "
      "member with the fewest requests in flight (at most `concurrency` each); a member that fails sits out a "
      "cooldown (doubling per failure, capped) while its request is sent to another member, and rejoins after "
      "it. Members may be ta.RolloutProvider objects or server URLs (an OpenAIProvider each, with "
      "max_retries=1 so that a dead server hands its work on quickly). docs/rollout-providers.md.")
      .def(py::init([](const py::iterable& members, const std::string& model, int concurrency, double cooldown,
                       double cooldown_max, double wait) {
             std::vector<std::shared_ptr<rollout::RolloutProvider>> providers;
             for (const py::handle member : members) {
               if (py::isinstance<py::str>(member)) {
                 rollout::OpenAIOptions options;
                 options.base_url = member.cast<std::string>();
                 options.model = model;
                 options.max_retries = 1;
                 options.max_concurrency = concurrency;
                 providers.push_back(std::make_shared<rollout::OpenAIProvider>(options));
               } else if (py::isinstance<rollout::RolloutProvider>(member)) {
                 providers.push_back(member.cast<std::shared_ptr<rollout::RolloutProvider>>());
               } else {
                 throw Error("ProviderPool: members must be ta.RolloutProvider objects or server URLs, got " +
                             std::string(py::str(py::type::of(member).attr("__name__"))));
               }
             }
             rollout::ProviderPoolOptions options;
             options.concurrency = concurrency;
             options.cooldown_seconds = cooldown;
             options.cooldown_max_seconds = cooldown_max;
             options.wait_seconds = wait;
             return std::make_shared<rollout::ProviderPool>(std::move(providers), options);
           }),
           py::arg("members"), py::kw_only(), py::arg("model") = "", py::arg("concurrency") = po.concurrency,
           py::arg("cooldown") = po.cooldown_seconds, py::arg("cooldown_max") = po.cooldown_max_seconds,
           py::arg("wait") = po.wait_seconds)
      .def(
          "status",
          [](const rollout::ProviderPool& pool) {
            py::list out;
            for (const auto& s : pool.status()) {
              py::dict d;
              d["name"] = s.name;
              d["in_flight"] = s.in_flight;
              d["requests"] = s.requests;
              d["failures"] = s.failures;
              d["healthy"] = s.healthy;
              d["cooldown_left"] = s.cooldown_left_seconds;
              out.append(d);
            }
            return out;
          },
          "Per member: name, in_flight, requests, failures, healthy, cooldown_left (seconds).");
}

py::dict edit_dict(const rollout::EditOutcome& e) {
  py::dict d;
  d["kind"] = rollout::to_string(e.intervention.kind);
  d["sentence"] = e.intervention.sentence;
  d["text"] = e.intervention.text;
  d["id"] = e.id;
  d["prefix"] = e.prefix;
  d["dir"] = e.dir;
  d["num_rollouts"] = e.num_rollouts;
  d["num_errors"] = e.num_errors;
  d["num_labelled"] = e.num_labelled;
  d["num_matching"] = e.num_matching;
  d["labels"] = e.labels;
  d["rate"] = e.rate;
  d["baseline_rate"] = e.baseline_rate;
  d["rate_shift"] = e.rate_shift;
  d["kl_from_baseline"] = e.kl_from_baseline;
  return d;
}

void bind_interventions(py::module_& m) {
  py::class_<rollout::Intervention>(m, "Intervention",
                                    "An edit of a trace at one sentence: resample, insert, substitute, delete, "
                                    "truncate (docs/interventions.md).")
      .def(py::init([](const std::string& kind, std::size_t sentence, const std::string& text) {
             return rollout::Intervention{rollout::intervention_kind(kind), sentence, text};
           }),
           py::arg("kind"), py::arg("sentence"), py::arg("text") = "")
      .def_property_readonly("kind", [](const rollout::Intervention& i) { return rollout::to_string(i.kind); })
      .def_readonly("sentence", &rollout::Intervention::sentence)
      .def_readonly("text", &rollout::Intervention::text)
      .def_property_readonly("id", &rollout::intervention_id)
      .def(
          "prefix", [](const rollout::Intervention& i, const Trace& trace) { return rollout::intervened_prefix(trace, i); },
          py::arg("trace"), "The edited solution prefix the rollouts continue (truncate's forced stub not included).")
      .def("__eq__", [](const rollout::Intervention& a, const rollout::Intervention& b) { return a == b; })
      .def("__repr__", [](const rollout::Intervention& i) {
        return fmt::format("{}({}{})", rollout::to_string(i.kind), i.sentence,
                           i.text.empty() ? std::string() : ", " + py::repr(py::str(i.text)).cast<std::string>());
      });

  const rollout::InterventionOptions d;
  m.def(
      "intervene",
      [](std::shared_ptr<rollout::RolloutProvider> provider, std::shared_ptr<model::Tokenizer> tokenizer,
         const Trace& trace, const std::string& prompt, const std::string& target,
         const std::vector<rollout::Intervention>& interventions, const std::string& out_dir,
         std::int64_t num_rollouts, bool baseline, Seed seed, double temperature, double top_p,
         double min_p, double repetition_penalty, std::int64_t max_tokens, std::int64_t max_positions, std::int64_t batch, std::shared_ptr<Outcome> outcome,
         std::optional<py::function> progress) {
        if (!provider) throw Error("intervene: provider is None");
        if (!tokenizer) throw Error("intervene: no tokenizer (the token-id prompts need the model's tokenizer.json)");
        rollout::InterventionOptions o;
        o.num_rollouts = num_rollouts;
        o.baseline = baseline;
        o.seed = seed.value;
        o.temperature = temperature;
        o.top_p = top_p;
        o.min_p = min_p;
        o.repetition_penalty = repetition_penalty;
        o.max_tokens = max_tokens;
        o.max_positions = max_positions;
        o.batch = batch;
        o.outcome = std::move(outcome);
        o.control = control_from_python(progress);
        rollout::InterventionResult r;
        {
          py::gil_scoped_release release;  // as analyze: Python pieces take the GIL themselves
          torch::NoGradGuard no_grad;
          r = rollout::intervene(*provider, *tokenizer, trace, prompt, target, interventions, out_dir, o);
        }
        py::dict out;
        out["out_dir"] = r.out_dir;
        out["outcome"] = r.outcome;
        out["generated"] = r.generated;
        py::list edits, baselines;
        for (const auto& e : r.edits) edits.append(edit_dict(e));
        for (const auto& b : r.baselines) baselines.append(edit_dict(b));
        out["edits"] = edits;
        out["baselines"] = baselines;
        return out;
      },
      py::arg("provider"), py::arg("tokenizer"), py::arg("trace"), py::arg("prompt"), py::arg("target"),
      py::arg("interventions"), py::arg("out_dir"), py::kw_only(), py::arg("num_rollouts") = d.num_rollouts,
      py::arg("baseline") = d.baseline, py::arg("seed") = d.seed, py::arg("temperature") = d.temperature,
      py::arg("top_p") = d.top_p, py::arg("min_p") = d.min_p, py::arg("repetition_penalty") = d.repetition_penalty,
      py::arg("max_tokens") = d.max_tokens, py::arg("max_positions") = d.max_positions,
      py::arg("batch") = d.batch, py::arg("outcome") = py::none(), py::arg("progress") = py::none(),
      "Rollouts of edited prefixes (resumable); see thought_anchors.intervene.");
}

}  // namespace

// problem= / scenario= of the study functions: the Problem analyze makes of them.
Problem problem_from_python(const std::string& problem_text, const std::string& scenario) {
  if (!scenario.empty()) return parse_scenario(scenario, "scenario");
  Problem problem;
  problem.text = problem_text;
  return problem;
}

void bind_rollout(py::module_& m) {
  bind_providers(m);
  bind_interventions(m);
  m.def(
      "problem_folder_name",
      [](const std::string& problem, const std::string& scenario) {
        return rollout::problem_folder_name(problem_from_python(problem, scenario));
      },
      py::arg("problem"), py::kw_only(), py::arg("scenario") = "",
      "problem_N: the folder analyze gives a problem (or a scenario, as JSON text) under <out>/<kind>_base_solution.");
  m.def(
      "analysis_prompt",
      [](const std::string& problem, const std::string& scenario, const std::string& prompt) {
        return rollout::analysis_prompt(problem_from_python(problem, scenario), prompt);
      },
      py::arg("problem"), py::kw_only(), py::arg("scenario") = "", py::arg("prompt") = "",
      "The prompt analyze puts before a solution: `prompt`, else the scenario's, else the raw reference prompt.");
  const rollout::AnalyzeOptions d;
  m.def(
      "analyze",
      [](std::shared_ptr<rollout::RolloutProvider> provider, std::shared_ptr<model::Tokenizer> tokenizer,
         const std::string& problem_text, const std::string& gt_answer, const std::string& out_dir,
         const py::object& similarity, const ValueMap& options, const std::string& base,
         std::optional<std::string> base_solution, const std::string& prompt, std::shared_ptr<Outcome> outcome,
         std::optional<py::function> progress, const std::string& scenario) {
        if (!provider) throw Error("analyze: provider is None");
        if (!tokenizer) throw Error("analyze: no tokenizer (the token-id prompts need the model's tokenizer.json)");
        Problem problem;
        problem.text = problem_text;
        problem.gt_answer = gt_answer;
        if (!scenario.empty()) {
          problem = parse_scenario(scenario, "scenario");
          if (!gt_answer.empty()) problem.gt_answer = gt_answer;
        }
        rollout::AnalyzeOptions o = rollout::analyze_options(options);
        o.base = base;
        o.base_solution = std::move(base_solution);
        o.prompt = prompt;
        o.outcome = outcome ? std::move(outcome) : rollout::scenario_outcome(problem);
        o.control = control_from_python(progress);
        const auto sim = similarity_from_python(similarity);
        // The engine runs without the GIL (a judge or server in this process
        // must be able to answer); every Python piece it calls — similarity,
        // outcome, provider, progress — takes the GIL itself.
        py::gil_scoped_release release;
        torch::NoGradGuard no_grad;
        return rollout::analyze_problem(*provider, *tokenizer, problem, out_dir, *sim, o).result;
      },
      py::arg("provider"), py::arg("tokenizer"), py::arg("problem"), py::arg("gt_answer"), py::arg("out_dir"),
      py::kw_only(), py::arg("similarity"), py::arg("options") = ValueMap{}, py::arg("base") = d.base,
      py::arg("base_solution") = py::none(), py::arg("prompt") = d.prompt, py::arg("outcome") = py::none(),
      py::arg("progress") = py::none(), py::arg("scenario") = "",
      "The black-box pipeline of `anchors analyze` (resumable): returns the AnalysisResult. options: the "
      "\"resampling\" method's options by name (ta.method_info(\"resampling\")).");
}

}  // namespace anchors::python
