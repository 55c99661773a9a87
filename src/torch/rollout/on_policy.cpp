#include "anchors/rollout/on_policy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "anchors/core/embedder.h"
#include "anchors/core/error.h"
#include "anchors/core/hash.h"
#include "anchors/core/segmentation.h"
#include "anchors/methods/registry.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/analyze.h"
#include "anchors/rollout/intervention.h"
#include "anchors/rollout/off_policy.h"
#include "edit_methods.h"
#include "rollout_batches.h"

namespace anchors::rollout {
namespace {

// A candidate: the first sentence of a continuation, and the whitespace the
// model wrote after it (what follows it when the search goes on).
struct Candidate {
  std::string sentence;
  std::string gap;
};

Candidate first_sentence_of(const std::string& continuation) {
  const std::vector<Sentence> sentences = split_sentences(continuation);
  if (sentences.empty()) return {};
  const std::size_t end = sentences.front().chars.end;
  std::size_t gap_end = continuation.find_first_not_of(" \t\r\n", end);
  if (gap_end == std::string::npos) gap_end = continuation.size();
  std::string gap = continuation.substr(end, gap_end - end);
  return {sentences.front().text, gap.empty() ? std::string(" ") : gap};
}

}  // namespace

std::string OnPolicyMethod::description() const {
  return "Thought Branches on-policy intervention: the model's own sentence closest to a target meaning in place of "
         "a sentence, against the off-policy substitution of the target text";
}

ValueMap OnPolicyMethod::default_options() const {
  ValueMap o = {{"sentences", IntList{}},
                {"targets", std::string("question,doubt,alternative,pause")},
                {"target_texts", std::string()},
                {"candidates", std::int64_t{32}},
                {"candidate_tokens", std::int64_t{48}},
                {"min_similarity", 0.7},
                {"search_sentences", std::int64_t{1}},
                {"logprobs", true}};
  o.merge(detail::edit_rollout_options());
  return o;
}

std::map<std::string, std::string> OnPolicyMethod::option_docs() const {
  std::map<std::string, std::string> docs = {
      {"sentences", "the target sentences (empty: every sentence)"},
      {"targets", "comma-separated target meanings by name: the authors' disruptions (question, doubt, alternative, "
                  "pause, ethical, consequence, self_preservation)"},
      {"target_texts", "a JSON list of target texts of your own"},
      {"candidates", "candidate continuations sampled from the prefix per sentence and target"},
      {"candidate_tokens", "new tokens per candidate (its first sentence is the candidate)"},
      {"min_similarity", "the chosen candidate counts as the target's content at or above this similarity"},
      {"search_sentences", "sentences the search may write in s_i's place: while the best candidate stays below "
                           "min_similarity, keep it and search the next sentence"},
      {"logprobs", "score the chosen and the target texts under the model (the provider must answer "
                   "prompt_logprobs)"}};
  docs.merge(detail::edit_rollout_option_docs());
  return docs;
}

std::vector<std::string> OnPolicyMethod::headline_scores() const {
  return {"mean_rate_shift", "mean_kl", "original_logprob"};
}

Attribution OnPolicyMethod::run(const Trace& trace, const Context& context) const {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  const ValueMap o = resolve_options(*this, context.options);
  if (!context.provider) throw Error("on_policy: the context has no rollout provider");
  if (!context.similarity) throw Error("on_policy: the context has no sentence similarity");
  if (context.output_dir.empty()) throw Error("on_policy: the context has no output_dir (the resumable rollout folders)");
  const auto tokenizer = detail::context_tokenizer(context, "on_policy");
  if (trace.sentences.empty()) throw Error("on_policy: the trace has no sentences");
  trace.validate();
  const std::size_t S = trace.sentences.size();

  // The targets, by name.
  std::vector<std::pair<std::string, std::string>> targets =
      detail::named_fixed_texts(std::get<std::string>(o.at("targets")), true, "on_policy", "target");
  {
    const auto texts = detail::text_list("on_policy", "target_texts", std::get<std::string>(o.at("target_texts")));
    for (std::size_t k = 0; k < texts.size(); ++k) targets.emplace_back(fmt::format("target_{}", k), texts[k]);
    std::set<std::string> names;
    for (const auto& [name, text] : targets)
      if (!names.insert(name).second) throw Error(fmt::format("on_policy: target {} is given twice", name));
  }
  if (targets.empty()) throw Error("on_policy: no targets (targets and target_texts are both empty)");
  const std::int64_t candidates = std::get<std::int64_t>(o.at("candidates"));
  const std::int64_t candidate_tokens = std::get<std::int64_t>(o.at("candidate_tokens"));
  if (candidates < 1) throw Error(fmt::format("on_policy: candidates must be >= 1, got {}", candidates));
  if (candidate_tokens < 1) throw Error(fmt::format("on_policy: candidate_tokens must be >= 1, got {}", candidate_tokens));
  const double min_similarity = std::get<double>(o.at("min_similarity"));
  const std::int64_t search_sentences = std::get<std::int64_t>(o.at("search_sentences"));
  if (search_sentences < 1)
    throw Error(fmt::format("on_policy: search_sentences must be >= 1, got {}", search_sentences));
  const bool logprobs = std::get<bool>(o.at("logprobs"));
  const std::vector<std::size_t> sentences =
      detail::target_sentences(std::get<IntList>(o.at("sentences")), S, "on_policy");
  InterventionOptions io = detail::intervention_options(o, context, "on_policy");
  io.outcome = method_outcome(context, trace);
  const std::string target = detail::method_target(o, trace);
  const std::string prompt = detail::trace_prompt(trace, "", "on_policy");

  Attribution a;
  a.method = "on_policy";
  a.options = o;
  const auto series = [&](const std::string& name) -> std::vector<double>& {
    auto& v = a.scores[name];
    if (v.empty()) v.assign(S, kNaN);
    return v;
  };
  // The candidates' request: `candidates` continuations of prompt + prefix.
  const detail::SamplingSettings sampling = detail::sampling_settings(io);
  const auto candidate_request = [&](const std::string& prefix) {
    CompletionRequest request = detail::prefix_request(trace, prompt, prefix, *tokenizer, sampling, candidates,
                                                       candidate_tokens, io.max_positions);
    if (request.max_tokens < 1)
      throw Error(fmt::format("on_policy: a prefix of {} tokens leaves no room in the model's {} positions",
                              request.prompt_ids.size(), io.max_positions));
    return request;
  };
  std::map<std::size_t, std::vector<detail::NamedEdit>> edits;
  std::int64_t searched = 0;
  const std::int64_t searches = static_cast<std::int64_t>(sentences.size() * targets.size());
  for (std::size_t i : sentences) {
    const std::string before = intervened_prefix(trace, {InterventionKind::kResample, i, ""});
    for (const auto& [name, text] : targets) {
      io.control.check("on_policy");
      io.control.report(static_cast<std::size_t>(searched++), static_cast<std::size_t>(searches), "searches");
      edits[i].push_back({"off_" + name, {InterventionKind::kSubstitute, i, text}});
      // Round r searches the sentence after the r sentences accepted so far
      // (the replacement of s_i grows by one sentence per round).
      std::string accepted;
      double best = kNaN;
      std::int64_t rounds = 0;
      for (std::int64_t round = 0; round < search_sentences; ++round) {
        CompletionRequest request = candidate_request(before + accepted);
        // Every search has its own seed, so a re-run finds the same sentences.
        const std::string key = round == 0 ? fmt::format("on_policy_{}_{}", i, name)
                                           : fmt::format("on_policy_{}_{}_{}", i, name, round);
        request.seed = splitmix64(io.seed ^ fnv1a64(key));
        std::vector<Candidate> pool;
        for (const Completion& c : context.provider->complete(request)) {
          const Candidate candidate = first_sentence_of(c.text);
          if (candidate.sentence.empty()) continue;
          const auto same = [&](const Candidate& p) { return p.sentence == candidate.sentence; };
          if (std::none_of(pool.begin(), pool.end(), same)) pool.push_back(candidate);
        }
        if (pool.empty()) {
          // No sentence to add: the replacement is what was kept, without its trailing gap.
          accepted.erase(accepted.find_last_not_of(" \t\r\n") + 1);
          break;
        }
        std::vector<std::pair<std::string, std::string>> pairs;
        for (const Candidate& p : pool) pairs.emplace_back(text, p.sentence);
        const std::vector<double> sims = context.similarity->similarities(pairs);
        best = *std::max_element(sims.begin(), sims.end());
        // Ties at the best similarity: the candidate the model finds likelier in place.
        std::size_t chosen = static_cast<std::size_t>(std::find(sims.begin(), sims.end(), best) - sims.begin());
        if (logprobs && std::count(sims.begin(), sims.end(), best) > 1) {
          double chosen_logprob = -std::numeric_limits<double>::infinity();
          const std::size_t begin = before.size() + accepted.size();
          for (std::size_t k = 0; k < pool.size(); ++k) {
            if (sims[k] != best) continue;
            const Intervention in{InterventionKind::kSubstitute, i, accepted + pool[k].sentence};
            const double lp = detail::text_logprob(*context.provider, *tokenizer, prompt, intervened_prefix(trace, in),
                                                   begin, begin + pool[k].sentence.size());
            if (lp > chosen_logprob) chosen_logprob = lp, chosen = k;
          }
        }
        ++rounds;
        if (best >= min_similarity || round + 1 == search_sentences) {
          accepted += pool[chosen].sentence;
          break;
        }
        accepted += pool[chosen].sentence + pool[chosen].gap;
      }
      if (accepted.empty()) continue;  // no candidate had a sentence
      series("on_" + name + "_similarity")[i] = best;
      series("on_" + name + "_sentences")[i] = static_cast<double>(rounds);
      a.metadata[fmt::format("on_{}_{}", name, i)] = accepted;
      if (best >= min_similarity) edits[i].push_back({"on_" + name, {InterventionKind::kSubstitute, i, accepted}});
    }
  }
  io.control.report(static_cast<std::size_t>(searches), static_cast<std::size_t>(searches), "searches");
  detail::run_edits(edits, trace, context, *tokenizer, prompt, target, io, std::get<double>(o.at("kl_alpha")), logprobs,
                    a);
  a.metadata["target"] = target;
  a.metadata["provider"] = context.provider->name();
  a.metadata["output_dir"] = context.output_dir;
  return a;
}

}  // namespace anchors::rollout
