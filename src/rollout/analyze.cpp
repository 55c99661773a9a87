#include "anchors/rollout/analyze.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "anchors/core/answers.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/reference_schema.h"
#include "anchors/core/segmentation.h"
#include "anchors/methods/resampling.h"
#include "anchors/model/prompt.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/rollout_store.h"
#include "rollout_batches.h"

namespace anchors::rollout {
namespace {
namespace fs = std::filesystem;

using detail::fnv1a64;
using detail::splitmix64;

std::uint64_t base_seed(std::uint64_t seed, std::int64_t attempt) {
  return splitmix64(splitmix64(seed ^ 0x6261736553454544ULL) + static_cast<std::uint64_t>(attempt));
}

// The text the reference keeps in chunks.json "solution_text": the reasoning
// (before </think> when the solution has one).
std::string solution_reasoning(const std::string& solution) {
  const auto end = solution.find("</think>");
  return end == std::string::npos ? solution : solution.substr(0, end);
}

std::vector<Sentence> base_sentences(const std::string& solution) {
  SegmentOptions options;
  options.drop_shorter_than = 0;  // chunks.json keeps every chunk; the analysis drops short ones
  return split_sentences(solution, options);
}

using detail::capped_max_tokens;

void check_options(const Problem& problem, const AnalyzeOptions& o) {
  if (problem.text.empty()) throw Error("analyze: the problem has no text (problem.json \"problem\")");
  detail::check_sampling("analyze", detail::sampling_settings(o), o.num_rollouts, o.max_tokens);
  if (o.forced_max_tokens < 1)
    throw Error(fmt::format("analyze: forced_max_tokens must be >= 1, got {}", o.forced_max_tokens));
  if (o.base_attempts < 1) throw Error(fmt::format("analyze: base_attempts must be >= 1, got {}", o.base_attempts));
  if (o.base != "any" && o.base != "correct" && o.base != "incorrect")
    throw Error(fmt::format("analyze: base must be \"any\", \"correct\" or \"incorrect\", got \"{}\"", o.base));
  if (o.base != "any" && problem.gt_answer.empty())
    throw Error(fmt::format("analyze: base \"{}\" needs the problem's gt_answer", o.base));
  if (!(o.similarity_threshold >= -1 && o.similarity_threshold <= 1))
    throw Error("analyze: similarity_threshold must be in [-1, 1]");
}

std::string kind_of(const std::optional<bool>& is_correct) {
  if (!is_correct) return "unknown";
  return *is_correct ? "correct" : "incorrect";
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

AnalyzeResult analyze_problem(RolloutProvider& provider, const model::Tokenizer& tokenizer, const Problem& problem,
                              const std::string& out_root, SentenceSimilarity& similarity,
                              const AnalyzeOptions& options) {
  check_options(problem, options);
  if (out_root.empty()) throw Error("analyze: empty output folder");
  const auto cancelled = [&] { return options.cancel && options.cancel->load(); };
  const auto check_cancel = [&] {
    if (cancelled()) throw Error("analyze: cancelled (run again to resume)");
  };
  const std::string name = problem_folder_name(problem);
  const std::string prompt =
      options.prompt.empty() ? model::render_prompt_text(model::PromptFormat::kRaw, problem.text) : options.prompt;
  const auto encode = [&](const std::string& text) { return tokenizer.encode(text, true).ids; };
  const std::shared_ptr<const Outcome> outcome =
      options.outcome ? options.outcome : std::make_shared<const BoxedAnswer>();

  AnalyzeResult out;
  // ---- 1-2. the base trace (reused when on disk)
  std::vector<std::string> kinds;
  if (options.base == "any") {
    kinds = {"correct", "incorrect", "unknown"};
  } else {
    kinds = {options.base};
  }
  for (const auto& kind : kinds) {
    const std::string dir = (fs::path(out_root) / (kind + "_base_solution") / name).string();
    RolloutStore store(dir);
    if (!store.has_problem()) continue;
    ReadRolloutsOptions read;
    read.read_forced = false;
    const ProblemRollouts existing = read_problem_rollouts(dir, read);
    if (existing.problem.text != problem.text)
      throw Error(fmt::format("analyze: {} holds another problem (\"{}\"); use another --out folder", dir,
                              existing.problem.text.substr(0, 60)));
    if (options.base_solution && existing.base_solution.solution != *options.base_solution)
      throw Error(fmt::format("analyze: {} holds another base solution of this problem; use another --out folder",
                              dir));
    out.problem_dir = dir;
    out.base_reused = true;
    break;
  }
  // A base solution as written to base_solution.json, with its sentences and
  // its folder kind ("correct" / "incorrect" / "unknown").
  struct Base {
    BaseSolution solution;
    std::vector<Sentence> sentences;
    std::string kind;
  };
  const auto make_base = [&](const std::string& text) {
    Base b;
    b.solution.prompt = prompt;
    b.solution.solution = text;
    b.solution.full_cot = prompt + text;
    Rollout labelled;
    detail::label_rollout(*outcome, text, problem.gt_answer, labelled);
    b.solution.answer = labelled.answer;
    b.solution.is_correct = labelled.is_correct;
    b.sentences = base_sentences(text);
    b.kind = kind_of(b.solution.is_correct);
    return b;
  };
  const auto write_base = [&](const Base& b) {
    out.problem_dir = (fs::path(out_root) / (b.kind + "_base_solution") / name).string();
    RolloutStore store(out.problem_dir);
    std::vector<std::string> chunks;
    for (const auto& s : b.sentences) chunks.push_back(s.text);
    store.write_problem(problem);
    store.write_base_solution(b.solution);
    store.write_chunks(b.solution.full_cot, solution_reasoning(b.solution.solution), chunks);  // last: marks the base complete
  };
  if (out.problem_dir.empty() && options.base_solution) {
    const Base b = make_base(*options.base_solution);
    if (b.sentences.empty()) throw Error("analyze: the given base solution has no sentences");
    if (options.base != "any" && b.kind != options.base)
      throw Error(fmt::format("analyze: the given base solution is {} (answer \"{}\"), not {}", b.kind,
                              b.solution.answer, options.base));
    write_base(b);
  } else if (out.problem_dir.empty()) {
    const auto ids = encode(prompt);
    const std::int64_t max_tokens = capped_max_tokens(options.max_tokens, ids.size(), options.max_positions);
    if (max_tokens < 1)
      throw Error(fmt::format("analyze: the prompt has {} tokens, which leaves no room in the model's {} positions",
                              ids.size(), options.max_positions));
    std::string last;
    for (std::int64_t attempt = 0; attempt < options.base_attempts; ++attempt) {
      check_cancel();
      CompletionRequest request;
      request.prompt_ids = ids;
      request.n = 1;
      request.temperature = options.temperature;
      request.top_p = options.top_p;
      request.max_tokens = max_tokens;
      request.seed = base_seed(options.seed, attempt);
      const auto completions = provider.complete(request);
      if (completions.empty()) throw Error(fmt::format("analyze: {} returned no completion", provider.name()));
      const Base b = make_base(completions.front().text);
      if (b.sentences.empty()) {
        last = "it has no sentences";
        continue;
      }
      if (options.base != "any" && b.kind != options.base) {
        last = fmt::format("it was {} (answer \"{}\")", b.kind, b.solution.answer);
        continue;
      }
      write_base(b);
      break;
    }
    if (out.problem_dir.empty())
      throw Error(fmt::format("analyze: no acceptable base solution in {} attempt(s) (the last: {})",
                              options.base_attempts, last));
  }

  RolloutStore store(out.problem_dir);
  store.remove_temp_files();
  ProblemRollouts base_data;
  {
    ReadRolloutsOptions read;
    read.read_forced = false;
    base_data = read_problem_rollouts(out.problem_dir, read);
  }
  const std::string& solution = base_data.base_solution.solution;
  const auto sentences = base_sentences(solution);
  {
    std::vector<std::string> texts;
    for (const auto& s : sentences) texts.push_back(s.text);
    if (texts != base_data.chunks)
      throw Error(fmt::format("analyze: {}/chunks.json does not match the segmentation of base_solution.json",
                              out.problem_dir));
  }
  if (base_data.base_solution.prompt != prompt)
    throw Error(fmt::format("analyze: {}/base_solution.json was made with another prompt", out.problem_dir));

  // ---- 3. rollouts, sentence by sentence, in batches
  const std::size_t wanted = static_cast<std::size_t>(options.num_rollouts);
  const std::vector<bool> passes = options.forced ? std::vector<bool>{false, true} : std::vector<bool>{false};
  AnalyzeProgress progress;
  progress.sentences_total = sentences.size();
  progress.rollouts_total = static_cast<std::int64_t>(wanted * sentences.size() * passes.size());
  std::int64_t remaining = 0;
  for (std::size_t i = 0; i < sentences.size(); ++i) {
    bool complete = true;
    for (bool forced : passes) {
      const std::size_t missing = store.missing(i, forced, wanted);
      remaining += static_cast<std::int64_t>(missing);
      if (missing > 0) complete = false;
    }
    if (complete) ++progress.sentences_done;
  }
  progress.rollouts_done = progress.rollouts_total - remaining;
  const auto started = std::chrono::steady_clock::now();
  detail::RolloutCounts counts;
  std::int64_t counted = 0;  // counts.generated already in progress.rollouts_done
  const auto report = [&](std::size_t sentence, bool forced) {
    progress.sentence = sentence;
    progress.forced = forced;
    progress.rollouts_generated = counts.generated;
    progress.failed = counts.failed;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    progress.rollouts_per_second =
        seconds > 0 && progress.rollouts_generated > 0 ? progress.rollouts_generated / seconds : 0.0;
    progress.eta_seconds = progress.rollouts_per_second > 0 ? remaining / progress.rollouts_per_second : 0.0;
    if (options.progress) options.progress(progress);
  };
  report(0, false);

  const detail::SamplingSettings sampling = detail::sampling_settings(options);
  for (std::size_t i = 0; i < sentences.size(); ++i) {
    const Sentence& sentence = sentences[i];
    bool had_work = false;
    for (bool forced : passes) {
      if (store.missing(i, forced, wanted) == 0) continue;
      had_work = true;
      detail::RolloutTask task;
      task.chunk = i;
      task.forced = forced;
      task.prefix = solution.substr(0, sentence.chars.begin);
      task.chunk_removed = sentence.text;
      task.stub = forced ? outcome->forced_stub() : std::string();
      task.head = prompt + task.prefix + task.stub;
      task.ids = encode(task.head);
      task.messages = {{"user", problem.text}, {"assistant", task.prefix + task.stub}};
      task.max_tokens = capped_max_tokens(forced ? options.forced_max_tokens : options.max_tokens, task.ids.size(),
                                         options.max_positions);
      task.no_room = fmt::format("the prompt of sentence {} has {} tokens, no room left in the model's {} positions",
                                 i, task.ids.size(), options.max_positions);
      detail::generate_missing(
          provider, store, task, sampling, *outcome, problem.gt_answer, options.num_rollouts,
          [&](std::int64_t b) { return rollout_batch_seed(options.seed, i, forced, b); }, counts, check_cancel,
          [&](std::int64_t samples) {
            remaining -= samples;
            progress.rollouts_done += counts.generated - counted;  // failed samples are not done
            counted = counts.generated;
            report(i, forced);
          });
    }
    if (had_work) {
      bool complete = true;
      for (bool forced : passes)
        if (store.missing(i, forced, wanted) > 0) complete = false;
      if (complete) ++progress.sentences_done;
      report(i, false);
    }
  }
  out.generated = counts.generated;
  // Failed requests stay on disk as error records for the next run to retry;
  // but a run in which every request failed is a provider that does not work.
  if (counts.generated == 0 && counts.failed > 0)
    throw Error(fmt::format("analyze: every request to {} failed ({} rollouts); the first failure: {}",
                            provider.name(), counts.failed, counts.first_failure));

  // ---- 4. metrics and results
  check_cancel();
  const ProblemRollouts rollouts = store.read();
  for (const auto& s : rollouts.resampled) out.failed += static_cast<std::int64_t>(s.num_errors);
  for (const auto& s : rollouts.forced) out.failed += static_cast<std::int64_t>(s.num_errors);
  if (rollouts.has_forced()) out.forced_dir = rollouts.forced_dir;
  ResamplingMetricsOptions metric_options;
  metric_options.similarity_threshold = options.similarity_threshold;
  metric_options.outcome = outcome;
  out.metrics = compute_resampling_metrics(rollouts, similarity, metric_options);
  ReferenceOutputOptions reference;
  reference.keep_labels = true;
  write_reference_outputs(rollouts, out.metrics, out.problem_dir, reference);

  out.result.trace = trace_from_rollouts(rollouts, metric_options.min_sentence_chars);
  Attribution attribution =
      resampling_attribution(out.result.trace, out.metrics, {{"similarity_threshold", options.similarity_threshold}});
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
  out.result_path = (fs::path(out.problem_dir) / "result.json").string();
  save_result(out.result, out.result_path);
  return out;
}

}  // namespace anchors::rollout
