#include "anchors/rollout/attention_steering.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include "anchors/core/attention_control.h"
#include "anchors/core/distribution.h"
#include "anchors/core/error.h"
#include "anchors/methods/registry.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/analyze.h"
#include "anchors/rollout/intervention.h"
#include "anchors/rollout/local_provider.h"
#include "edit_methods.h"
#include "receiver_selection.h"
#include "rollout_batches.h"

namespace anchors::rollout {
namespace {

namespace fs = std::filesystem;
constexpr const char* kWho = "attention_steering";

}  // namespace

std::string AttentionSteeringMethod::description() const {
  return "attention steering: the outcome shift when the receiver heads attend more (+beta) to a sentence while the "
         "model continues from just after it";
}

ValueMap AttentionSteeringMethod::default_options() const {
  ValueMap o = {{"sentences", IntList{}}, {"beta", 2.0}};
  o.merge(detail::receiver_selection_options());
  o.merge(detail::edit_rollout_options());
  return o;
}

std::map<std::string, std::string> AttentionSteeringMethod::option_docs() const {
  std::map<std::string, std::string> docs = {
      {"sentences", "the target sentences (empty: every sentence but the last, which has nothing after it)"},
      {"beta", "added to the heads' scaled attention scores toward the target sentence (negative: away from it)"}};
  docs.merge(detail::receiver_selection_option_docs());
  docs.merge(detail::edit_rollout_option_docs());
  return docs;
}

Attribution AttentionSteeringMethod::run(const Trace& trace, const Context& context) const {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  const ValueMap o = resolve_options(*this, context.options);
  if (context.output_dir.empty())
    throw Error("attention_steering: the context has no output_dir (the resumable rollout folders)");
  if (trace.sentences.size() < 2) throw Error("attention_steering: the trace needs at least two sentences");
  trace.validate();
  const std::size_t S = trace.sentences.size();
  const double beta = std::get<double>(o.at("beta"));
  if (!std::isfinite(beta)) throw Error(fmt::format("attention_steering: beta must be finite, got {}", beta));
  std::vector<std::size_t> targets = detail::target_sentences(std::get<IntList>(o.at("sentences")), S, kWho);
  if (std::get<IntList>(o.at("sentences")).empty()) targets.pop_back();  // the last sentence has nothing after it
  for (const std::size_t i : targets)
    if (i + 1 >= S)
      throw Error(fmt::format("attention_steering: sentence {} is the last; the model continues from after a "
                              "sentence, and nothing follows it",
                              i));

  const detail::ReceiverSelection selected = detail::select_heads(o, trace, context, kWho);
  std::map<std::int64_t, std::vector<std::int64_t>> layer_heads;
  for (const auto& h : selected.heads) layer_heads[h.layer].push_back(h.head);
  const auto tokenizer = detail::context_tokenizer(context, kWho);
  const std::shared_ptr<RolloutProvider> provider =
      context.provider ? context.provider : std::make_shared<LocalProvider>(context.model);
  InterventionOptions io = detail::intervention_options(o, context, kWho);
  io.outcome = method_outcome(context, trace);
  const std::string target = detail::method_target(o, trace);
  const std::string prompt = detail::trace_prompt(trace, "", kWho);
  const fs::path root = fs::path(context.output_dir) / kWho;

  // Progress over the plain and every steered set together.
  const std::size_t per_set = static_cast<std::size_t>(io.num_rollouts);
  const std::size_t total = per_set * targets.size() * 2;
  std::size_t finished = 0;  // rollouts of the sets already done
  const auto progress_from = [&](std::size_t before) {
    return [&, before](std::size_t done, std::size_t, const std::string& unit) {
      context.control.report(before + done, total, unit);
    };
  };

  // Plain continuations from after every target sentence (one intervene call).
  std::vector<Intervention> continuations;
  for (const std::size_t i : targets) continuations.push_back({InterventionKind::kResample, i + 1, ""});
  InterventionOptions plain_options = io;
  plain_options.control.progress = progress_from(0);
  const InterventionResult plain = intervene(*provider, *tokenizer, trace, prompt, target, continuations,
                                             (root / "plain").string(), plain_options);
  finished = per_set * targets.size();

  std::vector<double> shift(S, kNaN), kl(S, kNaN), steered_rate(S, kNaN), plain_rate(S, kNaN);
  const double alpha = std::get<double>(o.at("kl_alpha"));
  for (std::size_t k = 0; k < targets.size(); ++k) {
    const std::size_t i = targets[k];
    const Sentence& sentence = trace.sentences[i];
    // Sentence i's tokens in the rollout prompt, by prefix tokenisation.
    const auto tokens = [&](std::size_t chars) {
      return static_cast<std::int64_t>(tokenizer->encode(prompt + trace.text.substr(0, chars), true).ids.size());
    };
    const TokenSpan keys{tokens(sentence.chars.begin), tokens(sentence.chars.end)};
    InterventionOptions steered_options = io;
    for (const auto& [layer, heads] : layer_heads)
      steered_options.attention_control.boost_keys(keys, beta, /*from=*/keys.end, {layer}, heads);
    steered_options.control.progress = progress_from(finished + k * per_set);
    const InterventionResult steered =
        intervene(*provider, *tokenizer, trace, prompt, target, {continuations[k]},
                  (root / fmt::format("steered_{}", i)).string(), steered_options);
    const EditOutcome& with = steered.edits.front();
    const EditOutcome& without = plain.edits[k];
    steered_rate[i] = with.rate;
    plain_rate[i] = without.rate;
    shift[i] = with.rate - without.rate;
    const AnswerDistribution p = label_distribution(with), q = label_distribution(without);
    kl[i] = p.total() > 0 && q.total() > 0 ? kl_divergence(p, q, alpha) : kNaN;
  }

  Attribution a;
  a.method = name();
  a.options = o;
  a.scores["steering_rate_shift"] = std::move(shift);
  a.scores["steering_kl"] = std::move(kl);
  a.scores["steered_rate"] = std::move(steered_rate);
  a.scores["plain_rate"] = std::move(plain_rate);
  a.scores["receiver_score"] = selected.sentence_scores;
  a.metadata["heads"] = model::format_heads(selected.heads);
  a.metadata["beta"] = beta;
  a.metadata["target"] = target;
  a.metadata["output_dir"] = root.string();
  return a;
}

}  // namespace anchors::rollout
