// `anchors run METHOD` and its per-method aliases (`anchors receiver-heads`,
// `anchors suppression`, `anchors rhythm`, `anchors sentence-attention`): run a
// white-box method of the registry on one trace with a model and write the
// result JSON. The trace comes from a result file (its trace is reused and the
// new attribution added to it) or from a reasoning text plus its prompt.
#include "white_box_commands.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "anchors/cli.h"
#include "anchors/core/attribution.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/outcome.h"
#include "anchors/core/reference_schema.h"
#include "anchors/core/rollouts.h"
#include "anchors/core/segmentation.h"
#include "anchors/methods/builtins.h"
#include "anchors/methods/registry.h"
#include "anchors/methods/white_box.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/prompt.h"
#include "anchors/rollout/analyze.h"
#include "black_box_setup.h"
#include "cli_args.h"
#include "model_commands.h"
#include "progress_line.h"

namespace anchors::cli {
namespace {

std::string usage_for(const std::string& command, const std::string& method) {
  std::string text = fmt::format(
      "usage: anchors {} {}--model DIR\n"
      "       (--result RESULT.json | --text FILE (--problem TEXT | --prompt FILE | --scenario FILE))\n"
      "       [--out RESULT.json] [--<option> VALUE ...]\n"
      "       black-box methods also: --rollouts-dir DIR [--gt-answer A] [--server URL [--server-model NAME]]\n"
      "       [--embedder DIR | --similarity judge:URL] [--outcome SPEC [--judge-model M --judge-prompt P --judge-labels L]]\n\n",
      command, method.empty() ? "METHOD " : "");
  text +=
      "Run an attribution method on one trace and write the result JSON: a white-box method with the\n"
      "model at DIR (a Hugging Face checkpoint folder with tokenizer.json), a black-box method\n"
      "(resilience, resampling) with rollouts sampled from that model or from --server, kept in the\n"
      "resumable folder --rollouts-dir (run the same command again to resume).\n\n"
      "input (one of):\n"
      "  --result FILE    a result JSON: its trace is analysed and the new attribution is\n"
      "                   added to it (written back to FILE unless --out is given)\n"
      "  --text FILE      the generated reasoning (- for stdin), segmented into sentences;\n"
      "                   with --problem TEXT (rendered in the reference's raw prompt),\n"
      "                   --prompt FILE (the exact text the model saw before the reasoning) or\n"
      "                   --scenario FILE (a scenario file: its prompt, and its outcome for\n"
      "                   black-box methods; docs/thought-branches.md)\n\n"
      "options:\n"
      "  --out FILE       where to write the result (required with --text)\n"
      "  --dtype NAME     float32 (default), bfloat16 or float16\n"
      "  --device NAME    cpu (default) or cuda[:N]\n"
      "  --quiet          no progress on stderr\n"
      "black-box methods:\n"
      "  --rollouts-dir DIR  the resumable rollout folder (required)\n"
      "  --gt-answer A    the label the outcome rates count (default: the result's trace metadata)\n"
      "  --server URL     sample from an OpenAI-compatible server (URL,URL,...: a pool of them); --model DIR\n"
      "                   still gives the tokenizer\n"
      "  --embedder DIR   all-MiniLM-L6-v2 folder (default $ANCHORS_MINILM_DIR)\n"
      "  --similarity judge:URL  a chat model judges sentence similarity instead of MiniLM\n"
      "                   (--similarity-model NAME, --similarity-prompt P with {a} and {b})\n"
      "  --outcome SPEC   boxed (default), regex:PATTERN, choice:ABCD or judge:URL (docs/outcomes.md)\n\n";
  const auto describe = [&text](const MethodInfo& info) {
    text += fmt::format("{} options (defaults):\n", info.name);
    for (const auto& [name, value] : info.default_options) {
      const auto doc = info.option_docs.find(name);
      text += fmt::format("  --{:<18} {:<8} {}\n", name, to_string(value).empty() ? "\"\"" : to_string(value),
                          doc == info.option_docs.end() ? "" : doc->second);
    }
  };
  for (const MethodInfo& info : methods()) {
    if (!info.needs.model && !info.needs.rollouts) continue;
    if (method.empty() || info.name == method) describe(info);
  }
  return text;
}

int run_white_box(const std::string& command, std::string method, std::vector<std::string> raw, std::istream& in,
                  std::ostream& out, std::ostream& err) {
  if (method.empty()) {
    if (raw.empty() || raw.front().rfind("--", 0) == 0) throw UsageError("missing METHOD (see `anchors methods`)");
    method = raw.front();
    raw.erase(raw.begin());
  }
  const auto instance = make_method(method);
  // A method that generates rollouts takes the black-box flags; one that
  // also reads the model (head_ablation) gets the provider's local model, or
  // the --model checkpoint loaded on the CPU when the rollouts come from --server.
  const bool black_box = instance->needs().rollouts;
  if (!black_box && !instance->needs().model)
    throw UsageError(fmt::format("`anchors {}` runs methods that need a model or rollouts; {} needs neither", command,
                                 method));
  const ValueMap defaults = instance->default_options();

  std::set<std::string> options = {"model", "result", "text", "problem", "prompt", "scenario", "out", "dtype", "device"};
  if (black_box) {
    options.merge(std::set<std::string>(black_box_option_names()));
    options.insert({"rollouts-dir", "gt-answer"});
  }
  for (const auto& [name, value] : defaults) options.insert(name);
  Args args(raw, {"quiet"}, options);
  args.expect_positionals(0, "no positional arguments besides the method");
  const auto model_dir = args.option("model");
  if (!model_dir) throw UsageError("missing --model DIR");

  AnalysisResult result;
  std::string out_path = args.option_or("out", "");
  if (const auto path = args.option("result")) {
    if (args.option("text") || args.option("problem") || args.option("prompt") || args.option("scenario"))
      throw UsageError("give either --result or --text (with --problem, --prompt or --scenario), not both");
    result = load_result(*path);
    if (out_path.empty()) out_path = *path;
  } else if (const auto text_path = args.option("text")) {
    if (out_path.empty()) throw UsageError("missing --out RESULT.json");
    if ((args.option("problem") ? 1 : 0) + (args.option("prompt") ? 1 : 0) + (args.option("scenario") ? 1 : 0) != 1)
      throw UsageError("--text needs one of --problem TEXT, --prompt FILE or --scenario FILE");
    Trace& trace = result.trace;
    const std::string text = read_input(*text_path, in);
    if (const auto scenario_path = args.option("scenario")) {
      // As `anchors analyze --problem SCENARIO.json` makes its base trace: the
      // scenario's prompt, target and outcome travel in the trace.
      const Problem scenario = parse_scenario(read_text_file(*scenario_path, kDataFileLimit), *scenario_path);
      std::shared_ptr<const Outcome> outcome = rollout::scenario_outcome(scenario);
      if (!outcome) outcome = std::make_shared<const BoxedAnswer>();
      trace = rollout::base_trace_of(scenario, "", text, *outcome);
    } else {
      trace.text = text;
      if (const auto problem = args.option("problem")) {
        trace.prompt = model::render_prompt_text(model::PromptFormat::kRaw, *problem);
        trace.metadata["problem"] = *problem;
      } else {
        trace.prompt = read_text_file(*args.option("prompt"), kDataFileLimit);
      }
    }
    trace.sentences = split_sentences(trace.text);
    if (trace.sentences.empty()) throw Error(fmt::format("{}: no sentences in the reasoning text", *text_path));
  } else {
    throw UsageError("missing input: --result RESULT.json or --text FILE");
  }

  ValueMap given;
  for (const auto& [name, value] : defaults)
    if (const auto text = args.option(name)) given[name] = parse_option_value(name, *text, value);

  Context context;
  Attribution attribution;
  ProgressLine line(err, method, args.flag("quiet"));
  if (black_box) {
    const auto rollouts_dir = args.option("rollouts-dir");
    if (!rollouts_dir) throw UsageError(fmt::format("{} generates rollouts: missing --rollouts-dir DIR", method));
    if (const auto gt = args.option("gt-answer")) result.trace.metadata["gt_answer"] = *gt;
    BlackBoxSetup setup = black_box_setup(args, method, instance->needs().similarity);
    if (!given.count("max_positions") && defaults.count("max_positions")) given["max_positions"] = setup.max_positions;
    context.provider = setup.provider;
    if (instance->needs().model) context.model = setup.model ? setup.model : model::CausalLM::load(*model_dir);
    context.tokenizer = setup.tokenizer;
    context.similarity = setup.similarity;
    context.outcome = setup.outcome;
    context.output_dir = *rollouts_dir;
    context.options = given;
    context.control.progress = std::ref(line);
    CancelSignals signals;
    context.control.cancel = cancel_flag();
    try {
      attribution = instance->run(result.trace, context);
    } catch (...) {
      line.finish();
      throw;
    }
  } else {
    model::LoadOptions load;
    load.dtype = parse_dtype(args.option_or("dtype", "float32"));
    try {
      load.device = torch::Device(args.option_or("device", "cpu"));
    } catch (const std::exception&) {
      throw UsageError(fmt::format("--device must be like cpu or cuda:0, got \"{}\"", args.option_or("device", "")));
    }
    context.model = model::CausalLM::load(*model_dir, load);
    context.options = given;
    context.control.progress = std::ref(line);
    attribution = instance->run(result.trace, context);
  }
  line.finish();
  attribution.metadata["model"] = *model_dir;
  result.set_attribution(attribution);
  save_result(result, out_path);
  // A result in a folder of the web app's layout gets the authors' file of
  // its suppression matrix beside it, so the folder stays a drop-in data folder.
  const std::string folder = std::filesystem::path(out_path).parent_path().string();
  std::string supp;
  if (method == "attention_suppression" && file_exists((std::filesystem::path(folder) / "chunks_labeled.json").string()))
    supp = write_step_importance_supp(result, folder.empty() ? "." : folder);

  const std::string score = choose_score(result, method).second;
  const std::vector<double>& values = attribution.score(score);
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < values.size(); ++i)
    if (std::isfinite(values[i])) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return values[a] > values[b]; });
  const auto tokens = attribution.metadata.find("num_tokens");
  out << fmt::format("{}: {} sentences{}; wrote {}\n", method, result.trace.sentences.size(),
                     tokens == attribution.metadata.end() ? std::string()
                                                          : fmt::format(", {} tokens", to_string(tokens->second)),
                     out_path);
  out << fmt::format("top sentences by {}:\n", score);
  for (std::size_t rank = 0; rank < std::min<std::size_t>(5, order.size()); ++rank) {
    const Sentence& s = result.trace.sentences[order[rank]];
    std::string text = s.text.substr(0, 80);
    for (char& c : text)
      if (c == '\n') c = ' ';
    out << fmt::format("{:>3}. #{:<4} {:.4f}  {}\n", rank + 1, s.index, values[order[rank]], text);
  }
  if (!supp.empty()) out << fmt::format("wrote {} (the web app's suppression file)\n", supp);
  return 0;
}

struct Alias {
  const char* command;
  const char* method;
  const char* summary;
};

constexpr Alias kAliases[] = {
    {"sentence-attention", "sentence_attention", "white-box: S×S sentence attention of a trace (no T×T matrix)"},
    {"receiver-heads", "receiver_heads", "white-box: receiver heads and sentence receiver scores of a trace"},
    {"suppression", "attention_suppression", "white-box: the S×S attention-suppression log-KL matrix of a trace"},
    {"rhythm", "attention_rhythm", "white-box: WAAD / FAI per token, preplan and anchor tokens, γ weights"},
};

}  // namespace

void register_white_box_commands() {
  register_builtins();  // `anchors methods` and `run` see the white-box methods
  register_model_command({"run", "run a white-box method (see `anchors methods`) on a trace with a model",
                        usage_for("run", ""),
                        [](const std::vector<std::string>& a, std::istream& in, std::ostream& out, std::ostream& err) {
                          return run_white_box("run", "", a, in, out, err);
                        }});
  for (const Alias& alias : kAliases) {
    const std::string command = alias.command, method = alias.method;
    register_model_command({command, alias.summary, usage_for(command, method),
                          [command, method](const std::vector<std::string>& a, std::istream& in, std::ostream& out,
                                            std::ostream& err) { return run_white_box(command, method, a, in, out, err); }});
  }
}

}  // namespace anchors::cli
