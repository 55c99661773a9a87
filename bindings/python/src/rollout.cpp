// Rollout providers and the black-box pipeline: thought_anchors.LocalProvider,
// OpenAIProvider and _C.analyze (thought_anchors.analyze and
// thought_anchors.Resampling add the default MiniLM embedder and a progress
// printer in Python).
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/core/outcome.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/analyze.h"
#include "anchors/rollout/intervention.h"
#include "anchors/rollout/local_provider.h"
#include "anchors/rollout/openai_provider.h"
#include "bindings.h"

namespace anchors::python {
namespace {

py::dict progress_dict(const rollout::AnalyzeProgress& p) {
  py::dict d;
  d["sentences_done"] = p.sentences_done;
  d["sentences_total"] = p.sentences_total;
  d["rollouts_done"] = p.rollouts_done;
  d["rollouts_total"] = p.rollouts_total;
  d["rollouts_generated"] = p.rollouts_generated;
  d["failed"] = p.failed;
  d["rollouts_per_second"] = p.rollouts_per_second;
  d["eta_seconds"] = p.eta_seconds;
  d["sentence"] = p.sentence;
  d["forced"] = p.forced;
  return d;
}

void bind_providers(py::module_& m) {
  py::class_<rollout::Completion>(m, "Completion", "One sampled continuation from a rollout provider.")
      .def_readonly("ids", &rollout::Completion::ids, "The new token ids (may be empty for remote servers).")
      .def_readonly("text", &rollout::Completion::text)
      .def_readonly("finish_reason", &rollout::Completion::finish_reason, "\"stop\" or \"length\".")
      .def("__eq__", [](const rollout::Completion& a, const rollout::Completion& b) { return a == b; })
      .def("__repr__", [](const rollout::Completion& c) {
        return "Completion(" + std::to_string(c.ids.size()) + " ids, finish_reason=" + c.finish_reason + ", text=" +
               py::repr(py::str(c.text.substr(0, 60))).cast<std::string>() + ")";
      });

  const rollout::CompletionRequest r;
  py::class_<rollout::RolloutProvider, std::shared_ptr<rollout::RolloutProvider>>(
      m, "RolloutProvider", "Where rollouts come from: n sampled continuations of a token-id prompt.")
      .def_property_readonly("name", &rollout::RolloutProvider::name)
      .def(
          "complete",
          [](rollout::RolloutProvider& provider, std::vector<std::int64_t> prompt_ids, std::int64_t n,
             double temperature, double top_p, std::int64_t top_k, std::int64_t max_tokens,
             std::vector<std::string> stop, std::uint64_t seed) {
            rollout::CompletionRequest request;
            request.prompt_ids = std::move(prompt_ids);
            request.n = n;
            request.temperature = temperature;
            request.top_p = top_p;
            request.top_k = top_k;
            request.max_tokens = max_tokens;
            request.stop = std::move(stop);
            request.seed = seed;
            py::gil_scoped_release release;  // providers call no Python code
            torch::NoGradGuard no_grad;
            return provider.complete(request);
          },
          py::arg("prompt_ids"), py::arg("n") = r.n, py::kw_only(), py::arg("temperature") = r.temperature,
          py::arg("top_p") = r.top_p, py::arg("top_k") = r.top_k, py::arg("max_tokens") = r.max_tokens,
          py::arg("stop") = std::vector<std::string>{}, py::arg("seed") = r.seed,
          "n continuations of the prompt, in lane order; lane k depends only on (prompt, options, seed, k).")
      .def("__repr__", [](const rollout::RolloutProvider& p) { return "<RolloutProvider " + p.name() + ">"; });

  py::class_<rollout::LocalProvider, rollout::RolloutProvider, std::shared_ptr<rollout::LocalProvider>>(
      m, "LocalProvider",
      "Rollouts from our own sampler on a loaded model; the KV cache of the previous prompt's common prefix "
      "is reused.")
      .def(py::init([](std::shared_ptr<model::CausalLM> lm) {
             if (!lm) throw Error("LocalProvider: model is None");
             return std::make_shared<rollout::LocalProvider>(std::move(lm));
           }),
           py::arg("model"))
      .def_property_readonly("tokenizer", [](const rollout::LocalProvider& p) {
        return std::const_pointer_cast<model::Tokenizer>(p.tokenizer());
      });

  const rollout::OpenAIOptions o;
  py::class_<rollout::OpenAIProvider, rollout::RolloutProvider, std::shared_ptr<rollout::OpenAIProvider>>(
      m, "OpenAIProvider",
      "Rollouts from an OpenAI-compatible /v1/completions server (vLLM, SGLang, `anchors serve`) with "
      "token-id prompts, bounded concurrency, retries with backoff and jitter, and timeouts.")
      .def(py::init([](std::string base_url, std::string model, std::string api_key, double timeout,
                       int max_retries, int max_concurrency, bool return_token_ids) {
             rollout::OpenAIOptions options;
             options.base_url = std::move(base_url);
             options.model = std::move(model);
             options.api_key = std::move(api_key);
             options.timeout_seconds = timeout;
             options.max_retries = max_retries;
             options.max_concurrency = max_concurrency;
             options.return_token_ids = return_token_ids;
             return std::make_shared<rollout::OpenAIProvider>(options);
           }),
           py::arg("base_url"), py::kw_only(), py::arg("model") = o.model, py::arg("api_key") = o.api_key,
           py::arg("timeout") = o.timeout_seconds, py::arg("max_retries") = o.max_retries,
           py::arg("max_concurrency") = o.max_concurrency, py::arg("return_token_ids") = o.return_token_ids);
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
      .def("prefix", &rollout::intervened_prefix, py::arg("trace"), "The edited solution prefix the rollouts continue.")
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
         std::int64_t num_rollouts, bool baseline, std::uint64_t seed, double temperature, double top_p,
         std::int64_t max_tokens, std::int64_t max_positions, std::int64_t batch, std::shared_ptr<Outcome> outcome,
         std::optional<py::function> progress) {
        if (!provider) throw Error("intervene: provider is None");
        if (!tokenizer) throw Error("intervene: no tokenizer (the token-id prompts need the model's tokenizer.json)");
        rollout::InterventionOptions o;
        o.num_rollouts = num_rollouts;
        o.baseline = baseline;
        o.seed = seed;
        o.temperature = temperature;
        o.top_p = top_p;
        o.max_tokens = max_tokens;
        o.max_positions = max_positions;
        o.batch = batch;
        o.outcome = std::move(outcome);
        if (progress) o.progress = [fn = *progress](std::int64_t done, std::int64_t total) { fn(done, total); };
        torch::NoGradGuard no_grad;  // the GIL stays held: outcomes and progress may be Python code
        const rollout::InterventionResult r =
            rollout::intervene(*provider, *tokenizer, trace, prompt, target, interventions, out_dir, o);
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
      py::arg("top_p") = d.top_p, py::arg("max_tokens") = d.max_tokens, py::arg("max_positions") = d.max_positions,
      py::arg("batch") = d.batch, py::arg("outcome") = py::none(), py::arg("progress") = py::none(),
      "Rollouts of edited prefixes (resumable); see thought_anchors.intervene.");
}

}  // namespace

void bind_rollout(py::module_& m) {
  bind_providers(m);
  bind_interventions(m);
  const rollout::AnalyzeOptions d;
  m.def(
      "analyze",
      [](std::shared_ptr<rollout::RolloutProvider> provider, std::shared_ptr<model::Tokenizer> tokenizer,
         const std::string& problem_text, const std::string& gt_answer, const std::string& out_dir,
         const py::object& similarity, std::int64_t num_rollouts, bool forced, std::uint64_t seed, double temperature,
         double top_p, std::int64_t max_tokens, std::int64_t max_positions, const std::string& base,
         std::int64_t batch, double similarity_threshold, std::optional<std::string> base_solution,
         const std::string& prompt, std::shared_ptr<Outcome> outcome, std::optional<py::function> progress) {
        if (!provider) throw Error("analyze: provider is None");
        if (!tokenizer) throw Error("analyze: no tokenizer (the token-id prompts need the model's tokenizer.json)");
        Problem problem;
        problem.text = problem_text;
        problem.gt_answer = gt_answer;
        rollout::AnalyzeOptions o;
        o.num_rollouts = num_rollouts;
        o.forced = forced;
        o.seed = seed;
        o.temperature = temperature;
        o.top_p = top_p;
        o.max_tokens = max_tokens;
        o.max_positions = max_positions;
        o.base = base;
        o.batch = batch;
        o.similarity_threshold = similarity_threshold;
        o.base_solution = std::move(base_solution);
        o.prompt = prompt;
        o.outcome = std::move(outcome);
        if (progress)
          o.progress = [fn = *progress](const rollout::AnalyzeProgress& p) { fn(progress_dict(p)); };
        const auto sim = similarity_from_python(similarity);
        // The GIL stays held: the similarity and the progress callback may be Python code.
        torch::NoGradGuard no_grad;
        return rollout::analyze_problem(*provider, *tokenizer, problem, out_dir, *sim, o).result;
      },
      py::arg("provider"), py::arg("tokenizer"), py::arg("problem"), py::arg("gt_answer"), py::arg("out_dir"),
      py::kw_only(), py::arg("similarity"), py::arg("num_rollouts") = d.num_rollouts, py::arg("forced") = d.forced,
      py::arg("seed") = d.seed, py::arg("temperature") = d.temperature, py::arg("top_p") = d.top_p,
      py::arg("max_tokens") = d.max_tokens, py::arg("max_positions") = d.max_positions, py::arg("base") = d.base,
      py::arg("batch") = d.batch, py::arg("similarity_threshold") = d.similarity_threshold,
      py::arg("base_solution") = py::none(), py::arg("prompt") = d.prompt, py::arg("outcome") = py::none(),
      py::arg("progress") = py::none(),
      "The black-box pipeline of `anchors analyze` (resumable): returns the AnalysisResult.");
}

}  // namespace anchors::python
