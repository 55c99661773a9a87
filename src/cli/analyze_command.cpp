#include "analyze_command.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include "anchors/cli.h"
#include "anchors/core/embedder.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/methods/registry.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/config.h"
#include "anchors/model/embedder.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/analyze.h"
#include "anchors/rollout/chat_judge.h"
#include "anchors/rollout/local_provider.h"
#include "anchors/rollout/openai_provider.h"
#include "black_box_setup.h"
#include "cli_args.h"
#include "model_commands.h"
#include "progress_line.h"

namespace anchors::cli {
namespace {
namespace fs = std::filesystem;

const char* kAnalyzeUsage =
    "usage: anchors analyze --model DIR --problem PROBLEM.json --out DIR [--rollouts N] [--forced]\n"
    "                       [--seed S] [--base any|correct|incorrect] [--max-tokens N] [--batch N]\n"
    "                       [--embedder DIR] [--server URL] [--server-model NAME] [--temperature T]\n"
    "                       [--top-p P] [--threshold TAU] [--device cpu|cuda] [--dtype T] [--quiet]\n"
    "                       [--outcome boxed|regex:PATTERN|choice:ABCD|judge:URL] [--judge-model NAME]\n"
    "                       [--judge-prompt TEXT] [--judge-labels yes,no]\n\n"
    "The black-box method end to end (docs/design.md §3): generate a base trace for the problem, split it\n"
    "into sentences, resample N continuations from before every sentence (and, with --forced, force\n"
    "an answer after each prefix), then compute the resampling metrics with all-MiniLM-L6-v2 and\n"
    "write the math-rollouts folder (OUT/<correct|incorrect>_base_solution/problem_ID), the\n"
    "reference files (chunks_labeled.json, step_importance.json, summary.json) and result.json.\n"
    "An interrupted run resumes: run the same command again.\n\n"
    "  --model DIR        checkpoint folder (its tokenizer.json is used also with --server)\n"
    "  --problem FILE     {\"problem\": ..., \"gt_answer\": ...} (a math-rollouts problem.json), or a\n"
    "                     scenario file (docs/thought-branches.md): its prompt, target and outcome\n"
    "  --out DIR          output root\n"
    "  --rollouts N       rollouts per sentence (default 100)\n"
    "  --forced           also the forced-answer rollouts\n"
    "  --seed S           base seed (default 0); the same seed regenerates the same rollouts\n"
    "  --base KIND        any (default), correct or incorrect: regenerate the base trace until it is\n"
    "  --max-tokens N     new tokens per rollout (default 16384, capped by the model's positions)\n"
    "  --batch N          rollouts per request (default 25)\n"
    "  --temperature T    (default 0.6)   --top-p P  (default 0.95)\n"
    "  --threshold TAU    cosine below which a resampled sentence is different (default 0.8)\n"
    "  --embedder DIR     all-MiniLM-L6-v2 folder (default $ANCHORS_MINILM_DIR)\n"
    "  --similarity judge:URL  a chat model judges sentence similarity instead of MiniLM\n"
    "                     (--similarity-model NAME, --similarity-prompt P with {a} and {b})\n"
    "  --server URL       use an OpenAI-compatible server (vLLM, `anchors serve`) instead of the\n"
    "                     local model; --server-model NAME is the request's model (default the\n"
    "                     --model folder's name). URL,URL,...: a pool of servers of that model\n"
    "  --device D, --dtype T   local model placement (default cuda/bfloat16 when available, else\n"
    "                     cpu/float32)\n"
    "  --outcome SPEC     what a rollout ended in, compared with the problem's gt_answer\n"
    "                     (docs/outcomes.md): boxed (default, \\boxed{} answers), regex:PATTERN (group 1\n"
    "                     of the last match), choice:ABCD (multiple choice), judge:URL (a chat model at an\n"
    "                     OpenAI-compatible server; --judge-model, --judge-prompt with {text},\n"
    "                     --judge-labels comma-separated allowed answers)\n"
    "  --quiet            no progress on stderr\n"
    "Every option of the resampling method (`anchors methods`) is also a flag of its own name, e.g.\n"
    "  --min_p 0.05  --repetition_penalty 1.1  --forced_max_tokens 64  --kl_alpha 1e-6  --compat true\n";

Problem read_problem_file(const std::string& path) {
  const std::string text = read_text_file(path, kDataFileLimit);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: not valid JSON ({})", path, e.what()));
  }
  if (!doc.is_object()) throw Error(fmt::format("{}: expected a JSON object {{\"problem\": ..., \"gt_answer\": ...}}", path));
  // A scenario file (docs/thought-branches.md "Scenario files"): the authors' scenario.json fields.
  if (!doc.contains("problem") &&
      (doc.contains("system_prompt") || doc.contains("user_prompt") || doc.contains("conversation_history")))
    return parse_scenario(text, path);
  const auto field = [&](const char* key, bool required) -> std::string {
    if (!doc.contains(key) || doc[key].is_null()) {
      if (required) throw Error(fmt::format("{}: no \"{}\" field (expected {{\"problem\": ..., \"gt_answer\": ...}})", path, key));
      return {};
    }
    if (doc[key].is_string()) return doc[key].get<std::string>();
    if (doc[key].is_number()) return doc[key].dump();
    throw Error(fmt::format("{}: \"{}\" must be a string", path, key));
  };
  Problem p;
  p.text = field("problem", true);
  if (p.text.empty()) throw Error(fmt::format("{}: \"problem\" is empty", path));
  p.gt_answer = field("gt_answer", false);
  p.gt_solution = field("gt_solution", false);
  p.level = field("level", false);
  p.type = field("type", false);
  p.nickname = field("nickname", false);
  return p;
}

// The short flags of the usage above and the method options they stand for.
constexpr std::pair<const char*, const char*> kAliases[] = {
    {"rollouts", "num_rollouts"}, {"max-tokens", "max_tokens"}, {"top-p", "top_p"}, {"threshold", "similarity_threshold"}};

// The resampling method's options from the command line: every option of
// `anchors methods` as --NAME VALUE (--forced as a flag), the short aliases,
// checked like the method checks them (rollout::analyze_options).
rollout::AnalyzeOptions analyze_options_from(const Args& args, const ValueMap& defaults) {
  ValueMap given;
  for (const auto& [name, value] : defaults)
    if (const auto text = args.option(name)) given[name] = parse_option_value(name, *text, value);
  for (const auto& [alias, name] : kAliases) {
    const auto text = args.option(alias);
    if (!text) continue;
    if (given.count(name)) throw UsageError(fmt::format("give --{} or --{}, not both", alias, name));
    given[name] = parse_option_value(alias, *text, defaults.at(name));
  }
  if (args.flag("forced")) given["forced"] = true;
  for (const char* name : {"num_rollouts", "batch", "max_tokens", "forced_max_tokens"}) {
    const auto it = given.find(name);
    if (it != given.end() && std::get<std::int64_t>(it->second) < 1) {
      std::string flag = std::string("--") + name;
      for (const auto& [alias, target] : kAliases)
        if (target == std::string(name) && args.option(alias)) flag = std::string("--") + alias;
      throw UsageError(fmt::format("{} must be >= 1, got {}", flag, std::get<std::int64_t>(it->second)));
    }
  }
  if (const auto seed = given.find("seed"); seed != given.end() && std::get<std::int64_t>(seed->second) < 0)
    throw UsageError(fmt::format("--seed expects a non-negative integer, got {}", std::get<std::int64_t>(seed->second)));
  try {
    return rollout::analyze_options(given);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

int run_analyze(const std::vector<std::string>& raw, std::istream&, std::ostream& out, std::ostream& err) {
  const ValueMap defaults = make_method("resampling")->default_options();
  std::set<std::string> names = black_box_option_names();
  names.insert({"problem", "out", "base"});
  for (const auto& [name, value] : defaults)
    if (name != "forced") names.insert(name);
  for (const auto& [alias, name] : kAliases) names.insert(alias);
  Args args(raw, {"forced", "quiet"}, names);
  args.expect_positionals(0, "no positional arguments (use --model DIR --problem FILE --out DIR)");
  if (!args.option("model")) throw UsageError("--model DIR is required");
  const auto problem_path = args.option("problem");
  if (!problem_path) throw UsageError("--problem PROBLEM.json is required");
  const auto out_root = args.option("out");
  if (!out_root) throw UsageError("--out DIR is required");

  rollout::AnalyzeOptions options = analyze_options_from(args, defaults);
  options.base = args.option_or("base", "any");
  if (options.base != "any" && options.base != "correct" && options.base != "incorrect")
    throw UsageError(fmt::format("--base {}: expected any, correct or incorrect", options.base));

  const Problem problem = read_problem_file(*problem_path);
  BlackBoxSetup setup = black_box_setup(args, "analyze", /*similarity=*/true);
  // A scenario brings its own outcome unless --outcome says otherwise (null: \boxed{} answers).
  options.outcome = setup.outcome ? setup.outcome : rollout::scenario_outcome(problem);
  if (!args.option("max_positions")) options.max_positions = setup.max_positions;
  rollout::RolloutProvider* provider = setup.provider.get();
  const std::shared_ptr<const model::Tokenizer> tokenizer = setup.tokenizer;
  SentenceSimilarity& similarity = *setup.similarity;

  ProgressLine line(err, "analyze", args.flag("quiet"));
  options.control.progress = std::ref(line);
  CancelSignals signals;
  options.control.cancel = cancel_flag();
  rollout::AnalyzeResult done;
  try {
    done = rollout::analyze_problem(*provider, *tokenizer, problem, *out_root, similarity, options);
  } catch (...) {
    line.finish();
    throw;
  }
  line.finish();

  out << fmt::format("analyze: {} sentences, {} rollouts each{}; base solution {}{}\n", done.metrics.sentences.size(),
                     options.num_rollouts, options.forced ? " (and forced)" : "",
                     done.base_reused ? "reused from disk" : "generated", fmt::format(", {} rollouts generated now", done.generated));
  out << fmt::format("  rollouts      {}\n", done.problem_dir);
  if (!done.forced_dir.empty()) out << fmt::format("  forced        {}\n", done.forced_dir);
  out << fmt::format("  metrics       {}/chunks_labeled.json, step_importance.json, summary.json\n", done.problem_dir);
  out << fmt::format("  result        {}\n", done.result_path);
  if (done.failed > 0)
    out << fmt::format("warning: {} requests failed (error records); run the command again to retry them\n", done.failed);

  const auto& sentences = done.metrics.sentences;
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < sentences.size(); ++i)
    if (std::isfinite(sentences[i].counterfactual_importance_kl)) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return sentences[a].counterfactual_importance_kl > sentences[b].counterfactual_importance_kl;
  });
  if (order.size() > 5) order.resize(5);
  out << fmt::format("top {} sentences by counterfactual_importance_kl:\n", order.size());
  for (std::size_t rank = 0; rank < order.size(); ++rank) {
    const auto& s = sentences[order[rank]];
    std::string text = s.text.substr(0, 80);
    for (char& c : text)
      if (c == '\n' || c == '\r') c = ' ';
    out << fmt::format("{:>3}. #{:<4} {:.4f}  {}\n", rank + 1, s.chunk_idx, s.counterfactual_importance_kl, text);
  }
  return done.failed > 0 ? 2 : 0;
}

}  // namespace

void register_analyze_command() {
  register_model_command({"analyze", "black-box resampling end to end: base trace, rollouts, metrics, results",
                        kAnalyzeUsage, run_analyze});
}

}  // namespace anchors::cli
