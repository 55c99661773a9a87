#include "anchors/methods/resampling.h"

#include <filesystem>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/core/outcome.h"
#include "anchors/core/resampling_metrics.h"
#include "anchors/core/segmentation.h"
#include "anchors/core/utf8.h"
#include "anchors/methods/registry.h"

namespace anchors {

Trace trace_from_rollouts(const ProblemRollouts& rollouts, std::size_t min_sentence_chars) {
  Trace trace;
  trace.prompt = rollouts.base_solution.prompt;
  trace.text = rollouts.base_solution.solution;
  trace.answer = rollouts.base_solution.answer;
  trace.metadata["problem_id"] = rollouts.problem_id;
  if (!rollouts.problem.text.empty()) trace.metadata["problem"] = rollouts.problem.text;
  if (!rollouts.problem.gt_answer.empty()) trace.metadata["gt_answer"] = rollouts.problem.gt_answer;
  if (rollouts.base_solution.is_correct)
    trace.metadata["is_correct"] = *rollouts.base_solution.is_correct ? "true" : "false";
  if (rollouts.problem.is_scenario()) {
    // An agentic folder: its chunks come from the authors' own splitter
    // (chunks.json), which ours does not reproduce; the analysed ones are
    // located in the solution instead of re-segmenting it.
    trace.metadata["scenario"] = rollouts.problem.scenario;
    if (!rollouts.problem.nickname.empty()) trace.metadata["nickname"] = rollouts.problem.nickname;
    if (!rollouts.behavior.empty()) trace.metadata["behavior"] = rollouts.behavior;
    std::vector<std::size_t> analysed;
    for (std::size_t c = 0; c < rollouts.chunks.size(); ++c)
      if (utf8::length(rollouts.chunks[c]) >= min_sentence_chars) analysed.push_back(c);
    const std::string source = (std::filesystem::path(rollouts.problem_dir) / "chunks.json").string();
    ChunkedSolution layout = chunked_solution(trace.text, rollouts.chunks, rollouts.separators, analysed, source);
    if (layout.joined) {
      trace.metadata["text_source"] = fmt::format(
          "chunks.json (chunks joined by their separators): chunk {} is not in base_solution.json's solution as "
          "written",
          analysed[*layout.not_found]);
      trace.text = std::move(layout.text);
    }
    trace.sentences = std::move(layout.sentences);
    return trace;
  }
  SegmentOptions segment;
  segment.drop_shorter_than = min_sentence_chars;
  trace.sentences = split_sentences(trace.text, segment);
  return trace;
}

std::string ResamplingMethod::description() const {
  return "black-box resampling: accuracy, resampling / counterfactual / forced importance, "
         "overdeterminedness and the sentence-to-sentence matrix from rollouts";
}

ValueMap resampling_scoring_options() {
  const ResamplingMetricsOptions d;
  return {{"similarity_threshold", d.similarity_threshold},
          {"kl_alpha", d.kl_alpha},
          {"min_sentence_chars", static_cast<std::int64_t>(d.min_sentence_chars)},
          {"compat", d.compat},
          {"correctness", std::string(d.correctness == Correctness::kRecorded ? "recorded" : "recomputed")},
          {"compute_matrix", d.compute_matrix}};
}

// The defaults of rollout::AnalyzeOptions (anchors/rollout/analyze.h), which
// the core cannot include; rollout_test checks that the two agree.
ValueMap resampling_generation_options() {
  return {{"num_rollouts", std::int64_t{100}},
          {"forced", false},
          {"seed", std::int64_t{0}},
          {"temperature", 0.6},
          {"top_p", 0.95},
          {"min_p", 0.0},
          {"repetition_penalty", 1.0},
          {"max_tokens", std::int64_t{16384}},
          {"max_positions", std::int64_t{0}},
          {"batch", std::int64_t{25}},
          {"forced_max_tokens", std::int64_t{32}}};
}

std::map<std::string, std::string> ResamplingMethod::option_docs() const {
  return {
      {"similarity_threshold", "a resampled sentence is 'different' when its cosine to the removed one is below this"},
      {"kl_alpha", "additive smoothing of the answer distributions in the KL importances"},
      {"min_sentence_chars", "chunks shorter than this (code points) are not analysed (the reference drops them)"},
      {"compat", "reproduce the authors' code where its choices are arbitrary (docs/resampling-metrics.md)"},
      {"correctness", "\"recorded\": the rollouts' is_correct; \"recomputed\": compare answers with gt_answer"},
      {"compute_matrix", "also the S×S sentence-to-sentence counterfactual matrix"},
      {"num_rollouts", "generation: rollouts per sentence (and per sentence for the forced ones)"},
      {"forced", "generation: also the forced-answer rollouts (forced importance)"},
      {"seed", "generation: batch seeds derive from (seed, sentence, forced, batch): re-runs resume exactly"},
      {"temperature", "generation: sampling temperature"},
      {"top_p", "generation: nucleus sampling mass, in (0, 1]"},
      {"min_p", "generation: min-p sampling (0 = off)"},
      {"repetition_penalty", "generation: repetition penalty (1 = off)"},
      {"max_tokens", "generation: new tokens per rollout (capped by max_positions)"},
      {"max_positions", "generation: the model's context length, prompt + completion (0 = no cap)"},
      {"batch", "generation: samples per provider request"},
      {"forced_max_tokens", "generation: new tokens of a forced-answer rollout (after the stub)"}};
}

std::vector<std::string> ResamplingMethod::headline_scores() const {
  return {"counterfactual_importance_kl", "resampling_importance_kl", "counterfactual_importance_accuracy"};
}

ValueMap ResamplingMethod::default_options() const {
  ValueMap all = resampling_scoring_options();
  all.merge(resampling_generation_options());
  return all;
}

ResamplingMetricsOptions resampling_metrics_options(const ValueMap& given) {
  const ValueMap o = resolve_options(ResamplingMethod(), given);
  ResamplingMetricsOptions options;
  options.similarity_threshold = std::get<double>(o.at("similarity_threshold"));
  options.kl_alpha = std::get<double>(o.at("kl_alpha"));
  const auto min_chars = std::get<std::int64_t>(o.at("min_sentence_chars"));
  if (min_chars < 0) throw Error("resampling: min_sentence_chars must be >= 0");
  options.min_sentence_chars = static_cast<std::size_t>(min_chars);
  options.compat = std::get<bool>(o.at("compat"));
  const auto& correctness = std::get<std::string>(o.at("correctness"));
  if (correctness == "recorded") {
    options.correctness = Correctness::kRecorded;
  } else if (correctness == "recomputed") {
    options.correctness = Correctness::kRecomputed;
  } else {
    throw Error(fmt::format("resampling: correctness must be \"recorded\" or \"recomputed\", got \"{}\"", correctness));
  }
  options.compute_matrix = std::get<bool>(o.at("compute_matrix"));
  return options;
}

Attribution resampling_attribution(const Trace& trace, const ResamplingMetrics& metrics, const ValueMap& options) {
  if (metrics.sentences.size() != trace.sentences.size())
    throw Error(fmt::format("resampling: the trace has {} sentences but the rollouts of {} analyse {}",
                            trace.sentences.size(), metrics.problem_id, metrics.sentences.size()));
  for (std::size_t i = 0; i < trace.sentences.size(); ++i) {
    if (metrics.sentences[i].text != trace.sentences[i].text)
      throw Error(fmt::format("resampling: sentence {} of the trace differs from chunk {} of the rollouts", i,
                              metrics.sentences[i].chunk_idx));
  }
  Attribution a = to_attribution(metrics);
  a.method = "resampling";
  const ValueMap scoring = resampling_scoring_options();
  for (const auto& [k, v] : resolve_options(ResamplingMethod(), options))
    if (scoring.count(k)) a.options[k] = v;
  return a;
}

Attribution ResamplingMethod::generate_and_score(const Trace&, const Context&) const {
  throw Error(
      "resampling: generating rollouts needs anchors::anchors (link it and call anchors::register_builtins()); "
      "anchors::core only scores rollouts already on disk (Context::rollouts)");
}

Attribution ResamplingMethod::run(const Trace& trace, const Context& context) const {
  if (!context.similarity) throw Error("resampling: the context has no sentence similarity");
  if (!context.rollouts && context.provider) return generate_and_score(trace, context);
  if (!context.rollouts)
    throw Error("resampling: the context has neither rollouts (read_problem_rollouts) nor a provider to generate them");
  ResamplingMetricsOptions options = resampling_metrics_options(context.options);
  options.control = context.control;
  if (!context.outcome) {
    const ResamplingMetrics metrics = compute_resampling_metrics(*context.rollouts, *context.similarity, options);
    return resampling_attribution(trace, metrics, context.options);
  }
  ProblemRollouts relabelled = *context.rollouts;
  relabel_rollouts(relabelled, *context.outcome);
  options.outcome = context.outcome;
  Attribution a = resampling_attribution(
      trace, compute_resampling_metrics(relabelled, *context.similarity, options), context.options);
  a.metadata["outcome"] = context.outcome->name();
  return a;
}

}  // namespace anchors
