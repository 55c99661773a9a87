// Trains the learned function tagger (include/anchors/core/learned_tagger.h)
// on the authors' labelled folders, prints how well it agrees with their labels
// on traces it was not trained on, and writes the weights file that the core
// library compiles in.
//
//   anchors_train_function_tagger --train ../shared/data/tagging
//       --heldout ../shared/data/reference
//       --out src/core/tagger/learned_tagger.weights
//       --predictions tests/data/function_tags/learned_predictions.txt   (one command line)
//
// --train holds <model>/<kind>/problem_N/ folders (each with problem.json,
// base_solution.json and chunks_labeled.json; the first function tag of a
// chunk is its label); --heldout the same layout for other traces. Prints:
//   1. leave-one-problem-out cross-validation on the --train traces (the
//      folds are the problems: both traces of problem_N are left out together)
//      and leave-one-trace-out (train on all traces but one);
//   2. the model trained on all --train traces on every --heldout model's
//      traces, marking held-out traces whose text is also a training trace;
//   3. the same for a model trained only on --train problems that none of the
//      held-out traces is about (held-out model and problem);
// each with accuracy, Cohen's kappa, macro-F1 and per-category
// precision / recall / F1, next to the rule-based tagger on the same traces.
// --select compares L2 strengths, transition weights and feature sets (each
// group left out in turn) by the leave-one-problem-out cross-validation
// alone (the held-out traces are not read for it). Deterministic: no random
// numbers, folders in sorted order.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/function_tags.h"
#include "anchors/core/learned_tagger.h"
#include "anchors/core/reference_import.h"

namespace fs = std::filesystem;
using namespace anchors;

namespace {

constexpr const char* kUsage =
    "usage: anchors_train_function_tagger --train DIR [--heldout DIR] [--out WEIGHTS] [--predictions FILE]\n"
    "                                     [--select] [--l2 X] [--transition-weight X] [--iterations N] [--min-count N] [--hash-bits N]\n"
    "                                     [--no-bigrams] [--no-shape] [--no-neighbours] [--position]\n"
    "                                     [--no-rules] [--no-problem-overlap] [--no-cv]\n";

struct Labelled {
  std::string name;     // <model>/<kind>/problem_N
  std::string model;    // <model>
  std::string problem;  // problem_N
  Trace trace;          // sentences carry the authors' tags
};

std::vector<Labelled> read_folders(const std::string& root) {
  std::vector<fs::path> dirs;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file() && e.path().filename() == "chunks_labeled.json") dirs.push_back(e.path().parent_path());
  std::sort(dirs.begin(), dirs.end());
  if (dirs.empty()) throw Error(root + ": no <model>/<kind>/problem_N/chunks_labeled.json folders");
  std::vector<Labelled> out;
  for (const fs::path& d : dirs) {
    Labelled l;
    l.name = fs::relative(d, root).generic_string();
    l.problem = d.filename().string();
    l.model = d.parent_path().parent_path().filename().string();
    l.trace = import_reference_folder(d.string()).trace;
    out.push_back(std::move(l));
  }
  return out;
}

std::string gold(const Sentence& s) { return s.tags.empty() ? "unknown" : s.tags.front(); }

// (gold, predicted) pairs and the figures made of them.
struct Pairs {
  std::vector<std::pair<std::string, std::string>> v;
  void add(const Trace& reference, const std::vector<FunctionTagDecision>& ours) {
    for (std::size_t i = 0; i < ours.size(); ++i) v.emplace_back(gold(reference.sentences[i]), ours[i].tag);
  }
  double accuracy() const {
    std::size_t hit = 0;
    for (const auto& [g, p] : v) hit += g == p;
    return v.empty() ? 0.0 : static_cast<double>(hit) / v.size();
  }
  double kappa() const {
    std::map<std::string, double> gn, pn;
    for (const auto& [g, p] : v) {
      ++gn[g];
      ++pn[p];
    }
    const double n = static_cast<double>(v.size());
    double expected = 0.0;
    for (const auto& [c, k] : gn) expected += k * (pn.count(c) ? pn.at(c) : 0.0);
    expected /= n * n;
    return expected < 1.0 ? (accuracy() - expected) / (1.0 - expected) : 0.0;
  }
  struct Row {
    std::string tag;
    std::size_t gold = 0, ours = 0, hits = 0;
    double precision() const { return ours ? static_cast<double>(hits) / ours : 0.0; }
    double recall() const { return gold ? static_cast<double>(hits) / gold : 0.0; }
    double f1() const {
      const double p = precision(), r = recall();
      return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
    }
  };
  std::vector<Row> rows() const {
    std::vector<Row> out;
    for (const std::string& tag : function_tag_names()) {
      Row r{tag};
      for (const auto& [g, p] : v) {
        r.gold += g == tag;
        r.ours += p == tag;
        r.hits += g == tag && p == tag;
      }
      if (r.gold || r.ours) out.push_back(r);
    }
    return out;
  }
  double macro_f1() const {
    double s = 0.0;
    std::size_t n = 0;
    for (const Row& r : rows())
      if (r.gold) {
        s += r.f1();
        ++n;
      }
    return n ? s / n : 0.0;
  }
  std::string summary() const {
    std::size_t hit = 0;
    for (const auto& [g, p] : v) hit += g == p;
    return fmt::format("accuracy {:.3f} ({} / {}), kappa {:.3f}, macro-F1 {:.3f}", accuracy(), hit, v.size(),
                       kappa(), macro_f1());
  }
  void print_table(const char* indent = "  ") const {
    fmt::print("{}{:<24} {:>7} {:>5} {:>9} {:>7} {:>5}\n", indent, "category", "authors", "ours", "precision",
               "recall", "F1");
    for (const Row& r : rows())
      fmt::print("{}{:<24} {:>7} {:>5} {:>9.2f} {:>7.2f} {:>5.2f}\n", indent, r.tag, r.gold, r.ours, r.precision(),
                 r.recall(), r.f1());
  }
};

std::vector<FunctionTagDecision> rules_on(const Trace& t) {
  Trace copy = t;
  return tag_trace(copy);
}
std::vector<FunctionTagDecision> learned_on(const Trace& t, const TaggerModel& m) {
  Trace copy = t;
  return tag_trace_learned(copy, m);
}

std::vector<Trace> traces_of(const std::vector<Labelled>& set, const std::function<bool(const Labelled&)>& keep) {
  std::vector<Trace> out;
  for (const Labelled& l : set)
    if (keep(l)) out.push_back(l.trace);
  return out;
}

// Cross-validation: folds by problem (grouped) or by trace. One model per
// fold; its tags are decoded once per transition weight in `weights`.
std::vector<Pairs> cross_validate(const std::vector<Labelled>& data, const TaggerTrainingOptions& o, bool by_problem,
                                  const std::vector<double>& weights) {
  std::vector<Pairs> pairs(weights.size());
  std::vector<std::string> folds;
  for (const Labelled& l : data) {
    const std::string key = by_problem ? l.problem : l.name;
    if (std::find(folds.begin(), folds.end(), key) == folds.end()) folds.push_back(key);
  }
  for (const std::string& fold : folds) {
    const auto in_fold = [&](const Labelled& l) { return (by_problem ? l.problem : l.name) == fold; };
    TaggerModel m = train_tagger(traces_of(data, [&](const Labelled& l) { return !in_fold(l); }), o);
    for (std::size_t k = 0; k < weights.size(); ++k) {
      m.transition_weight = static_cast<float>(weights[k]);
      for (const Labelled& l : data)
        if (in_fold(l)) pairs[k].add(l.trace, learned_on(l.trace, m));
    }
  }
  return pairs;
}

Pairs cross_validate(const std::vector<Labelled>& data, const TaggerTrainingOptions& o, bool by_problem) {
  return cross_validate(data, o, by_problem, {o.transition_weight}).front();
}

std::string describe(const TaggerTrainingOptions& o) {
  const TaggerFeatureSet& f = o.features;
  std::string on = "words";
  if (f.bigrams) on += "+bigrams";
  if (f.shape) on += "+shape";
  if (f.neighbours) on += "+neighbours";
  if (f.position) on += "+position";
  if (f.rules) on += "+rules";
  if (f.problem_overlap) on += "+overlap";
  return fmt::format("l2 {:g}, transition_weight {:g}, iterations {}, min_count {}, hash_bits {}, features {}", o.l2,
                     o.transition_weight, o.iterations, o.min_count, f.hash_bits, on);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(int argc, char** argv) {
  std::string train_root, heldout_root, out_path, predictions_path;
  bool select = false, cv = true;
  TaggerTrainingOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(a + " needs a value\n" + kUsage);
      return argv[++i];
    };
    if (a == "--train") train_root = value();
    else if (a == "--heldout") heldout_root = value();
    else if (a == "--out") out_path = value();
    else if (a == "--predictions") predictions_path = value();
    else if (a == "--select") select = true;
    else if (a == "--no-cv") cv = false;
    else if (a == "--l2") o.l2 = std::stod(value());
    else if (a == "--iterations") o.iterations = std::stoul(value());
    else if (a == "--transition-weight") o.transition_weight = std::stod(value());
    else if (a == "--min-count") o.min_count = std::stoul(value());
    else if (a == "--hash-bits") o.features.hash_bits = static_cast<std::uint32_t>(std::stoul(value()));
    else if (a == "--no-bigrams") o.features.bigrams = false;
    else if (a == "--no-shape") o.features.shape = false;
    else if (a == "--no-neighbours") o.features.neighbours = false;
    else if (a == "--no-position") o.features.position = false;
    else if (a == "--position") o.features.position = true;
    else if (a == "--no-rules") o.features.rules = false;
    else if (a == "--no-problem-overlap") o.features.problem_overlap = false;
    else if (a == "-h" || a == "--help") {
      fmt::print("{}", kUsage);
      return 0;
    } else {
      throw Error("unknown argument " + a + "\n" + kUsage);
    }
  }
  if (train_root.empty()) throw Error(std::string("--train is required\n") + kUsage);

  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Labelled> train = read_folders(train_root);
  std::size_t sentences = 0;
  for (const Labelled& l : train) sentences += l.trace.sentences.size();
  std::set<std::string> problems;
  for (const Labelled& l : train) problems.insert(l.problem);
  fmt::print("training data: {} traces, {} problems, {} sentences ({})\n", train.size(), problems.size(), sentences,
             train_root);

  if (select) {
    fmt::print("\n== selection by leave-one-problem-out cross-validation on the training traces only ==\n");
    std::vector<TaggerTrainingOptions> grid;
    for (double l2 : {3e-4, 1e-3, 3e-3, 1e-2, 3e-2}) {
      TaggerTrainingOptions g = o;
      g.l2 = l2;
      grid.push_back(g);
    }
    for (int drop = 0; drop < 6; ++drop) {
      TaggerTrainingOptions g = o;
      bool* flags[] = {&g.features.bigrams, &g.features.shape, &g.features.neighbours, &g.features.position,
                       &g.features.rules, &g.features.problem_overlap};
      *flags[drop] = !*flags[drop];  // each group switched: left out, or added (position)
      grid.push_back(g);
    }
    const std::vector<double> weights = {0.0, 0.25, 0.5, 0.75, 1.0};
    for (TaggerTrainingOptions g : grid) {
      const auto t = std::chrono::steady_clock::now();
      const std::vector<Pairs> p = cross_validate(train, g, /*by_problem=*/true, weights);
      for (std::size_t k = 0; k < weights.size(); ++k) {
        g.transition_weight = weights[k];
        fmt::print("  {:<100} {}\n", describe(g), p[k].summary());
      }
      fmt::print("  [{:.0f} s]\n", seconds_since(t));
      std::fflush(stdout);
    }
  }

  fmt::print("\nmodel: {}\n", describe(o));
  if (cv) {
    for (const bool by_problem : {true, false}) {
      const Pairs p = cross_validate(train, o, by_problem);
      fmt::print("\n== {} cross-validation on the training traces ==\n",
                 by_problem ? "leave-one-problem-out (10 folds: both traces of a problem held out)"
                            : "leave-one-trace-out (one fold per trace)");
      fmt::print("learned: {}\n", p.summary());
      p.print_table();
    }
    Pairs rules;
    for (const Labelled& l : train) rules.add(l.trace, rules_on(l.trace));
    fmt::print("rules on the same traces (no training involved): {}\n", rules.summary());
    rules.print_table();
  }

  const TaggerModel model = train_tagger(traces_of(train, [](const Labelled&) { return true; }), o);
  fmt::print("\nfinal model: trained on all {} training traces; {} feature rows, {} bytes\n", train.size(),
             model.rows.size(), model.serialize().size());

  if (!heldout_root.empty()) {
    const std::vector<Labelled> heldout = read_folders(heldout_root);
    std::set<std::string> train_texts, heldout_problems;
    for (const Labelled& l : train) train_texts.insert(l.trace.text);
    for (const Labelled& l : heldout) heldout_problems.insert(l.problem);
    const TaggerModel unseen_problems = train_tagger(
        traces_of(train, [&](const Labelled& l) { return heldout_problems.count(l.problem) == 0; }), o);
    std::size_t unseen_traces = 0;
    for (const Labelled& l : train) unseen_traces += heldout_problems.count(l.problem) == 0;
    std::map<std::string, std::vector<const Labelled*>> by_model;
    for (const Labelled& l : heldout) by_model[l.model].push_back(&l);
    for (const auto& [name, list] : by_model) {
      Pairs learned, learned_strict, rules;
      std::size_t in_training = 0;
      fmt::print("\n== held-out traces of {} ({}) ==\n", name, heldout_root);
      for (const Labelled* l : list) {
        const bool seen = train_texts.count(l->trace.text) != 0;
        in_training += seen;
        Pairs one, one_strict, one_rules;
        one.add(l->trace, learned_on(l->trace, model));
        one_strict.add(l->trace, learned_on(l->trace, unseen_problems));
        one_rules.add(l->trace, rules_on(l->trace));
        learned.v.insert(learned.v.end(), one.v.begin(), one.v.end());
        learned_strict.v.insert(learned_strict.v.end(), one_strict.v.begin(), one_strict.v.end());
        rules.v.insert(rules.v.end(), one_rules.v.begin(), one_rules.v.end());
        fmt::print("  {}{}: learned {:.3f}, learned (problem unseen) {:.3f}, rules {:.3f}\n", l->name,
                   seen ? " [IN THE TRAINING SET]" : "", one.accuracy(), one_strict.accuracy(),
                   one_rules.accuracy());
      }
      if (in_training) fmt::print("  ({} of these traces are training traces: the learned figures are in-sample)\n",
                                  in_training);
      fmt::print("learned, trained on all {} training traces: {}\n", train.size(), learned.summary());
      learned.print_table();
      fmt::print("learned, trained on the {} training traces of other problems: {}\n", unseen_traces,
                 learned_strict.summary());
      learned_strict.print_table();
      fmt::print("rules (written against the four reference traces): {}\n", rules.summary());
      rules.print_table();
    }
    if (!predictions_path.empty()) {
      // The final model's tags on the held-out traces, one line per trace:
      // "<name> <tag> <tag> ...", for the test that the compiled-in weights
      // reproduce them.
      std::string text;
      for (const Labelled& l : heldout) {
        text += l.name;
        for (const FunctionTagDecision& d : learned_on(l.trace, model)) text += " " + d.tag;
        text += "\n";
      }
      write_file_atomic(predictions_path, text);
      fmt::print("\nwrote the final model's tags on the held-out traces to {}\n", predictions_path);
    }
  }
  if (!out_path.empty()) {
    write_file_atomic(out_path, model.serialize());
    fmt::print("wrote {} ({} bytes)\n", out_path, model.serialize().size());
  }
  fmt::print("done in {:.0f} s\n", seconds_since(t0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "anchors_train_function_tagger: %s\n", e.what());
    return 1;
  }
}
