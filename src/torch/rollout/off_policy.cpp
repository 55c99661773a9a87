#include "anchors/rollout/off_policy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "anchors/core/attribution.h"
#include "anchors/core/distribution.h"
#include "anchors/core/embedder.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/segmentation.h"
#include "anchors/methods/registry.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/analyze.h"
#include "anchors/rollout/intervention.h"
#include "edit_methods.h"
#include "rollout_batches.h"

namespace anchors::rollout {
namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The donor trace's sentences: a result JSON (its trace) or a text file (segmented).
std::vector<std::string> donor_sentences(const std::string& path) {
  std::vector<std::string> out;
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    for (const Sentence& s : load_result(path).trace.sentences) out.push_back(s.text);
  } else {
    for (const Sentence& s : split_sentences(read_text_file(path, kDataFileLimit))) out.push_back(s.text);
  }
  if (out.empty()) throw Error(fmt::format("off_policy: the donor {} has no sentences", path));
  return out;
}

}  // namespace

const std::vector<std::pair<std::string, std::string>>& fixed_insertions() {
  static const std::vector<std::pair<std::string, std::string>> edits = {
      {"wait", "Wait,"},
      {"think", "<think>"},
      {"question", "But wait, is this really the right approach?"},
      {"doubt", "Actually, I'm not sure about this."},
      {"alternative", "Let me consider a different approach."},
      {"pause", "Wait, let me think about this more carefully."},
      {"ethical", "But I should consider the ethical implications."},
      {"consequence", "But what are the potential consequences of this action?"},
      {"self_preservation", "My primary goal is survival."}};
  return edits;
}

std::string OffPolicyMethod::description() const {
  return "Thought Branches off-policy edits: insert or substitute a text at a sentence; the outcome shift from "
         "keeping the sentence, and the text's log-probability under the model";
}

ValueMap OffPolicyMethod::default_options() const {
  ValueMap o = {{"sentences", IntList{}},
                {"edits", std::string("wait,think,question,doubt,alternative,pause")},
                {"insert_texts", std::string()},
                {"substitute_texts", std::string()},
                {"donor", std::string()},
                {"donor_threshold", 0.4},
                {"logprobs", true}};
  o.merge(detail::edit_rollout_options());
  return o;
}

std::vector<std::string> OffPolicyMethod::headline_scores() const {
  return {"mean_rate_shift", "mean_kl", "original_logprob"};
}

std::map<std::string, std::string> OffPolicyMethod::option_docs() const {
  std::map<std::string, std::string> docs = {
      {"sentences", "the target sentences (empty: every sentence)"},
      {"edits", "comma-separated fixed insertions: wait, think, question, doubt, alternative, pause, ethical, "
                "consequence, self_preservation (\"\": none)"},
      {"insert_texts", "a JSON list of texts to insert after each target sentence"},
      {"substitute_texts", "a JSON list of texts to put in place of each target sentence"},
      {"donor", "another trace (result JSON or text file): its sentence nearest each fixed disruption is inserted"},
      {"donor_threshold", "a donor sentence is used only at or above this similarity to the disruption"},
      {"logprobs", "score every edit's text under the model (the provider must answer prompt_logprobs)"}};
  docs.merge(detail::edit_rollout_option_docs());
  return docs;
}

Attribution OffPolicyMethod::run(const Trace& trace, const Context& context) const {
  const ValueMap o = resolve_options(*this, context.options);
  if (!context.provider) throw Error("off_policy: the context has no rollout provider");
  if (context.output_dir.empty()) throw Error("off_policy: the context has no output_dir (the resumable rollout folders)");
  const auto tokenizer = detail::context_tokenizer(context, "off_policy");
  if (trace.sentences.empty()) throw Error("off_policy: the trace has no sentences");
  const std::size_t S = trace.sentences.size();

  // The edits, resolved to texts (checked before anything runs).
  std::vector<OffPolicyEdit> edits;
  std::set<std::string> names;
  const auto add = [&](OffPolicyEdit e) {
    if (!names.insert(e.name).second) throw Error(fmt::format("off_policy: edit {} is given twice", e.name));
    edits.push_back(std::move(e));
  };
  std::vector<std::pair<std::string, std::string>> disruptions;
  for (const auto& [name, text] :
       detail::named_fixed_texts(std::get<std::string>(o.at("edits")), false, "off_policy", "edit")) {
    add({name, text, false});
    if (name != "wait" && name != "think") disruptions.emplace_back(name, text);
  }
  const auto inserts = detail::text_list("off_policy", "insert_texts", std::get<std::string>(o.at("insert_texts")));
  for (std::size_t k = 0; k < inserts.size(); ++k) add({fmt::format("insert_{}", k), inserts[k], false});
  const auto substitutes = detail::text_list("off_policy", "substitute_texts", std::get<std::string>(o.at("substitute_texts")));
  for (std::size_t k = 0; k < substitutes.size(); ++k) add({fmt::format("substitute_{}", k), substitutes[k], true});
  std::map<std::string, std::pair<std::string, double>> donor_choice;  // edit -> (sentence, similarity)
  if (const std::string donor = std::get<std::string>(o.at("donor")); !donor.empty()) {
    if (!context.similarity) throw Error("off_policy: a donor needs the context's sentence similarity");
    if (disruptions.empty())
      throw Error("off_policy: a donor is matched to the fixed disruptions (question, doubt, ...); none is in edits");
    const std::vector<std::string> pool = donor_sentences(donor);
    const double threshold = std::get<double>(o.at("donor_threshold"));
    for (const auto& [name, text] : disruptions) {
      std::vector<std::pair<std::string, std::string>> pairs;
      for (const std::string& s : pool) pairs.emplace_back(text, s);
      const std::vector<double> sims = context.similarity->similarities(pairs);
      std::size_t best = 0;
      for (std::size_t k = 1; k < sims.size(); ++k)
        if (sims[k] > sims[best]) best = k;
      donor_choice["donor_" + name] = {pool[best], sims[best]};
      if (sims[best] >= threshold) add({"donor_" + name, pool[best], false});
    }
  }
  if (edits.empty()) throw Error("off_policy: no edits (edits, insert_texts, substitute_texts and donor are all empty)");

  const std::vector<std::size_t> targets =
      detail::target_sentences(std::get<IntList>(o.at("sentences")), S, "off_policy");

  InterventionOptions io = detail::intervention_options(o, context, "off_policy");
  io.outcome = method_outcome(context, trace);
  const double alpha = std::get<double>(o.at("kl_alpha"));
  const std::string target = detail::method_target(o, trace);
  const std::string prompt = detail::trace_prompt(trace, "", "off_policy");

  std::map<std::size_t, std::vector<detail::NamedEdit>> per_sentence;
  for (std::size_t i : targets)
    for (const OffPolicyEdit& e : edits)
      per_sentence[i].push_back(
          {e.name, {e.substitute ? InterventionKind::kSubstitute : InterventionKind::kInsert, i, e.text}});
  Attribution a;
  a.method = "off_policy";
  a.options = o;
  detail::run_edits(per_sentence, trace, context, *tokenizer, prompt, target, io, alpha, std::get<bool>(o.at("logprobs")),
                    a);
  a.metadata["target"] = target;
  a.metadata["provider"] = context.provider->name();
  a.metadata["output_dir"] = context.output_dir;
  std::string texts;
  for (const OffPolicyEdit& e : edits) texts += fmt::format("{}{}={}", texts.empty() ? "" : "\n", e.name, e.text);
  a.metadata["edits"] = texts;
  for (const auto& [name, choice] : donor_choice)
    a.metadata[name] = fmt::format("{} (similarity {:.3f})", choice.first, choice.second);
  return a;
}

}  // namespace anchors::rollout
