#include "anchors/rollout/head_ablation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <set>

#include "anchors/core/attention_control.h"
#include "anchors/core/distribution.h"
#include "anchors/core/error.h"
#include "anchors/core/hash.h"
#include "anchors/methods/registry.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/head_index.h"
#include "anchors/rollout/analyze.h"
#include "anchors/rollout/intervention.h"
#include "anchors/rollout/local_provider.h"
#include "edit_methods.h"
#include "receiver_selection.h"
#include "rollout_batches.h"

namespace anchors::rollout {
namespace {

namespace fs = std::filesystem;
using model::HeadIndex;
constexpr const char* kWho = "head_ablation";

AttentionControl ablating(const std::vector<HeadIndex>& heads, std::int64_t start) {
  std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
  for (const HeadIndex& h : heads) pairs.emplace_back(h.layer, h.head);
  return AttentionControl::ablating(pairs, start);
}

// As many heads per layer as `receivers` has there, drawn without replacement
// from that layer's other heads. Partial Fisher-Yates over a std::mt19937_64,
// whose output the standard fixes: the same draw on every platform (unlike
// std::shuffle or the std distributions).
std::vector<HeadIndex> random_heads(const std::vector<HeadIndex>& receivers, std::int64_t heads_per_layer,
                                    std::uint64_t seed) {
  std::map<std::int64_t, std::int64_t> wanted;
  std::set<HeadIndex> taken(receivers.begin(), receivers.end());
  for (const HeadIndex& h : receivers) ++wanted[h.layer];
  std::mt19937_64 rng(seed);
  std::vector<HeadIndex> out;
  for (const auto& [layer, count] : wanted) {
    std::vector<std::int64_t> pool;
    for (std::int64_t h = 0; h < heads_per_layer; ++h)
      if (!taken.count({layer, h})) pool.push_back(h);
    if (static_cast<std::int64_t>(pool.size()) < count)
      throw Error(fmt::format("{}: layer {} has {} heads besides its {} ablated receiver heads; a random draw from the "
                              "same layers needs as many (lower top_k, or set random_draws = 0)",
                              kWho, layer, pool.size(), count));
    for (std::int64_t k = 0; k < count; ++k) {
      const auto remaining = static_cast<std::uint64_t>(pool.size()) - static_cast<std::uint64_t>(k);
      const auto pick = static_cast<std::size_t>(k) + static_cast<std::size_t>(rng() % remaining);
      std::swap(pool[static_cast<std::size_t>(k)], pool[pick]);
      out.push_back({layer, pool[static_cast<std::size_t>(k)]});
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string HeadAblationMethod::description() const {
  return "receiver-head ablation: accuracy over num_rollouts re-solves with the top-k receiver heads' outputs zeroed, "
         "against none ablated and against random heads from the same layers";
}

ValueMap HeadAblationMethod::default_options() const {
  ValueMap o = {{"random_draws", std::int64_t{3}}, {"start", std::int64_t{0}}};
  o.merge(detail::receiver_selection_options());
  o.merge(detail::edit_rollout_options());
  return o;
}

std::map<std::string, std::string> HeadAblationMethod::option_docs() const {
  std::map<std::string, std::string> docs = {
      {"random_draws", "draws of as many random heads from the same layers (each its own condition)"},
      {"start", "token position the heads are ablated from (0: the whole prompt and generation)"}};
  docs.merge(detail::receiver_selection_option_docs());
  docs.merge(detail::edit_rollout_option_docs());
  return docs;
}

Attribution HeadAblationMethod::run(const Trace& trace, const Context& context) const {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  const ValueMap o = resolve_options(*this, context.options);
  if (!context.model) throw Error("head_ablation: the context has no model (the receiver heads and head counts need it)");
  if (context.output_dir.empty())
    throw Error("head_ablation: the context has no output_dir (the resumable rollout folders)");
  const auto tokenizer = detail::context_tokenizer(context, kWho);
  const std::shared_ptr<RolloutProvider> provider =
      context.provider ? context.provider : std::make_shared<LocalProvider>(context.model);
  const model::ModelConfig& config = context.model->config();
  const std::int64_t random_draws = non_negative_option(o, "random_draws", kWho);
  const std::int64_t start = non_negative_option(o, "start", kWho);

  // The receiver heads (given, or this trace's top-k) and what they attend to.
  const detail::ReceiverSelection selected = detail::select_heads(o, trace, context, kWho);
  const std::vector<HeadIndex>& receivers = selected.heads;

  InterventionOptions io = detail::intervention_options(o, context, kWho);
  io.outcome = method_outcome(context, trace);
  const std::string target = detail::method_target(o, trace);
  const std::string prompt = detail::trace_prompt(trace, "", kWho);  // rollout_batches.h

  struct Condition {
    std::string name;
    std::vector<HeadIndex> heads;
  };
  std::vector<Condition> conditions = {{"none", {}}, {"receiver", receivers}};
  for (std::int64_t d = 0; d < random_draws; ++d)
    conditions.push_back({fmt::format("random_{}", d),
                          random_heads(receivers, config.num_attention_heads,
                                       splitmix64(io.seed ^ splitmix64(0x6865616473ULL + static_cast<std::uint64_t>(d))))});

  // Progress over every condition's rollouts together.
  const std::size_t per_condition = static_cast<std::size_t>(io.num_rollouts);
  const std::size_t total = per_condition * conditions.size();
  std::vector<EditOutcome> outcomes;
  for (std::size_t c = 0; c < conditions.size(); ++c) {
    InterventionOptions condition_options = io;
    condition_options.attention_control = ablating(conditions[c].heads, start);
    condition_options.control.progress = [&, c](std::size_t done, std::size_t, const std::string& unit) {
      context.control.report(c * per_condition + done, total, unit);
    };
    const InterventionResult r =
        intervene(*provider, *tokenizer, trace, prompt, target, {Intervention{InterventionKind::kResample, 0, ""}},
                  (fs::path(context.output_dir) / "head_ablation" / conditions[c].name).string(), condition_options);
    outcomes.push_back(r.edits.front());
  }

  Attribution a;
  a.method = name();
  a.options = o;
  Matrix accuracy(conditions.size(), 6);
  const AnswerDistribution none_labels = label_distribution(outcomes.front());
  const double alpha = std::get<double>(o.at("kl_alpha"));
  std::string names;
  double random_sum = 0;
  for (std::size_t c = 0; c < conditions.size(); ++c) {
    const EditOutcome& e = outcomes[c];
    const AnswerDistribution labels = label_distribution(e);
    accuracy(c, 0) = e.rate;
    accuracy(c, 1) = static_cast<double>(e.num_matching);
    accuracy(c, 2) = static_cast<double>(e.num_labelled);
    accuracy(c, 3) = static_cast<double>(e.num_rollouts);
    accuracy(c, 4) = static_cast<double>(e.num_errors);
    accuracy(c, 5) = labels.total() > 0 && none_labels.total() > 0 ? kl_divergence(labels, none_labels, alpha) : kNaN;
    names += (c ? "," : "") + conditions[c].name;
    if (c >= 2) {
      random_sum += e.rate;
      a.metadata[fmt::format("random_heads_{}", c - 2)] = model::format_heads(conditions[c].heads);
    }
  }
  a.matrices["ablation_accuracy"] = std::move(accuracy);
  a.scores["receiver_score"] = selected.sentence_scores;
  const double none = outcomes[0].rate, receiver = outcomes[1].rate;
  const double random_rate = random_draws > 0 ? random_sum / static_cast<double>(random_draws) : kNaN;
  a.metadata["conditions"] = names;
  a.metadata["columns"] = std::string("rate,matching,labelled,rollouts,errors,kl_from_none");
  a.metadata["receiver_heads"] = model::format_heads(receivers);
  a.metadata["accuracy_none"] = none;
  a.metadata["accuracy_receiver"] = receiver;
  a.metadata["accuracy_random"] = random_rate;
  a.metadata["drop_receiver"] = none - receiver;
  a.metadata["drop_random"] = none - random_rate;
  a.metadata["target"] = target;
  a.metadata["outcome"] = io.outcome ? io.outcome->name() : std::string("boxed");
  a.metadata["output_dir"] = (fs::path(context.output_dir) / "head_ablation").string();
  return a;
}

}  // namespace anchors::rollout
