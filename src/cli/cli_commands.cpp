#include "cli_commands.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/attribution.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/function_tags.h"
#include "anchors/core/embedder.h"
#include "anchors/core/reference_import.h"
#include "anchors/core/reference_schema.h"
#include "anchors/core/report.h"
#include "anchors/core/study_report.h"
#include "anchors/core/outcome.h"
#include "anchors/core/resampling_metrics.h"
#include "anchors/core/rollouts.h"
#include "anchors/methods/resampling.h"
#include "anchors/core/segmentation.h"
#include "anchors/core/utf8.h"
#include "anchors/methods/registry.h"
#include "cli_args.h"
#include "progress_line.h"

namespace anchors::cli {
namespace {
using json = nlohmann::json;

// ---------------------------------------------------------------- segment
const char* kSegmentUsage =
    "usage: anchors segment FILE|- [options]\n\n"
    "Split a reasoning trace into sentences (the reference chunker's rules) and print a JSON\n"
    "list of {\"index\", \"text\", \"char_start\", \"char_end\"} (Unicode code point offsets\n"
    "into the input text).\n\n"
    "options:\n"
    "  --whole-text               segment the whole input, not just <think>...</think>\n"
    "  --no-paragraphs            do not split at blank lines\n"
    "  --terminators CHARS        sentence terminators (default \".?!\")\n"
    "  --merge-shorter-than N     merge chunks shorter than N code points (default 10, 0: off)\n"
    "  --drop-shorter-than N      drop chunks shorter than N code points (default 4, 0: off)\n";

int run_segment(const std::vector<std::string>& raw, std::istream& in, std::ostream& out, std::ostream&) {
  Args args(raw, {"whole-text", "no-paragraphs"},
            {"terminators", "merge-shorter-than", "drop-shorter-than"});
  args.expect_positionals(1, "one input FILE or -");
  SegmentOptions options;
  options.think_only = !args.flag("whole-text");
  options.split_paragraphs = !args.flag("no-paragraphs");
  options.sentence_terminators = args.option_or("terminators", options.sentence_terminators);
  const long merge = args.integer_or("merge-shorter-than", static_cast<long>(options.merge_shorter_than));
  const long drop = args.integer_or("drop-shorter-than", static_cast<long>(options.drop_shorter_than));
  if (merge < 0 || drop < 0) throw UsageError("lengths must be >= 0");
  options.merge_shorter_than = static_cast<std::size_t>(merge);
  options.drop_shorter_than = static_cast<std::size_t>(drop);

  const std::string& path = args.positionals()[0];
  const std::string text = read_input(path, in);
  if (!utf8::is_valid(text))
    throw Error(fmt::format("{}: input is not valid UTF-8 text", path == "-" ? "<stdin>" : path));
  json list = json::array();
  utf8::Cursor offsets(text);  // spans come in order: one pass over the text
  for (const Sentence& s : split_sentences(text, options)) {
    list.push_back({{"index", s.index},
                    {"text", s.text},
                    {"char_start", offsets.codepoint_offset(s.chars.begin)},
                    {"char_end", offsets.codepoint_offset(s.chars.end)}});
  }
  out << list.dump(1) << "\n";
  return 0;
}

// ---------------------------------------------------------------- methods
int run_methods(const std::vector<std::string>& raw, std::istream&, std::ostream& out, std::ostream&) {
  Args args(raw, {"json"}, {});
  args.expect_positionals(0, "no arguments");
  const auto infos = methods();
  const auto needs_of = [](const MethodNeeds& n) {
    std::vector<std::string> needs;
    if (n.model) needs.push_back("model");
    if (n.rollouts) needs.push_back("rollouts");
    if (n.similarity) needs.push_back("similarity");
    return needs;
  };
  const auto doc_of = [](const MethodInfo& m, const std::string& option) {
    const auto it = m.option_docs.find(option);
    return it == m.option_docs.end() ? std::string() : it->second;
  };
  if (args.flag("json")) {
    json list = json::array();
    for (const auto& m : infos) {
      json options = json::object(), docs = json::object();
      for (const auto& [k, v] : m.default_options) {
        options[k] = to_string(v);
        docs[k] = doc_of(m, k);
      }
      list.push_back({{"name", m.name}, {"description", m.description}, {"options", options},
                      {"option_docs", docs}, {"headline_scores", m.headline_scores}, {"needs", needs_of(m.needs)}});
    }
    out << list.dump(1) << "\n";
    return 0;
  }
  for (const auto& m : infos) {
    out << m.name << ": " << m.description << "\n";
    std::string needs, headline;
    for (const auto& n : needs_of(m.needs)) needs += (needs.empty() ? "" : ", ") + n;
    if (!m.headline_scores.empty()) headline = m.headline_scores.front();
    out << "  needs: " << (needs.empty() ? "nothing" : needs) << "; headline score: " << (headline.empty() ? "-" : headline)
        << "\n";
    for (const auto& [k, v] : m.default_options) {
      const std::string doc = doc_of(m, k);
      out << "    " << k << " = " << to_string(v) << (doc.empty() ? "" : "  (" + doc + ")") << "\n";
    }
  }
  return 0;
}


// ---------------------------------------------------------------- show / import
// A folder is read as the authors' reference layout; a file as our result JSON.
AnalysisResult load_any_result(const std::string& path) {
  if (directory_exists(path)) return import_reference_folder(path);
  return load_result(path);
}

// At most `width` code points of `text` on one line ("..." when cut).
std::string one_line(const std::string& text, std::size_t width) {
  // Newlines and whitespace runs become single spaces: one sentence, one line.
  std::string flat;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\r' || c == '\t';
    if (space && (flat.empty() || flat.back() == ' ')) continue;
    flat += space ? ' ' : c;
  }
  while (!flat.empty() && flat.back() == ' ') flat.pop_back();
  if (utf8::length(flat) <= width) return flat;
  return flat.substr(0, utf8::byte_offset(flat, width > 3 ? width - 3 : 0)) + "...";
}

const char* kShowUsage =
    "usage: anchors show RESULT.json|REFERENCE_DIR [options]\n\n"
    "Print a trace's sentences with their function tags and importance, and its top anchors.\n"
    "REFERENCE_DIR is a problem folder of the authors' published results (base_solution.json,\n"
    "chunks_labeled.json, ...); RESULT.json is a result written by this library.\n\n"
    "options:\n"
    "  --method NAME   attribution to show (default: the first with the score)\n"
    "  --score NAME    per-sentence score (default counterfactual_importance_kl when present)\n"
    "  --top K         how many top anchors to list (default 10)\n"
    "  --width N       sentence text width in characters (default 100)\n";

int run_show(const std::vector<std::string>& raw, std::istream&, std::ostream& out, std::ostream&) {
  Args args(raw, {}, {"method", "score", "top", "width"});
  args.expect_positionals(1, "one RESULT.json or REFERENCE_DIR");
  const AnalysisResult result = load_any_result(args.positionals()[0]);
  const Trace& trace = result.trace;
  const long top = args.integer_or("top", 10), width = args.integer_or("width", 100);
  if (top < 0 || width < 10) throw UsageError("--top must be >= 0 and --width >= 10");

  // The series to show: explicit, else the method's headline (registry.h's choose_score).
  const auto [method_name, score] =
      choose_score(result, args.option_or("method", ""), args.option_or("score", ""));
  const Attribution* attribution = method_name.empty() ? nullptr : &result.attribution(method_name);

  const auto meta = [&](const char* key) {
    auto it = trace.metadata.find(key);
    return it == trace.metadata.end() ? std::string() : it->second;
  };
  out << fmt::format("{}{} sentences, answer {}{}\n", meta("problem_id").empty() ? "" : meta("problem_id") + ": ",
                     trace.sentences.size(), trace.answer.empty() ? "(none)" : trace.answer,
                     meta("is_correct").empty() ? "" : (meta("is_correct") == "true" ? " (correct)" : " (incorrect)"));
  if (!meta("problem").empty()) out << "problem: " << one_line(meta("problem"), static_cast<std::size_t>(width)) << "\n";
  std::vector<double> values(trace.sentences.size(), std::numeric_limits<double>::quiet_NaN());
  if (attribution) {
    values = attribution->score(score);
    out << fmt::format("importance: {} ({})\n", score, attribution->method);
  } else {
    out << "importance: none (the result holds no per-sentence scores)\n";
  }
  double scale = 0.0;
  for (double v : values)
    if (std::isfinite(v)) scale = std::max(scale, std::fabs(v));
  out << fmt::format("\n{:>4} {:>9} {:<10} {:<24} {}\n", "#", "score", "", "tags", "sentence");
  for (std::size_t i = 0; i < trace.sentences.size(); ++i) {
    const Sentence& s = trace.sentences[i];
    const double v = values[i];
    std::string tags;
    for (const auto& t : s.tags) tags += (tags.empty() ? "" : ",") + t;
    const std::size_t bar = (std::isfinite(v) && scale > 0) ? static_cast<std::size_t>(std::lround(10 * std::fabs(v) / scale)) : 0;
    out << fmt::format("{:>4} {:>9} {:<10} {:<24} {}\n", s.index, std::isfinite(v) ? fmt::format("{:.4f}", v) : "-",
                       std::string(bar, '#'), one_line(tags, 24), one_line(s.text, static_cast<std::size_t>(width)));
  }
  if (attribution && top > 0) {
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < values.size(); ++i)
      if (std::isfinite(values[i])) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return values[a] > values[b]; });
    if (order.size() > static_cast<std::size_t>(top)) order.resize(static_cast<std::size_t>(top));
    out << fmt::format("\ntop {} anchors by {}:\n", order.size(), score);
    for (std::size_t rank = 0; rank < order.size(); ++rank) {
      const Sentence& s = trace.sentences[order[rank]];
      std::string tags;
      for (const auto& t : s.tags) tags += (tags.empty() ? "" : ",") + t;
      out << fmt::format("{:>3}. #{:<4} {:.4f} [{}] {}\n", rank + 1, s.index, values[order[rank]], tags,
                         one_line(s.text, static_cast<std::size_t>(width)));
    }
  }
  return 0;
}

const char* kImportUsage =
    "usage: anchors import REFERENCE_DIR -o RESULT.json\n\n"
    "Convert a problem folder of the authors' published results into this library's result JSON\n"
    "(trace, sentences with tags, the resampling metrics and matrices).\n";

int run_import(const std::vector<std::string>& raw, std::istream&, std::ostream& out, std::ostream&) {
  Args args(raw, {}, {"o", "output"});
  args.expect_positionals(1, "one REFERENCE_DIR");
  const auto path = args.option("output") ? args.option("output") : args.option("o");
  if (!path) throw UsageError("missing -o/--output RESULT.json");
  const AnalysisResult result = import_reference_folder(args.positionals()[0]);
  save_result(result, *path);
  out << fmt::format("wrote {} ({} sentences, methods:", *path, result.trace.sentences.size());
  for (const auto& a : result.attributions) out << " " << a.method;
  out << ")\n";
  return 0;
}


// ---------------------------------------------------------------- report
const char* kReportUsage =
    "usage: anchors report RESULT.json|REFERENCE_DIR -o REPORT.html [options]\n\n"
    "Write a self-contained interactive HTML report (one file, no network access): the chain of\n"
    "thought coloured by importance and tagged by function, a switch between score series, the top\n"
    "anchors, every matrix as a heatmap, receiver-head scores, and per sentence its scores, resampled\n"
    "alternatives and strongest links. A REFERENCE_DIR holding chunks_resampled.json supplies the\n"
    "alternatives itself.\n\n"
    "options:\n"
    "  -o, --output FILE      the HTML file to write\n"
    "  --rollouts DIR         resampled alternatives: a rollout problem folder (chunk_i/solutions.json),\n"
    "                         a reference folder or a chunks_resampled.json file\n"
    "  --title T              page title (default: \"Thought anchors - <problem id>\")\n"
    "  --method NAME          method of the score series shown first\n"
    "  --score NAME           score series shown first (default counterfactual_importance_kl when present)\n"
    "  --top K                length of the top-anchors list (default 10)\n"
    "  --max-alternatives N   distinct alternatives listed per sentence (default 12)\n"
    "  --max-links N          strongest links listed per sentence and matrix (default 5)\n";

int run_report(const std::vector<std::string>& raw, std::istream&, std::ostream& out, std::ostream&) {
  Args args(raw, {},
            {"o", "output", "rollouts", "title", "method", "score", "top", "max-alternatives", "max-links"});
  args.expect_positionals(1, "one RESULT.json or REFERENCE_DIR");
  const auto path = args.option("output") ? args.option("output") : args.option("o");
  if (!path) throw UsageError("missing -o/--output REPORT.html");
  const std::string input = args.positionals()[0];
  ReportOptions options;
  options.title = args.option_or("title", "");
  options.method = args.option_or("method", "");
  options.score = args.option_or("score", "");
  const long top = args.integer_or("top", 10), alternatives = args.integer_or("max-alternatives", 12),
             links = args.integer_or("max-links", 5);
  if (top < 0 || alternatives < 0 || links < 0)
    throw UsageError("--top, --max-alternatives and --max-links must be >= 0");
  options.top_anchors = static_cast<std::size_t>(top);
  options.max_alternatives = static_cast<std::size_t>(alternatives);
  options.max_links = static_cast<std::size_t>(links);

  const AnalysisResult result = load_any_result(input);
  std::string source = args.option_or("rollouts", "");
  if (source.empty() && directory_exists(input) && file_exists(input + "/chunks_resampled.json")) source = input;
  if (!source.empty()) options.alternatives = read_alternatives(source, result.trace);
  write_report_html(result, *path, options);
  std::size_t matrices = 0;
  for (const auto& a : result.attributions) matrices += a.matrices.size();
  out << fmt::format("wrote {} ({} sentences, {} methods, {} matrices, alternatives for {} sentences)\n", *path,
                     result.trace.sentences.size(), result.attributions.size(), matrices,
                     options.alternatives.size());
  return 0;
}

// ---------------------------------------------------------------- study
// `anchors study run` orchestrates many problems, models and machines (Ray),
// which lives in the Python package (thought_anchors/study_runner.py): its
// console script `anchors` handles `study` before this table is consulted.
// This entry lists the command and explains where it is when the C++
// executable is run directly.
const char* kStudyUsage =
    "usage: anchors study run CONFIG [--ray | --ray-address ADDR] [--new-run] [--quiet]\n\n"
    "Run (or resume) a study: every problem of CONFIG (YAML or TOML, docs/studies.md \"Running a\n"
    "study\") with every model and method, in one process or on a Ray cluster, into one study folder\n"
    "(study.json, progress.json, the authors' layout per model and problem).\n\n"
    "It is part of the Python package: run the `anchors` that `pip install .` puts on PATH, or\n"
    "`python -m thought_anchors study run CONFIG`.\n";

int run_study(const std::vector<std::string>&, std::istream&, std::ostream&, std::ostream&) {
  throw Error(
      "anchors study is part of the Python package (it orchestrates Ray and the problem sources): "
      "run the `anchors` installed by `pip install .`, or `python -m thought_anchors study run CONFIG`");
}

// ---------------------------------------------------------------- study-report
const char* kStudyReportUsage =
    "usage: anchors study-report ROOT -o DIR [options]\n\n"
    "Write a study's HTML index: every analysed trace under ROOT (folders with result.json, or the\n"
    "authors' layout) as a row -- model, problem, base kind, level, type, sentences and the trace's\n"
    "mean of every score, sortable by any column -- linking to each trace's own report, and the mean\n"
    "score by function tag with bootstrap intervals over problems (plain and position-debiased) as\n"
    "inline SVG (docs/studies.md). Writes DIR/index.html and DIR/traces/trace_<k>.html.\n\n"
    "options:\n"
    "  -o, --output DIR       the report folder\n"
    "  --title T              page title (default: \"Thought anchors study - <ROOT's name>\")\n"
    "  --score NAME           the figures' score (default counterfactual_importance_kl when present)\n"
    "  --resamples N          bootstrap resamples (default 1000)\n"
    "  --seed N               bootstrap seed (default 0)\n";

int run_study_report(const std::vector<std::string>& raw, std::istream&, std::ostream& out, std::ostream&) {
  Args args(raw, {}, {"o", "output", "title", "score", "resamples", "seed"});
  args.expect_positionals(1, "one ROOT folder");
  const auto dir = args.option("output") ? args.option("output") : args.option("o");
  if (!dir) throw UsageError("missing -o/--output DIR");
  StudyReportOptions options;
  options.title = args.option_or("title", "");
  options.score = args.option_or("score", "");
  const long resamples = args.integer_or("resamples", 1000), seed = args.integer_or("seed", 0);
  if (resamples < 0 || seed < 0) throw UsageError("--resamples and --seed must be >= 0");
  options.aggregate.resamples = static_cast<std::size_t>(resamples);
  options.aggregate.seed = static_cast<std::uint64_t>(seed);
  const StudyReportSummary written = write_study_report(args.positionals()[0], *dir, options);
  out << fmt::format("wrote {} ({} traces, figures of {})\n", written.index, written.traces, written.score);
  return 0;
}

// ---------------------------------------------------------------- metrics
const char* kMetricsUsage =
    "usage: anchors metrics PROBLEM_DIR --similarities FILE [options]\n\n"
    "Compute the resampling metrics of a rollout folder in the authors' math-rollouts layout\n"
    "(problem.json, base_solution.json, chunks.json, chunk_i/solutions.json and the\n"
    "<...>_forced_answer sibling) and write chunks_labeled.json, step_importance.json and\n"
    "summary.json in the reference schema, plus result.json in this library's format.\n\n"
    "The counterfactual metrics compare sentences by embedding cosine similarity. The command\n"
    "line takes them precomputed (from Python, pass thought_anchors.Embedder instead):\n"
    "  --similarities FILE   JSON list of [sentence_a, sentence_b, cosine] triples\n\n"
    "options:\n"
    "  --out DIR             output folder (default: PROBLEM_DIR)\n"
    "  --threshold T         similarity threshold tau (default 0.8)\n"
    "  --kl-alpha A          KL smoothing (default 1e-9)\n"
    "  --compat              reproduce the authors' code where its choices are arbitrary\n"
    "  --recompute-correctness  judge rollouts by comparing answers with gt_answer\n"
    "  --no-matrix           skip the sentence-to-sentence matrix\n"
    "  --no-forced           ignore forced-answer rollouts\n"
    "  --outcome SPEC        re-read every rollout with another outcome first (no new rollouts):\n"
    "                        boxed, regex:PATTERN or choice:ABCD (docs/outcomes.md)\n"
    "  --quiet               no progress on stderr\n";

int run_metrics(const std::vector<std::string>& raw, std::istream&, std::ostream& out, std::ostream& err) {
  Args args(raw, {"compat", "recompute-correctness", "no-matrix", "no-forced", "quiet"},
            {"out", "similarities", "threshold", "kl-alpha", "outcome"});
  args.expect_positionals(1, "one PROBLEM_DIR");
  const std::string dir = args.positionals()[0];
  const auto similarities = args.option("similarities");
  if (!similarities)
    throw UsageError(
        "the counterfactual metrics need sentence similarities: pass --similarities FILE "
        "(or use thought_anchors.resampling_metrics(rollouts, thought_anchors.Embedder.load(DIR)))");
  const std::string out_dir = args.option_or("out", dir);

  ReadRolloutsOptions read_options;
  read_options.read_forced = !args.flag("no-forced");
  auto read = read_problem_rollouts(dir, read_options);
  // Re-scoring with another outcome reads the rollouts again; nothing is generated.
  std::shared_ptr<const Outcome> outcome;
  if (const auto spec = args.option("outcome")) {
    outcome = outcome_from_spec(*spec);
    relabel_rollouts(read, *outcome);
  }
  const auto rollouts = std::make_shared<const ProblemRollouts>(std::move(read));

  const auto similarity = TableSimilarity::read_file(*similarities);
  const ValueMap method_options = {
      {"similarity_threshold", args.number_or("threshold", 0.8)},
      {"kl_alpha", args.number_or("kl-alpha", 1e-9)},
      {"compat", args.flag("compat")},
      {"correctness", std::string(args.flag("recompute-correctness") ? "recomputed" : "recorded")},
      {"compute_matrix", !args.flag("no-matrix")}};
  ResamplingMetricsOptions options = resampling_metrics_options(method_options);
  options.outcome = outcome;
  ProgressLine line(err, "metrics", args.flag("quiet"));
  options.control.progress = std::ref(line);
  const ResamplingMetrics metrics = compute_resampling_metrics(*rollouts, *similarity, options);
  line.finish();

  AnalysisResult result;
  result.trace = trace_from_rollouts(*rollouts, options.min_sentence_chars);
  Attribution attribution = resampling_attribution(result.trace, metrics, method_options);
  if (outcome) attribution.metadata["outcome"] = outcome->name();
  result.set_attribution(std::move(attribution));
  const ReferenceOutputs written = write_reference_outputs(*rollouts, metrics, out_dir);
  save_result(result, out_dir + "/result.json");
  out << fmt::format("{}: {} sentences; wrote chunks_labeled.json{} and result.json to {}\n", rollouts->problem_id,
                     written.chunks_labeled.size(),
                     written.summary ? ", step_importance.json, summary.json" : "", out_dir);
  return 0;
}


// ---------------------------------------------------------------- tag
const char* kTagUsage =
    "usage: anchors tag FILE|REFERENCE_DIR|- [options]\n\n"
    "Give every sentence of a trace one function tag (the paper's taxonomy, chosen by the learned\n"
    "tagger or the rules of docs/function-tags.md) and print a JSON list of {\"index\", \"text\", \"tag\",\n"
    "\"rule\"} (\"rule\" names the rule that chose the tag; \"learned\" for the learned tagger).\n\n"
    "FILE is a reasoning trace as text (segmented with the reference rules, <think> part only) or a\n"
    "result JSON written by this library (its sentences are kept). REFERENCE_DIR is a problem folder\n"
    "of the authors' published results: each entry then also has \"reference\", the authors' tag, and\n"
    "the agreement is printed to stderr.\n\n"
    "options:\n"
    "  --method M             learned (default: logistic regression over words, neighbours and the rules)\n"
    "                         or rules (cue phrases; the options below apply to the rules only)\n"
    "  --problem TEXT         the problem text (default: the result's metadata \"problem\", else its prompt)\n"
    "  --max-check-block N    sentences a verification may run before it is closed (default 30, 0: off)\n"
    "  --no-inherit           sentences without a cue are \"unknown\" instead of continuing the step before\n"
    "  --no-problem-text      do not compare sentences with the problem text\n"
    "  --table                print \"index  tag  rule  sentence\" lines instead of JSON\n"
    "  -o, --output FILE      also write the tagged trace as a result JSON (for `anchors show`)\n";

int run_tag(const std::vector<std::string>& raw, std::istream& in, std::ostream& out, std::ostream& err) {
  Args args(raw, {"no-inherit", "no-problem-text", "table"}, {"method", "problem", "max-check-block", "o", "output"});
  args.expect_positionals(1, "one FILE, REFERENCE_DIR or -");
  const std::string method = args.option("method").value_or("learned");
  const auto& methods = function_tag_methods();
  if (std::find(methods.begin(), methods.end(), method) == methods.end())
    throw UsageError("--method must be learned or rules (got '" + method + "')");
  FunctionTaggerOptions options;
  const long block = args.integer_or("max-check-block", static_cast<long>(options.max_check_block));
  if (block < 0) throw UsageError("--max-check-block must be >= 0");
  options.max_check_block = static_cast<std::size_t>(block);
  options.inherit_when_no_cue = !args.flag("no-inherit");
  options.use_problem_text = !args.flag("no-problem-text");

  const std::string& path = args.positionals()[0];
  AnalysisResult result;
  std::vector<std::string> reference;  // the authors' tags, for a reference folder
  if (path != "-" && directory_exists(path)) {
    result = import_reference_folder(path);
    for (const Sentence& s : result.trace.sentences) reference.push_back(s.tags.empty() ? "" : s.tags.front());
  } else {
    const std::string name = path == "-" ? "<stdin>" : path;
    const std::string text = read_input(path, in);
    const std::size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && text[first] == '{') {
      result = result_from_json(text, name);
    } else {
      if (!utf8::is_valid(text)) throw Error(fmt::format("{}: input is not valid UTF-8 text", name));
      result.trace.text = text;
      result.trace.sentences = split_sentences(text);
    }
  }
  if (const auto problem = args.option("problem")) result.trace.metadata["problem"] = *problem;
  const std::vector<FunctionTagDecision> decisions = tag_functions(result.trace, method, options);

  const Trace& trace = result.trace;
  std::size_t agree = 0;
  if (args.flag("table")) {
    for (std::size_t i = 0; i < trace.sentences.size(); ++i)
      out << fmt::format("{:>4}  {:<22}  {:<18}  {}{}\n", i, decisions[i].tag, decisions[i].rule,
                         reference.empty() ? "" : fmt::format("[{}] ", reference[i]),
                         one_line(trace.sentences[i].text, 100));
  }
  json list = json::array();
  for (std::size_t i = 0; i < trace.sentences.size(); ++i) {
    json entry = {{"index", i}, {"text", trace.sentences[i].text}, {"tag", decisions[i].tag},
                  {"rule", decisions[i].rule}};
    if (!reference.empty()) {
      entry["reference"] = reference[i];
      if (reference[i] == decisions[i].tag) ++agree;
    }
    list.push_back(std::move(entry));
  }
  if (!args.flag("table")) out << list.dump(1, ' ', false, json::error_handler_t::replace) << "\n";
  if (!reference.empty() && !trace.sentences.empty())
    err << fmt::format("agreement with the reference tags: {} of {} sentences ({:.1f}%)\n", agree,
                       trace.sentences.size(), 100.0 * static_cast<double>(agree) / trace.sentences.size());
  const auto output = args.option("output") ? args.option("output") : args.option("o");
  if (output) save_result(result, *output);
  return 0;
}

}  // namespace

std::vector<CliCommand> builtin_commands() {
  std::vector<CliCommand> commands;
  commands.push_back({"segment", "split a trace into sentences (JSON with character spans)", kSegmentUsage,
                      run_segment});
  commands.push_back({"methods", "list the registered attribution methods and their options",
                      "usage: anchors methods [--json]\n", run_methods});
  commands.push_back({"show", "print a trace's sentences with tags, importance and top anchors", kShowUsage,
                      run_show});
  commands.push_back({"import", "convert an authors' reference folder to a result JSON", kImportUsage, run_import});
  commands.push_back({"report", "write a self-contained interactive HTML report of a result", kReportUsage,
                      run_report});
  commands.push_back({"study", "run or resume a study config: problems x models x methods, optionally on Ray",
                      kStudyUsage, run_study});
  commands.push_back({"study-report", "the HTML index of a study: every trace, sortable, with by-tag figures",
                      kStudyReportUsage, run_study_report});
  commands.push_back({"metrics", "resampling metrics of a rollout folder, in the reference schema", kMetricsUsage,
                      run_metrics});
  commands.push_back({"tag", "give every sentence a function tag (learned or rule-based; JSON or a table)", kTagUsage,
                      run_tag});
  return commands;
}

}  // namespace anchors::cli
