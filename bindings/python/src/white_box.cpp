// White-box methods: the model-level functions (suppression matrix, receiver
// heads, attention rhythm), the registry's run entry point and the torch ops.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include "anchors/core/error.h"
#include "anchors/core/outcome.h"
#include "anchors/core/rollouts.h"
#include "anchors/core/receiver_statistics.h"
#include "anchors/methods/builtins.h"
#include "anchors/methods/registry.h"
#include "anchors/methods/white_box.h"
#include "anchors/model/attention_rhythm.h"
#include "anchors/model/attention_suppression.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/head_influence.h"
#include "anchors/model/receiver_heads.h"
#include "anchors/model/tensor_convert.h"
#include "anchors/model/token_trace.h"
#include "anchors/model/tokenizer.h"
#include "anchors/model/torch_ops.h"
#include "anchors/rollout/provider.h"
#include "bindings.h"
#include "token_ids.h"

namespace anchors::python {
namespace {

using SpanPairs = std::vector<std::pair<std::int64_t, std::int64_t>>;

model::TokenTrace token_trace(std::vector<std::int64_t> ids, const SpanPairs& spans) {
  model::TokenTrace t;
  t.ids = std::move(ids);
  for (const auto& [begin, end] : spans) t.sentences.push_back(TokenSpan{begin, end});
  return t;
}

SpanPairs span_pairs(const std::vector<TokenSpan>& spans) {
  SpanPairs out;
  for (const auto& s : spans) out.emplace_back(s.begin, s.end);
  return out;
}


py::list heads_to_python(const std::vector<model::HeadIndex>& heads) {
  py::list out;
  for (const auto& h : heads) out.append(py::make_tuple(h.layer, h.head));
  return out;
}

}  // namespace

RunControl control_from_python(const std::optional<py::function>& progress) {
  RunControl control;
  if (progress)
    control.progress = [fn = *progress](std::size_t done, std::size_t total, const std::string& unit) {
      py::gil_scoped_acquire acquire;
      fn(done, total, unit);
    };
  return control;
}

namespace {
// The credit part of AttentionRhythmOptions, as attention_rhythm and rhythm_credit take it.
model::AttentionRhythmOptions credit_options(double top_fraction, double gamma, std::string credit,
                                             std::int64_t coupled_k, double coupled_alpha, double tau_waad,
                                             double tau_delta) {
  model::AttentionRhythmOptions o;
  o.top_fraction = top_fraction;
  o.gamma = gamma;
  o.credit = std::move(credit);
  o.coupled_k = coupled_k;
  o.coupled_alpha = coupled_alpha;
  o.tau_waad = tau_waad;
  o.tau_delta = tau_delta;
  return o;
}
}  // namespace

void bind_white_box(py::module_& m) {
  register_builtins();  // methods() and run_method(name, ...) see the white-box methods
  model::register_torch_ops();

  m.def(
      "tokenize_trace",
      [](const model::Tokenizer& tokenizer, const Trace& trace, bool add_special_tokens) {
        const model::TokenTrace t = model::tokenize_trace(tokenizer, trace, add_special_tokens);
        return py::make_tuple(t.ids, span_pairs(t.sentences));
      },
      py::arg("tokenizer"), py::arg("trace"), py::arg("add_special_tokens") = true,
      "(token_ids, sentence_spans) of prompt + trace text: the input of the white-box methods.");

  m.def(
      "sentence_scores_to_token_weights",
      [](const Trace& trace, const std::vector<double>& scores, const model::Tokenizer& tokenizer, double fill,
         bool add_special_tokens) {
        const model::TokenTrace t = model::tokenize_trace(tokenizer, trace, add_special_tokens);
        const std::vector<double> values = model::sentence_scores_to_tokens(t, scores, fill);
        return torch::tensor(values, torch::kFloat64).to(torch::kFloat32);
      },
      py::arg("trace"), py::arg("scores"), py::arg("tokenizer"), py::kw_only(), py::arg("fill") = 1.0,
      py::arg("add_special_tokens") = true,
      "Tensor[T] float32 over tokenize_trace(tokenizer, trace)'s ids (prompt + text): each token gets its "
      "sentence's score, tokens in no sentence (and NaN scores) get fill. E.g. RL weights 1 + lam * importance.");

  const model::SuppressionOptions sd;
  m.def(
      "suppression_matrix",
      [](const model::CausalLM& lm, TokenIds token_ids, const SpanPairs& sentence_spans,
         double temperature, double top_p, std::int64_t max_kept, std::int64_t batch_lanes, bool reuse_prefix,
         std::optional<py::function> progress) {
        model::SuppressionOptions o;
        o.temperature = temperature;
        o.top_p = top_p;
        o.max_kept = max_kept;
        o.batch_lanes = batch_lanes;
        o.reuse_prefix = reuse_prefix;
        o.control = control_from_python(progress);
        const model::TokenTrace t = token_trace(std::move(token_ids.ids), sentence_spans);
        py::gil_scoped_release release;
        torch::NoGradGuard no_grad;
        return model::suppression_matrix(lm, t, o);
      },
      py::arg("model"), py::arg("token_ids"), py::arg("sentence_spans"), py::kw_only(),
      py::arg("temperature") = sd.temperature, py::arg("top_p") = sd.top_p, py::arg("max_kept") = sd.max_kept,
      py::arg("batch_lanes") = sd.batch_lanes, py::arg("reuse_prefix") = sd.reuse_prefix,
      py::arg("progress") = py::none(),
      "Raw attention-suppression matrix Tensor[S, S] (float64): S[j, i] = mean over sentence j's positions of "
      "log(KL(base || sentence i suppressed) + 1e-9). sentence_spans: token [begin, end) pairs.");
  m.def("centre_suppression_matrix", &model::centre_suppression_matrix, py::arg("raw"),
        "The reported suppression matrix: NaN where j <= i, each row centred by its mean.");

  const model::ReceiverHeadsOptions rd;
  m.def(
      "receiver_heads",
      [](const model::CausalLM& lm, const std::vector<std::pair<TokenIds, SpanPairs>>& traces,
         std::size_t top_k, std::size_t proximity_ignore, bool exclude_layer0,
         const std::vector<std::pair<std::int64_t, std::int64_t>>& heads, std::optional<py::function> progress) {
        std::vector<model::TokenTrace> inputs;
        for (const auto& [ids, spans] : traces) inputs.push_back(token_trace(ids.ids, spans));
        model::ReceiverHeadsOptions o;
        o.top_k = top_k;
        o.proximity_ignore = proximity_ignore;
        o.exclude_layer0 = exclude_layer0;
        for (const auto& [layer, head] : heads) o.heads.push_back({layer, head});
        model::ReceiverHeadsResult r;
        {
          py::gil_scoped_release release;
          torch::NoGradGuard no_grad;
          r = model::receiver_heads(lm, inputs, o, control_from_python(progress));
        }
        py::dict out;
        out["kurtosis"] = model::to_tensor(r.kurtosis);
        py::list selected;
        for (const auto& h : r.heads) selected.append(py::make_tuple(h.layer, h.head, h.kurtosis));
        out["heads"] = selected;
        py::list scores, vertical;
        for (const auto& s : r.sentence_scores) scores.append(model::to_tensor(s));
        for (const auto& v : r.vertical) vertical.append(model::to_tensor(v));
        out["sentence_scores"] = scores;
        out["vertical"] = vertical;
        return out;
      },
      py::arg("model"), py::arg("traces"), py::kw_only(), py::arg("top_k") = rd.top_k,
      py::arg("proximity_ignore") = rd.proximity_ignore, py::arg("exclude_layer0") = rd.exclude_layer0,
      py::arg("heads") = std::vector<std::pair<std::int64_t, std::int64_t>>{}, py::arg("progress") = py::none(),
      "Receiver heads over one or many traces [(token_ids, sentence_spans), ...]: dict with 'kurtosis' "
      "Tensor[L, H] (mean over traces), 'heads' [(layer, head, kurtosis)], 'sentence_scores' [Tensor[S]] and "
      "'vertical' [Tensor[L*H, S]] per trace.");

  const model::AttentionRhythmOptions ad;
  m.def(
      "attention_rhythm",
      [](const model::CausalLM& lm, const TokenIds& token_ids, std::int64_t response_begin,
         std::int64_t waad_window, std::int64_t fai_near, std::int64_t fai_far, double local_fraction,
         double global_fraction, std::optional<std::vector<std::int64_t>> layers, double top_fraction, double gamma,
         std::string credit, std::int64_t coupled_k, double coupled_alpha, double tau_waad, double tau_delta,
         std::optional<py::function> progress) {
        model::AttentionRhythmOptions o =
            credit_options(top_fraction, gamma, std::move(credit), coupled_k, coupled_alpha, tau_waad, tau_delta);
        o.response_begin = response_begin;
        o.waad_window = waad_window;
        o.fai_near = fai_near;
        o.fai_far = fai_far;
        o.local_fraction = local_fraction;
        o.global_fraction = global_fraction;
        o.layers = layers;
        model::AttentionRhythm r;
        {
          py::gil_scoped_release release;
          torch::NoGradGuard no_grad;
          r = model::attention_rhythm(lm, token_ids.ids, o, control_from_python(progress));
        }
        py::dict out;
        out["layers"] = r.layers;
        out["head_span"] = r.head_span;
        out["local_heads"] = heads_to_python(r.local_heads);
        out["global_heads"] = heads_to_python(r.global_heads);
        out["waad"] = r.waad;
        out["fai"] = r.fai;
        out["waad_delta"] = r.waad_delta;
        out["preplan"] = r.preplan;
        out["anchor"] = r.anchor;
        out["dominated"] = r.dominated;
        out["intro"] = r.intro;
        out["gamma"] = r.gamma;
        return out;
      },
      py::arg("model"), py::arg("token_ids"), py::kw_only(), py::arg("response_begin") = ad.response_begin,
      py::arg("waad_window") = ad.waad_window, py::arg("fai_near") = ad.fai_near, py::arg("fai_far") = ad.fai_far,
      py::arg("local_fraction") = ad.local_fraction, py::arg("global_fraction") = ad.global_fraction,
      py::arg("layers") = py::none(), py::arg("top_fraction") = ad.top_fraction, py::arg("gamma") = ad.gamma,
      py::arg("credit") = ad.credit, py::arg("coupled_k") = ad.coupled_k, py::arg("coupled_alpha") = ad.coupled_alpha,
      py::arg("tau_waad") = ad.tau_waad, py::arg("tau_delta") = ad.tau_delta, py::arg("progress") = py::none(),
      "Preplan-and-anchor rhythm of one forward pass: dict with per-token 'waad', 'fai', 'waad_delta', "
      "'preplan', 'anchor', 'dominated', 'intro', 'gamma' (Tensor[T]), per-head 'head_span', and the local / "
      "global head lists. credit: union | preplan | anchor | coupled (docs/attention-rhythm.md).");

  m.def(
      "rhythm_credit",
      [](const torch::Tensor& waad, const torch::Tensor& fai, std::int64_t response_begin, double top_fraction,
         double gamma, std::string credit, std::int64_t coupled_k, double coupled_alpha, double tau_waad,
         double tau_delta) {
        const model::RhythmCredit c = model::rhythm_credit(
            waad, fai, response_begin,
            credit_options(top_fraction, gamma, std::move(credit), coupled_k, coupled_alpha, tau_waad, tau_delta));
        py::dict out;
        out["waad_delta"] = c.waad_delta;
        out["preplan"] = c.preplan;
        out["anchor"] = c.anchor;
        out["dominated"] = c.dominated;
        out["intro"] = c.intro;
        out["gamma"] = c.gamma;
        return out;
      },
      py::arg("waad"), py::arg("fai"), py::kw_only(), py::arg("response_begin") = 0,
      py::arg("top_fraction") = ad.top_fraction, py::arg("gamma") = ad.gamma, py::arg("credit") = ad.credit,
      py::arg("coupled_k") = ad.coupled_k, py::arg("coupled_alpha") = ad.coupled_alpha,
      py::arg("tau_waad") = ad.tau_waad, py::arg("tau_delta") = ad.tau_delta,
      "The token sets and credit weights of a strategy from per-token WAAD and FAI curves (Tensor[T]; FAI NaN "
      "where undefined): what attention_rhythm computes after its forward pass.");

  py::class_<model::HeadInfluenceResult>(m, "HeadInfluenceResult",
                                          "What ta.head_influence measured (docs/attention-control.md).")
      .def_readonly("influence", &model::HeadInfluenceResult::influence,
                    "Tensor[L, H] float64: mean over texts of the loss increase (nats per token) with the head "
                    "ablated; NaN for layers not measured.")
      .def_readonly("plain_loss", &model::HeadInfluenceResult::plain_loss,
                    "Per text, Tensor[T] float64: each token's plain loss (NaN where not scored).")
      .def_readonly("token_delta", &model::HeadInfluenceResult::token_delta,
                    "Per text, Tensor[L, H, T] float32: each token's loss increase with the head ablated.")
      .def("__repr__", [](const model::HeadInfluenceResult& r) {
        return "HeadInfluenceResult(" + std::to_string(r.influence.size(0)) + " layers x " +
               std::to_string(r.influence.size(1)) + " heads, " + std::to_string(r.plain_loss.size()) + " texts)";
      });
  m.def(
      "head_influence",
      [](const model::CausalLM& lm, const std::vector<TokenIds>& texts,
         const std::optional<std::vector<std::pair<std::int64_t, std::int64_t>>>& scored,
         const std::vector<std::int64_t>& layers, std::int64_t batch_lanes, std::optional<py::function> progress) {
        if (scored && scored->size() != texts.size())
          throw Error("head_influence: scored has " + std::to_string(scored->size()) + " spans for " +
                      std::to_string(texts.size()) + " texts");
        std::vector<model::HeadInfluenceText> inputs;
        for (std::size_t i = 0; i < texts.size(); ++i) {
          model::HeadInfluenceText text;
          text.ids = texts[i].ids;
          if (scored) text.scored = {(*scored)[i].first, (*scored)[i].second};
          inputs.push_back(std::move(text));
        }
        model::HeadInfluenceOptions options;
        options.layers = layers;
        options.batch_lanes = batch_lanes;
        const RunControl control = control_from_python(progress);
        py::gil_scoped_release release;
        torch::NoGradGuard no_grad;
        return model::head_influence(lm, inputs, options, control);
      },
      py::arg("model"), py::arg("texts"), py::kw_only(), py::arg("scored") = py::none(),
      py::arg("layers") = std::vector<std::int64_t>{}, py::arg("batch_lanes") = model::HeadInfluenceOptions{}.batch_lanes,
      py::arg("progress") = py::none(),
      "Per attention head, the mean next-token loss increase over `texts` (lists of token ids, 1-D tensors or "
      "arrays) when the head's output is zeroed (AttentionInfluence). scored: one (begin, end) token span per "
      "text whose predictions count (default: all but the first token). layers: the layers measured (default "
      "all). batch_lanes heads per forward pass. Returns a ta.HeadInfluenceResult.");

  m.def(
      "token_weights",
      [](const model::CausalLM& lm, const torch::Tensor& prompt_ids, const torch::Tensor& response_ids,
         std::optional<torch::Tensor> prompt_mask, std::optional<torch::Tensor> response_mask, const ValueMap& options,
         std::optional<py::function> progress) {
        const model::AttentionRhythmOptions o = AttentionRhythmMethod::rhythm_options(options);
        py::gil_scoped_release release;
        torch::NoGradGuard no_grad;
        return model::token_weights(lm, prompt_ids, prompt_mask.value_or(torch::Tensor()), response_ids,
                                    response_mask.value_or(torch::Tensor()), o, control_from_python(progress));
      },
      py::arg("model"), py::arg("prompt_ids"), py::arg("response_ids"), py::kw_only(),
      py::arg("prompt_mask") = py::none(), py::arg("response_mask") = py::none(), py::arg("options") = ValueMap{},
      py::arg("progress") = py::none(),
      "Credit weights Tensor[B, R] for a padded batch (see thought_anchors.token_weights).");

  m.def("vertical_scores", &vertical_scores, py::arg("block_means"), py::arg("proximity_ignore") = 4);
  m.def("fisher_kurtosis", &fisher_kurtosis, py::arg("values"));

  m.def(
      "run_method",
      [](const std::string& name, const Trace& trace, std::shared_ptr<model::CausalLM> lm,
         std::optional<TokenIds> token_ids, std::optional<SpanPairs> sentence_spans,
         std::shared_ptr<rollout::RolloutProvider> provider, std::shared_ptr<model::Tokenizer> tokenizer,
         const std::string& output_dir, std::shared_ptr<ProblemRollouts> rollouts, const py::object& similarity,
         std::shared_ptr<Outcome> outcome, const ValueMap& options, std::optional<py::function> progress) {
        auto method = make_method(name);
        Context context;
        context.model = std::move(lm);
        context.options = options;
        if (token_ids || sentence_spans) {
          if (!token_ids || !sentence_spans) throw Error(name + ": give both token_ids and sentence_spans, or neither");
          context.token_trace = std::make_shared<model::TokenTrace>(token_trace(token_ids->ids, *sentence_spans));
        }
        context.provider = std::move(provider);
        context.tokenizer = std::move(tokenizer);
        context.output_dir = output_dir;
        context.rollouts = std::move(rollouts);
        if (!similarity.is_none()) context.similarity = similarity_from_python(similarity);
        context.outcome = std::move(outcome);
        context.control = control_from_python(progress);
        // Every Python piece the method calls (provider, outcome, similarity,
        // progress) takes the GIL itself.
        py::gil_scoped_release release;
        torch::NoGradGuard no_grad;
        return method->run(trace, context);
      },
      py::arg("name"), py::arg("trace"), py::kw_only(), py::arg("model") = nullptr, py::arg("token_ids") = py::none(),
      py::arg("sentence_spans") = py::none(), py::arg("provider") = nullptr, py::arg("tokenizer") = nullptr,
      py::arg("output_dir") = "", py::arg("rollouts") = nullptr, py::arg("similarity") = py::none(),
      py::arg("outcome") = nullptr, py::arg("options") = ValueMap{}, py::arg("progress") = py::none(),
      "Run a registered method on a trace; returns its Attribution. White-box methods need model= (and "
      "optionally token_ids= / sentence_spans=); \"resampling\" needs similarity= and either rollouts= (a "
      "ta.ProblemRollouts to score) or provider= (a ta.RolloutProvider), tokenizer= (default: the model's) and "
      "output_dir= (the resumable rollout store) to generate them first; outcome= a ta.Outcome.");
}

}  // namespace anchors::python
