#include "anchors/rollout/analyze.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/answers.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/hash.h"
#include "anchors/core/reference_schema.h"
#include "anchors/core/segmentation.h"
#include "anchors/core/utf8.h"
#include "anchors/methods/registry.h"
#include "anchors/methods/resampling.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/prompt.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/chat_judge.h"
#include "anchors/rollout/rollout_store.h"
#include "json_fields.h"
#include "rollout_batches.h"

namespace anchors::rollout {
namespace {
namespace fs = std::filesystem;

using detail::capped_max_tokens;

std::uint64_t base_seed(std::uint64_t seed, std::int64_t attempt) {
  return splitmix64(splitmix64(seed ^ 0x6261736553454544ULL) + static_cast<std::uint64_t>(attempt));
}

// The text the reference keeps in chunks.json "solution_text": the reasoning
// (before </think> when the solution has one).
std::string solution_reasoning(const std::string& solution) {
  const auto end = solution.find("</think>");
  return end == std::string::npos ? solution : solution.substr(0, end);
}

// The reference's chunks: every chunk (the analysis drops short ones, but the
// merge to >= 10 code points leaves a short chunk only when it is the whole text).
std::vector<Sentence> base_sentences(const std::string& solution) {
  SegmentOptions options;
  options.drop_shorter_than = 0;
  return split_sentences(solution, options);
}

std::shared_ptr<const Outcome> outcome_or_default(const AnalyzeOptions& o) {
  return o.outcome ? o.outcome : std::make_shared<const BoxedAnswer>();
}

void check_generation_options(const std::string& who, const AnalyzeOptions& o) {
  detail::check_sampling(who, detail::sampling_settings(o), o.num_rollouts, o.max_tokens);
  if (o.forced_max_tokens < 1)
    throw Error(fmt::format("{}: forced_max_tokens must be >= 1, got {}", who, o.forced_max_tokens));
  const ValueMap scoring_names = resampling_scoring_options();
  for (const auto& [name, value] : o.scoring)
    if (!scoring_names.count(name))
      throw Error(fmt::format("{}: \"{}\" is not a scoring option of the resampling method", who, name));
  const double threshold = resampling_metrics_options(o.scoring).similarity_threshold;  // checks the types too
  if (!(threshold >= -1 && threshold <= 1)) throw Error(fmt::format("{}: similarity_threshold must be in [-1, 1]", who));
}

void check_options(const Problem& problem, const AnalyzeOptions& o) {
  if (problem.text.empty()) throw Error("analyze: the problem has no text (problem.json \"problem\")");
  check_generation_options("analyze", o);
  if (o.base_attempts < 1) throw Error(fmt::format("analyze: base_attempts must be >= 1, got {}", o.base_attempts));
  if (o.base != "any" && o.base != "correct" && o.base != "incorrect")
    throw Error(fmt::format("analyze: base must be \"any\", \"correct\" or \"incorrect\", got \"{}\"", o.base));
  if (o.base != "any" && problem.gt_answer.empty())
    throw Error(fmt::format("analyze: base \"{}\" needs the problem's gt_answer", o.base));
}

std::string kind_of(const std::optional<bool>& is_correct) {
  if (!is_correct) return "unknown";
  return *is_correct ? "correct" : "incorrect";
}

// The problem a trace answers: metadata "problem" and "gt_answer".
Problem problem_of(const Trace& trace, const std::string& who) {
  Problem problem;
  const auto text = trace.metadata.find("problem");
  if (text == trace.metadata.end() || text->second.empty())
    throw Error(fmt::format("{}: the trace names no problem (metadata \"problem\"); the rollout prompts need it", who));
  problem.text = text->second;
  const auto gt = trace.metadata.find("gt_answer");
  if (gt != trace.metadata.end()) problem.gt_answer = gt->second;
  // A scenario's trace keeps the scenario (base_trace_of), so its folder holds scenario.json.
  if (const auto scenario = trace.metadata.find("scenario"); scenario != trace.metadata.end())
    problem.scenario = scenario->second;
  return problem;
}

// The base solution a trace stands for, as base_solution.json holds it.
BaseSolution base_solution_of(const Trace& trace, const Problem& problem, const Outcome& outcome) {
  BaseSolution base;
  base.prompt = analysis_prompt(problem, trace.prompt);
  base.solution = trace.text;
  base.full_cot = base.prompt + trace.text;
  Rollout labelled;
  detail::label_rollout(outcome, trace.text, problem.gt_answer, labelled);
  base.answer = labelled.answer;
  base.is_correct = labelled.is_correct;
  return base;
}

// The folders of `problem` under out_root that hold a base solution, in the
// order analyze looks for them.
std::vector<std::string> existing_problem_dirs(const Problem& problem, const std::string& out_root,
                                               const std::vector<std::string>& kinds) {
  std::vector<std::string> dirs;
  for (const auto& kind : kinds) {
    const std::string dir = (fs::path(out_root) / (kind + "_base_solution") / problem_folder_name(problem)).string();
    if (RolloutStore(dir).has_problem()) dirs.push_back(dir);
  }
  return dirs;
}

ProblemRollouts read_base(const std::string& dir) {
  ReadRolloutsOptions read;
  read.read_forced = false;
  return read_problem_rollouts(dir, read);
}

// ---- step 3: the store of a trace -----------------------------------------
// The problem's folder that holds this base solution with these sentences: an
// existing one (any kind: one labelled by another outcome is found, though
// its manifest then refuses this run unless the outcome's name is the same),
// else <out_root>/<kind>_base_solution/problem_N with problem.json,
// base_solution.json and chunks.json (the trace's sentences as given)
// written, chunks.json last (it marks the base complete). Another base
// solution in a folder of another kind is left alone (a correct and an
// incorrect base of one problem live side by side, as `--base` makes them);
// in the folder this one would be written to, it is an error. The store comes
// back as the folder's writer (rollout_store.h): its lock held, `manifest`
// checked against the folder's, so a second writer at the same time, or a
// later one with another seed, base solution or generation setting, is
// refused instead of mixed in.
RolloutStore open_store(const Trace& trace, const Problem& problem, const BaseSolution& base,
                        const std::string& out_root, const RunManifest& manifest) {
  std::vector<std::string> chunks;
  for (const auto& s : trace.sentences) chunks.push_back(s.text);
  const std::string own_dir =
      (fs::path(out_root) / (kind_of(base.is_correct) + "_base_solution") / problem_folder_name(problem)).string();
  // Whether a folder with a complete base holds this one (false: another base
  // solution in a folder of another kind); an error for a mismatch.
  const auto holds_this_base = [&](const std::string& dir) {
    const ProblemRollouts existing = read_base(dir);
    if (existing.problem.text != problem.text)
      throw Error(fmt::format("resampling: {} holds another problem (\"{}\"); use another output folder", dir,
                              existing.problem.text.substr(0, 60)));
    if (existing.base_solution.solution != base.solution) {
      if (dir != own_dir) return false;
      throw Error(fmt::format("resampling: {} holds another base solution of this problem; use another output folder",
                              dir));
    }
    if (existing.base_solution.prompt != base.prompt)
      throw Error(fmt::format("resampling: {}/base_solution.json was made with another prompt", dir));
    if (existing.chunks != chunks)
      throw Error(fmt::format("resampling: {}/chunks.json holds other sentences than the trace's ({} vs {})", dir,
                              existing.chunks.size(), chunks.size()));
    return true;
  };
  std::string dir = own_dir;
  for (const auto& existing : existing_problem_dirs(problem, out_root, {"correct", "incorrect", "unknown"}))
    if (holds_this_base(existing)) {
      dir = existing;
      break;
    }
  RolloutStore store(dir);
  store.begin_writing(manifest);
  // Under the lock, again: another writer may have completed the folder since
  // the look above (begin_writing has checked its base solution's hash).
  if (store.has_problem()) {
    holds_this_base(dir);
  } else {
    store.write_problem(problem);
    store.write_base_solution(base);
    store.write_chunks(base.full_cot, solution_reasoning(base.solution), chunks);
  }
  return store;
}

// ---- step 4: the rollout plan ----------------------------------------------
// One task per (sentence, pass): prompt + the trace's text before the sentence
// (+ the outcome's forced stub), its ids and token budget. Seeds come from
// rollout_batch_seed(seed, sentence, forced, batch).
std::vector<detail::RolloutTask> plan_rollouts(const Trace& trace, const Problem& problem, const std::string& prompt,
                                               const model::Tokenizer& tokenizer, const Outcome& outcome,
                                               const AnalyzeOptions& options) {
  std::vector<detail::RolloutTask> plan;
  const std::vector<bool> passes = options.forced ? std::vector<bool>{false, true} : std::vector<bool>{false};
  for (std::size_t i = 0; i < trace.sentences.size(); ++i) {
    const Sentence& sentence = trace.sentences[i];
    for (bool forced : passes) {
      detail::RolloutTask task;
      task.chunk = i;
      task.forced = forced;
      task.prefix = trace.text.substr(0, sentence.chars.begin);
      task.chunk_removed = sentence.text;
      task.stub = forced ? outcome.forced_stub() : std::string();
      task.head = prompt + task.prefix + task.stub;
      task.ids = tokenizer.encode(task.head, true).ids;
      task.messages = problem_messages(problem);
      task.messages.push_back({"assistant", task.prefix + task.stub});
      task.max_tokens = capped_max_tokens(forced ? options.forced_max_tokens : options.max_tokens, task.ids.size(),
                                         options.max_positions);
      task.no_room = fmt::format("the prompt of sentence {} has {} tokens, no room left in the model's {} positions",
                                 i, task.ids.size(), options.max_positions);
      plan.push_back(std::move(task));
    }
  }
  return plan;
}

// ---- step 5: generate what the store misses ---------------------------------
detail::RolloutCounts generate_rollouts(RolloutProvider& provider, RolloutStore& store,
                                        const std::vector<detail::RolloutTask>& plan, const Outcome& outcome,
                                        const std::string& target, const AnalyzeOptions& options) {
  const auto check_cancel = [&] { options.control.check("analyze"); };
  const std::size_t wanted = static_cast<std::size_t>(options.num_rollouts);
  const std::size_t total = wanted * plan.size();
  std::size_t remaining = 0;
  for (const auto& task : plan) remaining += store.missing(task.chunk, task.forced, wanted);
  std::size_t done = total - remaining;
  options.control.report(done, total, "rollouts");
  detail::RolloutCounts counts;
  std::int64_t counted = 0;  // counts.generated already in `done`
  const detail::SamplingSettings sampling = detail::sampling_settings(options);
  for (const detail::RolloutTask& task : plan) {
    if (store.missing(task.chunk, task.forced, wanted) == 0) continue;
    detail::generate_missing(
        provider, store, task, sampling, outcome, target, options.num_rollouts,
        [&](std::int64_t b) { return rollout_batch_seed(options.seed, task.chunk, task.forced, b); }, counts,
        check_cancel, [&](std::int64_t) {
          done += static_cast<std::size_t>(counts.generated - counted);  // failed samples are not done
          counted = counts.generated;
          options.control.report(done, total, "rollouts");
        });
  }
  // Failed requests stay on disk as error records for the next run to retry;
  // but a run in which every request failed is a provider that does not work.
  if (counts.generated == 0 && counts.failed > 0)
    throw Error(fmt::format("analyze: every request to {} failed ({} rollouts); the first failure: {}",
                            provider.name(), counts.failed, counts.first_failure));
  return counts;
}

// Steps 3-7 for a trace (resample_trace and the method share them).
AnalyzeResult resample(RolloutProvider& provider, const model::Tokenizer& tokenizer, const Trace& trace,
                       const std::string& out_root, SentenceSimilarity& similarity, const AnalyzeOptions& options) {
  const std::string who = "resampling";
  check_generation_options(who, options);
  ResamplingMetricsOptions scoring = resampling_metrics_options(options.scoring);
  if (out_root.empty()) throw Error(who + ": empty output folder");
  trace.validate();
  if (trace.sentences.empty()) throw Error(who + ": the trace has no sentences");
  for (const auto& s : trace.sentences)
    if (utf8::length(s.text) < scoring.min_sentence_chars)
      throw Error(fmt::format("{}: sentence {} (\"{}\") is shorter than min_sentence_chars = {}, so it would get "
                              "rollouts but no scores; drop it from the trace or set min_sentence_chars = 0",
                              who, s.index, s.text, scoring.min_sentence_chars));
  const Problem problem = problem_of(trace, who);
  const std::shared_ptr<const Outcome> outcome = outcome_or_default(options);
  const BaseSolution base = base_solution_of(trace, problem, *outcome);

  AnalyzeResult out;
  RunManifest manifest = detail::run_manifest(base.prompt, base.solution, options, *outcome);
  manifest.options["forced_max_tokens"] = options.forced_max_tokens;
  RolloutStore store = open_store(trace, problem, base, out_root, manifest);  // the writer until we return
  out.problem_dir = store.problem_dir();
  store.remove_temp_files();
  const auto plan = plan_rollouts(trace, problem, base.prompt, tokenizer, *outcome, options);
  const detail::RolloutCounts counts =
      generate_rollouts(provider, store, plan, *outcome, problem.gt_answer, options);
  out.generated = counts.generated;

  // ---- 6. read, 7. score
  options.control.check("analyze");
  const ProblemRollouts rollouts = store.read();
  for (const auto& s : rollouts.resampled) out.failed += static_cast<std::int64_t>(s.num_errors);
  for (const auto& s : rollouts.forced) out.failed += static_cast<std::int64_t>(s.num_errors);
  if (rollouts.has_forced()) out.forced_dir = rollouts.forced_dir;
  scoring.outcome = outcome;
  out.metrics = compute_resampling_metrics(rollouts, similarity, scoring);
  ReferenceOutputOptions reference;
  reference.keep_labels = true;
  write_reference_outputs(rollouts, out.metrics, out.problem_dir, reference);

  out.result.trace = trace;
  Attribution attribution = resampling_attribution(trace, out.metrics, options.scoring);
  attribution.metadata["provider"] = provider.name();
  attribution.metadata["outcome"] = outcome->name();
  attribution.metadata["num_rollouts"] = options.num_rollouts;
  attribution.metadata["forced"] = options.forced;
  attribution.metadata["seed"] = static_cast<std::int64_t>(options.seed);
  attribution.metadata["temperature"] = options.temperature;
  attribution.metadata["top_p"] = options.top_p;
  // Only when used, so results of runs without them stay as they were.
  if (options.min_p != 0) attribution.metadata["min_p"] = options.min_p;
  if (options.repetition_penalty != 1) attribution.metadata["repetition_penalty"] = options.repetition_penalty;
  attribution.metadata["max_tokens"] = options.max_tokens;
  attribution.metadata["batch"] = options.batch;
  attribution.metadata["error_records"] = out.failed;
  out.result.set_attribution(std::move(attribution));
  return out;
}

}  // namespace

std::string problem_folder_name(const Problem& problem) {
  return fmt::format("problem_{}", fnv1a64(problem.text) % 100000000ULL);
}

std::uint64_t rollout_batch_seed(std::uint64_t seed, std::size_t sentence, bool forced, std::int64_t batch_index) {
  std::uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ static_cast<std::uint64_t>(sentence));
  h = splitmix64(h ^ (forced ? 0xF0F0F0F0ULL : 0x0F0F0F0FULL));
  return splitmix64(h ^ static_cast<std::uint64_t>(batch_index));
}

namespace {
// A string field of a scenario ("" when absent or null); anchors::Error for another type.
std::string scenario_field(const nlohmann::json& doc, const char* key) {
  const auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return "";
  if (!it->is_string())
    throw Error(fmt::format("scenario: field \"{}\" must be a string, got {}", key, it->type_name()));
  return it->get<std::string>();
}
}  // namespace

std::string analysis_prompt(const Problem& problem, const std::string& prompt) {
  if (!prompt.empty()) return prompt;
  if (!problem.is_scenario()) return model::render_prompt_text(model::PromptFormat::kRaw, problem.text);
  const nlohmann::json doc = json_fields::parse(problem.scenario, "scenario");
  const std::string format = scenario_field(doc, "prompt_format");
  if (format.empty() || format == "thought_branches") return scenario_prompt(problem);
  return model::render_chat_prompt_text(model::parse_prompt_format(format), problem_messages(problem));
}

std::shared_ptr<const Outcome> scenario_outcome(const Problem& problem) {
  if (!problem.is_scenario()) return nullptr;
  const nlohmann::json doc = json_fields::parse(problem.scenario, "scenario");
  const std::string spec = scenario_field(doc, "outcome");
  if (spec.empty()) return nullptr;
  ChatJudgeOptions judge;
  judge.model = scenario_field(doc, "judge_model");
  if (const std::string prompt = scenario_field(doc, "judge_prompt"); !prompt.empty()) judge.prompt = prompt;
  if (const auto labels = doc.find("judge_labels"); labels != doc.end() && !labels->is_null()) {
    if (!labels->is_array()) throw Error("scenario: field \"judge_labels\" must be a list of strings");
    for (const auto& l : *labels) {
      if (!l.is_string()) throw Error("scenario: field \"judge_labels\" must be a list of strings");
      judge.labels.push_back(l.get<std::string>());
    }
  }
  return outcome_from_spec(spec, judge);
}

std::shared_ptr<const Outcome> method_outcome(const Context& context, const Trace& trace) {
  if (context.outcome) return context.outcome;
  const auto scenario = detail::trace_scenario(trace);
  return scenario ? scenario_outcome(*scenario) : nullptr;
}

Trace base_trace_of(const Problem& problem, const std::string& prompt, const std::string& solution,
                    const Outcome& outcome) {
  Trace trace;
  trace.prompt = analysis_prompt(problem, prompt);
  trace.text = solution;
  trace.metadata["problem_id"] = problem_folder_name(problem);
  trace.metadata["problem"] = problem.text;
  if (problem.is_scenario()) trace.metadata["scenario"] = problem.scenario;
  if (!problem.gt_answer.empty()) trace.metadata["gt_answer"] = problem.gt_answer;
  const BaseSolution base = base_solution_of(trace, problem, outcome);
  trace.answer = base.answer;
  if (base.is_correct) trace.metadata["is_correct"] = *base.is_correct ? "true" : "false";
  trace.sentences = base_sentences(solution);
  return trace;
}

BaseTrace base_trace(RolloutProvider& provider, const model::Tokenizer& tokenizer, const Problem& problem,
                     const std::string& out_root, const AnalyzeOptions& options) {
  check_options(problem, options);
  if (out_root.empty()) throw Error("analyze: empty output folder");
  const std::string prompt = analysis_prompt(problem, options.prompt);
  const std::shared_ptr<const Outcome> outcome = outcome_or_default(options);
  BaseTrace out;
  // A base solution on disk is reused, never regenerated.
  const auto kinds = options.base == "any" ? std::vector<std::string>{"correct", "incorrect", "unknown"}
                                           : std::vector<std::string>{options.base};
  for (const auto& dir : existing_problem_dirs(problem, out_root, kinds)) {
    const ProblemRollouts existing = read_base(dir);
    if (existing.problem.text != problem.text)
      throw Error(fmt::format("analyze: {} holds another problem (\"{}\"); use another --out folder", dir,
                              existing.problem.text.substr(0, 60)));
    if (options.base_solution && existing.base_solution.solution != *options.base_solution)
      throw Error(fmt::format("analyze: {} holds another base solution of this problem; use another --out folder",
                              dir));
    if (existing.base_solution.prompt != prompt)
      throw Error(fmt::format("analyze: {}/base_solution.json was made with another prompt", dir));
    out.trace = base_trace_of(problem, prompt, existing.base_solution.solution, *outcome);
    std::vector<std::string> texts;
    for (const auto& s : out.trace.sentences) texts.push_back(s.text);
    if (texts != existing.chunks)
      throw Error(fmt::format("analyze: {}/chunks.json does not match the segmentation of base_solution.json", dir));
    out.reused = true;
    return out;
  }
  // Acceptable: at least one sentence, every one long enough to be analysed
  // (only a whole text shorter than that fails), and of the wanted kind.
  const auto why_not = [&](const Trace& t) -> std::string {
    const std::size_t min_chars = resampling_metrics_options(options.scoring).min_sentence_chars;
    if (t.sentences.empty() || utf8::length(t.sentences.front().text) < min_chars)
      return fmt::format("it has no sentence of at least {} characters", min_chars);
    const auto is_correct = t.metadata.find("is_correct");
    const std::string kind =
        is_correct == t.metadata.end() ? "unknown" : (is_correct->second == "true" ? "correct" : "incorrect");
    if (options.base != "any" && kind != options.base)
      return fmt::format("it was {} (answer \"{}\")", kind, t.answer);
    return {};
  };
  if (options.base_solution) {
    out.trace = base_trace_of(problem, prompt, *options.base_solution, *outcome);
    const std::string why = why_not(out.trace);
    if (!why.empty()) throw Error(fmt::format("analyze: the given base solution does not do: {}", why));
    return out;
  }
  const auto ids = tokenizer.encode(prompt, true).ids;
  const std::int64_t max_tokens = capped_max_tokens(options.max_tokens, ids.size(), options.max_positions);
  if (max_tokens < 1)
    throw Error(fmt::format("analyze: the prompt has {} tokens, which leaves no room in the model's {} positions",
                            ids.size(), options.max_positions));
  std::string last;
  for (std::int64_t attempt = 0; attempt < options.base_attempts; ++attempt) {
    options.control.check("analyze");
    CompletionRequest request;
    request.prompt_ids = ids;
    request.prompt_text = prompt;
    request.messages = problem_messages(problem);
    request.n = 1;
    request.temperature = options.temperature;
    request.top_p = options.top_p;
    request.min_p = options.min_p;
    request.repetition_penalty = options.repetition_penalty;
    request.max_tokens = max_tokens;
    request.seed = base_seed(options.seed, attempt);
    const auto completions = provider.complete(request);
    if (completions.empty()) throw Error(fmt::format("analyze: {} returned no completion", provider.name()));
    Trace t = base_trace_of(problem, prompt, completions.front().text, *outcome);
    last = why_not(t);
    if (!last.empty()) continue;
    out.trace = std::move(t);
    return out;
  }
  throw Error(fmt::format("analyze: no acceptable base solution in {} attempt(s) (the last: {})",
                          options.base_attempts, last));
}

AnalyzeResult resample_trace(RolloutProvider& provider, const model::Tokenizer& tokenizer, const Trace& trace,
                             const std::string& out_root, SentenceSimilarity& similarity,
                             const AnalyzeOptions& options) {
  return resample(provider, tokenizer, trace, out_root, similarity, options);
}

AnalyzeResult analyze_problem(RolloutProvider& provider, const model::Tokenizer& tokenizer, const Problem& problem,
                              const std::string& out_root, SentenceSimilarity& similarity,
                              const AnalyzeOptions& options) {
  const BaseTrace base = base_trace(provider, tokenizer, problem, out_root, options);
  AnalyzeResult out = resample_trace(provider, tokenizer, base.trace, out_root, similarity, options);
  out.base_reused = base.reused;
  out.result_path = (fs::path(out.problem_dir) / "result.json").string();
  save_result(out.result, out.result_path);
  return out;
}

// ---- the method -------------------------------------------------------------

AnalyzeOptions analyze_options(const ValueMap& given) {
  const ValueMap o = resolve_options(GeneratingResamplingMethod(), given);
  const auto integer = [&](const char* name) { return std::get<std::int64_t>(o.at(name)); };
  const auto real = [&](const char* name) { return std::get<double>(o.at(name)); };
  AnalyzeOptions a;
  a.num_rollouts = integer("num_rollouts");
  a.forced = std::get<bool>(o.at("forced"));
  if (integer("seed") < 0) throw Error("resampling: seed must be >= 0");
  a.seed = static_cast<std::uint64_t>(integer("seed"));
  a.temperature = real("temperature");
  a.top_p = real("top_p");
  a.min_p = real("min_p");
  a.repetition_penalty = real("repetition_penalty");
  a.max_tokens = integer("max_tokens");
  a.max_positions = integer("max_positions");
  a.batch = integer("batch");
  a.forced_max_tokens = integer("forced_max_tokens");
  for (const auto& [name, value] : resampling_scoring_options())
    if (const auto given = o.find(name); given != o.end()) a.scoring[name] = given->second;
  return a;
}

Attribution GeneratingResamplingMethod::generate_and_score(const Trace& trace, const Context& context) const {
  if (context.output_dir.empty())
    throw Error("resampling: the context has no output_dir (the folder of the resumable rollout store)");
  std::shared_ptr<const model::Tokenizer> tokenizer = context.tokenizer;
  if (!tokenizer && context.model) tokenizer = context.model->tokenizer();
  if (!tokenizer) throw Error("resampling: the context has no tokenizer (the token-id prompts need one)");
  AnalyzeOptions options = analyze_options(context.options);
  options.outcome = method_outcome(context, trace);
  options.control = context.control;
  return resample(*context.provider, *tokenizer, trace, context.output_dir, *context.similarity, options)
      .result.attributions.front();
}

}  // namespace anchors::rollout
