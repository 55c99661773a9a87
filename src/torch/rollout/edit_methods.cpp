#include "edit_methods.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/distribution.h"
#include "anchors/core/error.h"
#include "anchors/model/causal_lm.h"
#include "anchors/rollout/off_policy.h"
#include "json_fields.h"

namespace anchors::rollout::detail {

ValueMap edit_rollout_options() {
  return {{"num_rollouts", std::int64_t{30}},
          {"kl_alpha", kDefaultKlAlpha},
          {"target", std::string()},
          {"seed", std::int64_t{0}},
          {"temperature", 0.6},
          {"top_p", 0.95},
          {"min_p", 0.0},
          {"repetition_penalty", 1.0},
          {"max_tokens", std::int64_t{16384}},
          {"max_positions", std::int64_t{0}},
          {"batch", std::int64_t{25}}};
}

std::map<std::string, std::string> edit_rollout_option_docs() {
  return {{"num_rollouts", "rollouts per edit, and kept rollouts per target sentence"},
          {"kl_alpha", "additive smoothing of the KL shifts"},
          {"target", "the outcome label rates count (\"\": the trace's metadata gt_answer)"},
          {"seed", "rollout seeds derive from (seed, edit): re-runs resume exactly"},
          {"temperature", "sampling temperature"},
          {"top_p", "nucleus sampling mass, in (0, 1]"},
          {"min_p", "min-p sampling (0 = off)"},
          {"repetition_penalty", "repetition penalty (1 = off)"},
          {"max_tokens", "new tokens per rollout (capped by max_positions)"},
          {"max_positions", "the model's context length, prompt + completion (0 = no cap)"},
          {"batch", "samples per request"}};
}

std::vector<std::size_t> target_sentences(const IntList& given, std::size_t S, const std::string& who) {
  std::vector<std::size_t> targets;
  std::set<std::int64_t> seen;
  for (std::int64_t i : given) {
    if (i < 0 || static_cast<std::size_t>(i) >= S)
      throw Error(fmt::format("{}: sentence {} is not in the trace (0..{})", who, i, S - 1));
    if (!seen.insert(i).second) throw Error(fmt::format("{}: sentence {} is given twice", who, i));
    targets.push_back(static_cast<std::size_t>(i));
  }
  if (given.empty())
    for (std::size_t i = 0; i < S; ++i) targets.push_back(i);
  return targets;
}

std::vector<std::pair<std::string, std::string>> named_fixed_texts(const std::string& names, bool disruptions_only,
                                                                   const std::string& who, const std::string& what) {
  std::vector<std::pair<std::string, std::string>> known;
  for (const auto& f : fixed_insertions())
    if (!disruptions_only || (f.first != "wait" && f.first != "think")) known.push_back(f);
  std::vector<std::pair<std::string, std::string>> out;
  std::string rest = names;
  for (std::size_t comma; !rest.empty(); rest = comma == std::string::npos ? "" : rest.substr(comma + 1)) {
    comma = rest.find(',');
    const std::string name = rest.substr(0, comma);
    if (name.empty()) continue;
    const auto it = std::find_if(known.begin(), known.end(), [&](const auto& f) { return f.first == name; });
    if (it == known.end()) {
      std::string list;
      for (const auto& f : known) list += (list.empty() ? "" : ", ") + f.first;
      throw Error(fmt::format("{}: unknown {} \"{}\" (known: {})", who, what, name, list));
    }
    out.push_back(*it);
  }
  return out;
}

std::vector<std::string> text_list(const std::string& who, const std::string& option, const std::string& value) {
  if (value.empty()) return {};
  const nlohmann::json doc = json_fields::parse(value, fmt::format("{}: option {}", who, option));
  if (!doc.is_array()) throw Error(fmt::format("{}: option {} must be a JSON list of strings", who, option));
  std::vector<std::string> out;
  for (const auto& item : doc) {
    if (!item.is_string() || item.get<std::string>().empty())
      throw Error(fmt::format("{}: option {} must be a JSON list of non-empty strings, got {}", who, option,
                              item.dump()));
    out.push_back(item.get<std::string>());
  }
  return out;
}

InterventionOptions intervention_options(const ValueMap& o, const Context& context, const std::string& who) {
  InterventionOptions io;
  io.num_rollouts = std::get<std::int64_t>(o.at("num_rollouts"));
  io.baseline = false;
  const auto seed = std::get<std::int64_t>(o.at("seed"));
  if (seed < 0) throw Error(fmt::format("{}: seed must be >= 0, got {}", who, seed));
  io.seed = static_cast<std::uint64_t>(seed);
  io.temperature = std::get<double>(o.at("temperature"));
  io.top_p = std::get<double>(o.at("top_p"));
  io.min_p = std::get<double>(o.at("min_p"));
  io.repetition_penalty = std::get<double>(o.at("repetition_penalty"));
  io.max_tokens = std::get<std::int64_t>(o.at("max_tokens"));
  io.max_positions = std::get<std::int64_t>(o.at("max_positions"));
  io.batch = std::get<std::int64_t>(o.at("batch"));
  io.outcome = context.outcome;  // the caller's method_outcome() replaces it
  io.control = context.control;
  const double alpha = std::get<double>(o.at("kl_alpha"));
  if (!(alpha >= 0) || !std::isfinite(alpha)) throw Error(fmt::format("{}: kl_alpha must be a finite number >= 0", who));
  return io;
}

std::string method_target(const ValueMap& o, const Trace& trace) {
  std::string target = std::get<std::string>(o.at("target"));
  if (target.empty())
    if (const auto gt = trace.metadata.find("gt_answer"); gt != trace.metadata.end()) target = gt->second;
  return target;
}

std::shared_ptr<const model::Tokenizer> context_tokenizer(const Context& context, const std::string& who) {
  std::shared_ptr<const model::Tokenizer> tokenizer = context.tokenizer;
  if (!tokenizer && context.model) tokenizer = context.model->tokenizer();
  if (!tokenizer) throw Error(fmt::format("{}: the context has no tokenizer (the token-id prompts need one)", who));
  return tokenizer;
}

double text_logprob(RolloutProvider& provider, const model::Tokenizer& tokenizer, const std::string& prompt,
                    const std::string& prefix, std::size_t begin, std::size_t end) {
  const model::Tokenizer::Encoding enc = tokenizer.encode(prompt + prefix, true);
  CompletionRequest request;
  request.prompt_ids = enc.ids;
  const std::vector<double> values = provider.prompt_logprobs(request);
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  for (const auto& span : enc.offsets) spans.emplace_back(span.begin, span.end);
  return span_logprob(values, spans, prompt.size() + begin, prompt.size() + end).mean;
}

void run_edits(const std::map<std::size_t, std::vector<NamedEdit>>& edits, const Trace& trace, const Context& context,
               const model::Tokenizer& tokenizer, const std::string& prompt, const std::string& target,
               const InterventionOptions& options, double kl_alpha, bool logprobs, Attribution& a) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  const std::size_t S = trace.sentences.size();
  const auto series = [&](const std::string& name) -> std::vector<double>& {
    auto& v = a.scores[name];
    if (v.empty()) v.assign(S, kNaN);
    return v;
  };
  const auto text_start = [&](const Intervention& in) {
    return in.kind == InterventionKind::kSubstitute
               ? intervened_prefix(trace, {InterventionKind::kResample, in.sentence, ""}).size()
               : intervened_prefix(trace, {InterventionKind::kTruncate, in.sentence, ""}).size();
  };
  if (logprobs) {
    for (const auto& [i, list] : edits) {
      const std::size_t start = intervened_prefix(trace, {InterventionKind::kResample, i, ""}).size();
      const Sentence& s = trace.sentences[i];
      series("original_logprob")[i] = text_logprob(*context.provider, tokenizer, prompt,
                                                   trace.text.substr(0, s.chars.end), start, start + s.text.size());
      for (const NamedEdit& e : list) {
        const std::size_t begin = text_start(e.intervention);
        series(e.name + "_logprob")[i] = text_logprob(*context.provider, tokenizer, prompt,
                                                      intervened_prefix(trace, e.intervention), begin,
                                                      begin + e.intervention.text.size());
      }
    }
  }
  // Every edit and every kept resample(i + 1) once (target i + 1 may ask for the same folder).
  std::vector<Intervention> all;
  std::set<std::string> ids;
  const auto add = [&](const Intervention& in) {
    if (ids.insert(intervention_id(in)).second) all.push_back(in);
  };
  for (const auto& [i, list] : edits) {
    for (const NamedEdit& e : list) add(e.intervention);
    if (i + 1 < S) add({InterventionKind::kResample, i + 1, ""});
  }
  if (all.empty()) return;
  const InterventionResult done =
      intervene(*context.provider, tokenizer, trace, prompt, target, all, context.output_dir, options);
  std::map<std::string, const EditOutcome*> by_id;
  for (const EditOutcome& e : done.edits) by_id[e.id] = &e;
  a.metadata["outcome"] = done.outcome;

  const bool has_target = !target.empty();
  for (const auto& [i, list] : edits) {
    const EditOutcome* kept = i + 1 < S ? by_id.at(intervention_id({InterventionKind::kResample, i + 1, ""})) : nullptr;
    if (has_target) series("kept_rate")[i] = kept ? kept->rate : kNaN;
    double shift_sum = 0, kl_sum = 0;
    std::size_t shifts = 0, kls = 0;
    for (const NamedEdit& e : list) {
      const EditOutcome& got = *by_id.at(intervention_id(e.intervention));
      const AnswerDistribution p = label_distribution(got);
      const AnswerDistribution q = kept ? label_distribution(*kept) : AnswerDistribution{};
      const double kl = p.total() > 0 && q.total() > 0 ? kl_divergence(p, q, kl_alpha) : kNaN;
      series(e.name + "_kl")[i] = kl;
      if (std::isfinite(kl)) kl_sum += kl, ++kls;
      if (has_target) {
        const double shift = kept ? got.rate - kept->rate : kNaN;
        series(e.name + "_rate_shift")[i] = shift;
        if (std::isfinite(shift)) shift_sum += shift, ++shifts;
      }
    }
    series("mean_kl")[i] = kls > 0 ? kl_sum / static_cast<double>(kls) : kNaN;
    if (has_target) series("mean_rate_shift")[i] = shifts > 0 ? shift_sum / static_cast<double>(shifts) : kNaN;
  }
}

}  // namespace anchors::rollout::detail
