// The white-box methods as registry entries: option parsing, the token input,
// and the conversion of each model-level computation (receiver_heads.h,
// attention_suppression.h, attention_rhythm.h, sentence_attention.h) into an
// Attribution. The computations themselves live in src/torch/model/.
#include "anchors/methods/white_box.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "anchors/core/error.h"
#include "anchors/core/receiver_statistics.h"
#include "anchors/methods/registry.h"
#include "anchors/model/attention_rhythm.h"
#include "anchors/model/attention_suppression.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/head_influence.h"
#include "anchors/model/receiver_heads.h"
#include "anchors/model/sentence_attention.h"
#include "anchors/model/tensor_convert.h"
#include "anchors/model/tokenizer.h"

namespace anchors {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::int64_t int_option(const ValueMap& o, const char* name) { return std::get<std::int64_t>(o.at(name)); }
double double_option(const ValueMap& o, const char* name) { return std::get<double>(o.at(name)); }
bool bool_option(const ValueMap& o, const char* name) { return std::get<bool>(o.at(name)); }

const IntList& list_option(const ValueMap& o, const char* name) { return std::get<IntList>(o.at(name)); }

// [] -> nullopt (the method's default layers).
std::optional<std::vector<std::int64_t>> layers_option(const ValueMap& o) {
  const IntList& layers = list_option(o, "layers");
  if (layers.empty()) return std::nullopt;
  return layers;
}

std::vector<model::HeadIndex> heads_option(const ValueMap& o, const char* method) {
  return model::heads_from_flat(list_option(o, "heads"), method);
}

std::string format_layers(const std::vector<std::int64_t>& layers) {
  std::string out;
  for (const auto l : layers) out += fmt::format("{}{}", out.empty() ? "" : ",", l);
  return out;
}

// A float tensor [R, C] (or [C], as one row) as a Matrix (NaN kept).
Matrix to_matrix(const torch::Tensor& t, const char* what) {
  return model::matrix_from_tensor(t.dim() == 1 ? t.unsqueeze(0) : t, what);
}

// Mean of per-token `values` [T] over each sentence's tokens (NaN skipped; NaN when none).
std::vector<double> sentence_means(const torch::Tensor& values, const std::vector<TokenSpan>& sentences) {
  const torch::Tensor v = values.to(torch::kCPU, torch::kFloat64).contiguous();
  const double* data = v.data_ptr<double>();
  std::vector<double> out;
  for (const TokenSpan& s : sentences) {
    double sum = 0;
    std::size_t n = 0;
    for (std::int64_t t = s.begin; t < s.end; ++t)
      if (!std::isnan(data[t])) {
        sum += data[t];
        ++n;
      }
    out.push_back(n == 0 ? kNaN : sum / static_cast<double>(n));
  }
  return out;
}

Attribution start_attribution(const AttributionMethod& method, const ValueMap& options, const model::TokenTrace& input) {
  Attribution a;
  a.method = method.name();
  a.options = options;
  a.metadata["num_tokens"] = static_cast<std::int64_t>(input.ids.size());
  return a;
}

const model::CausalLM& model_of(const Context& context) { return *context.model; }

}  // namespace

model::TokenTrace white_box_input(const Trace& trace, const Context& context, const char* method) {
  if (!context.model) throw Error(fmt::format("{}: the context has no model (white-box methods need one)", method));
  model::TokenTrace input;
  if (context.token_trace) {
    input = *context.token_trace;
    if (input.sentences.size() != trace.sentences.size())
      throw Error(fmt::format("{}: the token trace has {} sentence spans but the trace has {} sentences", method,
                              input.sentences.size(), trace.sentences.size()));
  } else {
    const auto tokenizer = context.model->tokenizer();
    if (!tokenizer)
      throw Error(fmt::format("{}: the model at {} has no tokenizer.json; pass token ids and sentence spans instead",
                              method, context.model->dir()));
    input = model::tokenize_trace(*tokenizer, trace);
  }
  model::validate_token_trace(input, *context.model, method);
  return input;
}

// ---------------------------------------------------------------------------
// sentence_attention
// ---------------------------------------------------------------------------

std::string SentenceAttentionMethod::description() const {
  return "white-box: per layer and head S×S block means of attention between sentences (one forward pass, "
         "no T×T matrix), averaged over the layers and heads";
}

std::map<std::string, std::string> SentenceAttentionMethod::option_docs() const {
  return {{"layers", "layers averaged: [] = every layer, else a list like [0, 3, 5]"},
          {"proximity_ignore", "attention_received of sentence j averages the rows i >= j + proximity_ignore"}};
}

ValueMap SentenceAttentionMethod::default_options() const {
  return {{"layers", IntList{}}, {"proximity_ignore", std::int64_t{4}}};
}

Attribution SentenceAttentionMethod::run(const Trace& trace, const Context& context) const {
  const char* what = "sentence_attention";
  const ValueMap o = resolve_options(*this, context.options);
  const model::TokenTrace input = white_box_input(trace, context, what);
  const auto proximity = static_cast<std::size_t>(non_negative_option(o, "proximity_ignore", what));
  const torch::Tensor means =
      model::sentence_attention(model_of(context), input.ids, input.sentences,
                                layers_option(o), {}, context.control);
  Attribution a = start_attribution(*this, o, input);
  const Matrix mean = to_matrix(means.mean({0, 1}), "sentence_attention");
  a.matrices["sentence_attention"] = mean;
  a.scores["attention_received"] = vertical_scores(mean, proximity);
  a.metadata["num_layers"] = means.size(0);
  a.metadata["num_heads"] = means.size(1);
  return a;
}

// ---------------------------------------------------------------------------
// receiver_heads
// ---------------------------------------------------------------------------

std::string ReceiverHeadsMethod::description() const {
  return "white-box: receiver heads (top-k heads by kurtosis of their vertical attention scores) and each "
         "sentence's mean vertical score over them";
}

std::map<std::string, std::string> ReceiverHeadsMethod::option_docs() const {
  return {{"top_k", "receiver heads selected by the kurtosis of their vertical scores (>= 1)"},
          {"proximity_ignore", "vertical scores ignore the proximity_ignore sentences nearest the diagonal"},
          {"exclude_layer0", "layer 0 is never selected by kurtosis"},
          {"heads", "use these receiver heads instead of the top-k: (layer, head) pairs written flat, like [2, 3, 5, 0] "
                    "([] = select by kurtosis)"}};
}

ValueMap ReceiverHeadsMethod::default_options() const {
  const model::ReceiverHeadsOptions d;
  return {{"top_k", static_cast<std::int64_t>(d.top_k)},
          {"proximity_ignore", static_cast<std::int64_t>(d.proximity_ignore)},
          {"exclude_layer0", d.exclude_layer0},
          {"heads", IntList{}}};
}

Attribution ReceiverHeadsMethod::run(const Trace& trace, const Context& context) const {
  const char* what = "receiver_heads";
  const ValueMap o = resolve_options(*this, context.options);
  const model::TokenTrace input = white_box_input(trace, context, what);
  model::ReceiverHeadsOptions options;
  options.top_k = static_cast<std::size_t>(non_negative_option(o, "top_k", what));
  options.proximity_ignore = static_cast<std::size_t>(non_negative_option(o, "proximity_ignore", what));
  options.exclude_layer0 = bool_option(o, "exclude_layer0");
  options.heads = heads_option(o, what);
  const model::ReceiverHeadsResult r = model::receiver_heads(model_of(context), {input}, options, context.control);

  Attribution a = start_attribution(*this, o, input);
  a.scores["receiver_score"] = r.sentence_scores.at(0);
  a.matrices["head_kurtosis"] = r.kurtosis;
  const Matrix& vertical = r.vertical.at(0);
  const std::size_t heads_per_layer = r.kurtosis.cols;
  Matrix receiver_vertical(r.heads.size(), vertical.cols);
  std::vector<model::HeadIndex> used;
  for (std::size_t k = 0; k < r.heads.size(); ++k) {
    const std::size_t row = static_cast<std::size_t>(r.heads[k].layer) * heads_per_layer +
                            static_cast<std::size_t>(r.heads[k].head);
    for (std::size_t j = 0; j < vertical.cols; ++j) receiver_vertical(k, j) = vertical(row, j);
    used.push_back({r.heads[k].layer, r.heads[k].head});
  }
  a.matrices["receiver_vertical"] = receiver_vertical;
  a.metadata["receiver_heads"] = model::format_heads(used);
  return a;
}

// ---------------------------------------------------------------------------
// attention_suppression
// ---------------------------------------------------------------------------

std::string AttentionSuppressionMethod::description() const {
  return "white-box: S×S matrix of log KL between the next-token distributions with and without each sentence's "
         "keys suppressed in every layer and head (batched lanes, base prefix reused)";
}

std::map<std::string, std::string> AttentionSuppressionMethod::option_docs() const {
  return {{"temperature", "softmax temperature of both next-token distributions (> 0)"},
          {"top_p", "each side keeps its smallest token set reaching top_p, in (0, 1]"},
          {"max_kept", "... of at most max_kept tokens (>= 1)"},
          {"batch_lanes", "suppressed sentences run together as batch lanes (>= 1; memory vs speed)"},
          {"reuse_prefix", "run only the suffix from each group's earliest sentence on the base KV cache (exact)"}};
}

ValueMap AttentionSuppressionMethod::default_options() const {
  const model::SuppressionOptions d;
  return {{"temperature", d.temperature},
          {"top_p", d.top_p},
          {"max_kept", d.max_kept},
          {"batch_lanes", d.batch_lanes},
          {"reuse_prefix", d.reuse_prefix}};
}

Attribution AttentionSuppressionMethod::run(const Trace& trace, const Context& context) const {
  const char* what = "attention_suppression";
  const ValueMap o = resolve_options(*this, context.options);
  const model::TokenTrace input = white_box_input(trace, context, what);
  model::SuppressionOptions options;
  options.temperature = double_option(o, "temperature");
  options.top_p = double_option(o, "top_p");
  options.max_kept = int_option(o, "max_kept");
  options.batch_lanes = int_option(o, "batch_lanes");
  options.reuse_prefix = bool_option(o, "reuse_prefix");
  options.control = context.control;
  const torch::Tensor raw = model::suppression_matrix(model_of(context), input, options);
  const torch::Tensor centred = model::centre_suppression_matrix(raw);

  Attribution a = start_attribution(*this, o, input);
  a.matrices["suppression_raw"] = to_matrix(raw, "suppression_raw");
  a.matrices["suppression"] = to_matrix(centred, "suppression");
  const std::size_t S = input.sentences.size();
  // Column i below the diagonal: sentence i's effect on every later sentence.
  const auto column_means = [S](const Matrix& m) {
    std::vector<double> out(S, kNaN);
    for (std::size_t i = 0; i < S; ++i) {
      double sum = 0;
      std::size_t n = 0;
      for (std::size_t j = i + 1; j < S; ++j)
        if (!std::isnan(m(j, i))) {
          sum += m(j, i);
          ++n;
        }
      if (n > 0) out[i] = sum / static_cast<double>(n);
    }
    return out;
  };
  a.scores["suppression_effect"] = column_means(a.matrices["suppression_raw"]);
  a.scores["suppression_effect_centred"] = column_means(a.matrices["suppression"]);
  return a;
}

// ---------------------------------------------------------------------------
// attention_rhythm
// ---------------------------------------------------------------------------

std::string AttentionRhythmMethod::description() const {
  return "white-box: preplan-and-anchor rhythm — WAAD of local heads and FAI of global heads per token, preplan "
         "and anchor tokens and their γ credit weights, averaged per sentence";
}

std::map<std::string, std::string> AttentionRhythmMethod::option_docs() const {
  return {{"waad_window", "WAAD window W in tokens (>= 1)"},
          {"fai_near", "FAI averages attention received from tokens s + fai_near ... s + fai_far"},
          {"fai_far", "see fai_near (fai_near <= fai_far)"},
          {"local_fraction", "bottom fraction of heads by attention span that make WAAD, in (0, 1]"},
          {"global_fraction", "top fraction of heads by attention span that make FAI, in (0, 1]"},
          {"layers", "layers analysed: [] = the middle third, else a list like [8, 9, 10]"},
          {"top_fraction", "fraction of response tokens marked preplan / anchor, in (0, 1]"},
          {"gamma", "credit weight of preplan / anchor tokens (finite)"},
          {"credit", "which tokens get gamma: union (preplan or anchor), preplan, anchor or coupled (the paper's "
                     "three strategies; docs/attention-rhythm.md)"},
          {"coupled_k", "coupled: how many tokens before an anchor are searched for its intro token (>= 1)"},
          {"coupled_alpha", "coupled: fraction of a dominated anchor's bonus moved to its intro token, in [0, 1]"},
          {"tau_waad", "coupled: an anchor is dominated only if its WAAD <= tau_waad (negative: the response's median)"},
          {"tau_delta", "coupled: ... and a WAAD change >= tau_delta precedes it (negative: the response's median)"}};
}

ValueMap AttentionRhythmMethod::default_options() const {
  const model::AttentionRhythmOptions d;
  return {{"waad_window", d.waad_window},         {"fai_near", d.fai_near},
          {"fai_far", d.fai_far},                 {"local_fraction", d.local_fraction},
          {"global_fraction", d.global_fraction}, {"layers", IntList{}},
          {"top_fraction", d.top_fraction},       {"gamma", d.gamma},
          {"credit", d.credit},                   {"coupled_k", d.coupled_k},
          {"coupled_alpha", d.coupled_alpha},     {"tau_waad", d.tau_waad},
          {"tau_delta", d.tau_delta}};
}

model::AttentionRhythmOptions AttentionRhythmMethod::rhythm_options(const ValueMap& given) {
  const ValueMap o = resolve_options(AttentionRhythmMethod(), given);
  model::AttentionRhythmOptions options;
  options.waad_window = int_option(o, "waad_window");
  options.fai_near = int_option(o, "fai_near");
  options.fai_far = int_option(o, "fai_far");
  options.local_fraction = double_option(o, "local_fraction");
  options.global_fraction = double_option(o, "global_fraction");
  options.layers = layers_option(o);
  options.top_fraction = double_option(o, "top_fraction");
  options.gamma = double_option(o, "gamma");
  options.credit = std::get<std::string>(o.at("credit"));
  options.coupled_k = int_option(o, "coupled_k");
  options.coupled_alpha = double_option(o, "coupled_alpha");
  options.tau_waad = double_option(o, "tau_waad");
  options.tau_delta = double_option(o, "tau_delta");
  return options;
}

Attribution AttentionRhythmMethod::run(const Trace& trace, const Context& context) const {
  const char* what = "attention_rhythm";
  const ValueMap o = resolve_options(*this, context.options);
  const model::TokenTrace input = white_box_input(trace, context, what);
  model::AttentionRhythmOptions options = rhythm_options(o);
  // The response (what the token sets and deltas range over) starts at the first sentence.
  options.response_begin = input.sentences.front().begin;
  const model::AttentionRhythm r = model::attention_rhythm(model_of(context), input.ids, options, context.control);

  Attribution a = start_attribution(*this, o, input);
  a.scores["waad"] = sentence_means(r.waad, input.sentences);
  a.scores["fai"] = sentence_means(r.fai, input.sentences);
  a.scores["gamma"] = sentence_means(r.gamma, input.sentences);
  a.scores["preplan_fraction"] = sentence_means(r.preplan.to(torch::kFloat64), input.sentences);
  a.scores["anchor_fraction"] = sentence_means(r.anchor.to(torch::kFloat64), input.sentences);
  a.matrices["head_span"] = to_matrix(r.head_span, "head_span");
  a.matrices["token_waad"] = to_matrix(r.waad, "token_waad");
  a.matrices["token_fai"] = to_matrix(r.fai, "token_fai");
  a.matrices["token_gamma"] = to_matrix(r.gamma, "token_gamma");
  a.metadata["layers"] = format_layers(r.layers);
  a.metadata["local_heads"] = model::format_heads(r.local_heads);
  a.metadata["global_heads"] = model::format_heads(r.global_heads);
  a.metadata["response_begin"] = options.response_begin;
  a.metadata["credit"] = options.credit;
  return a;
}

// ---------------------------------------------------------------------------
// head_influence
// ---------------------------------------------------------------------------

std::string HeadInfluenceMethod::description() const {
  return "white-box: per attention head, how much the next-token loss over the trace rises when the head's output is "
         "zeroed (AttentionInfluence), overall and per sentence";
}

ValueMap HeadInfluenceMethod::default_options() const {
  const model::HeadInfluenceOptions d;
  return {{"layers", IntList{}}, {"batch_lanes", d.batch_lanes}};
}

std::map<std::string, std::string> HeadInfluenceMethod::option_docs() const {
  return {{"layers", "the layers whose heads are measured ([] = every layer)"},
          {"batch_lanes", "heads ablated per forward pass, one batch lane each (memory grows with it)"}};
}

Attribution HeadInfluenceMethod::run(const Trace& trace, const Context& context) const {
  const char* what = "head_influence";
  const ValueMap o = resolve_options(*this, context.options);
  const model::TokenTrace input = white_box_input(trace, context, what);
  const model::CausalLM& lm = model_of(context);
  model::HeadInfluenceOptions options;
  options.layers = list_option(o, "layers");
  options.batch_lanes = int_option(o, "batch_lanes");
  const TokenSpan scored{input.sentences.front().begin, input.sentences.back().end};
  const model::HeadInfluenceResult r =
      model::head_influence(lm, {{input.ids, scored}}, options, context.control);

  Attribution a = start_attribution(*this, o, input);
  a.matrices["head_influence"] = to_matrix(r.influence, what);
  const std::int64_t L = r.influence.size(0), H = r.influence.size(1);
  const torch::Tensor delta = r.token_delta.front().reshape({L * H, -1});  // [(L*H), T]
  Matrix by_sentence(static_cast<std::size_t>(L * H), input.sentences.size());
  for (std::int64_t row = 0; row < L * H; ++row) {
    const std::vector<double> means = sentence_means(delta[row], input.sentences);
    for (std::size_t s = 0; s < means.size(); ++s) by_sentence(static_cast<std::size_t>(row), s) = means[s];
  }
  // Per sentence over the measured heads (the unmeasured layers' rows are NaN).
  std::vector<double> mean_influence(input.sentences.size(), kNaN), max_influence(input.sentences.size(), kNaN);
  for (std::size_t s = 0; s < input.sentences.size(); ++s) {
    double sum = 0, best = -std::numeric_limits<double>::infinity();
    std::size_t n = 0;
    for (std::size_t row = 0; row < by_sentence.rows; ++row) {
      const double v = by_sentence(row, s);
      if (std::isnan(v)) continue;
      sum += v;
      best = std::max(best, v);
      ++n;
    }
    if (n > 0) {
      mean_influence[s] = sum / static_cast<double>(n);
      max_influence[s] = best;
    }
  }
  a.scores["mean_head_influence"] = std::move(mean_influence);
  a.scores["max_head_influence"] = std::move(max_influence);
  a.matrices["head_influence_by_sentence"] = std::move(by_sentence);
  a.metadata["plain_loss"] = torch::nanmean(r.plain_loss.front()).item<double>();
  // The ten most influential heads (NaN rows, unmeasured layers, last).
  const torch::Tensor flat = torch::nan_to_num(r.influence.flatten(), -std::numeric_limits<double>::infinity());
  const torch::Tensor top = std::get<1>(flat.topk(std::min<std::int64_t>(10, L * H)));
  std::vector<model::HeadIndex> top_heads;
  for (std::int64_t k = 0; k < top.size(0); ++k) {
    const std::int64_t index = top[k].item<std::int64_t>();
    if (std::isfinite(flat[index].item<double>())) top_heads.push_back({index / H, index % H});
  }
  a.metadata["top_heads"] = model::format_heads(top_heads);
  return a;
}

}  // namespace anchors
