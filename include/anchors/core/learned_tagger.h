#pragma once
// The learned function tagger: a multinomial logistic regression (softmax
// with an L2 penalty) over hashed sparse features of each sentence, its
// neighbours, its position and the rule-based tagger's decision
// (function_tags.h), trained on the authors' labels. docs/function-tags.md
// ("The learned tagger") lists the features, the training data and command,
// and how well it agrees with the authors' labels on traces it was not
// trained on.
//
//   anchors::Trace trace = ...;                  // sentences from split_sentences
//   anchors::tag_trace_learned(trace);           // one tag per sentence in Sentence::tags
//   anchors::tag_functions(trace, "learned");    // the same (function_tags.h); "rules" for the rules
//
// The weights of the built-in model are compiled into the core library
// (src/core/tagger/learned_tagger.weights, written by the trainer
// tools/train_function_tagger.cpp), so tagging needs no model, no data file
// and no network. Weights trained on traces of DeepSeek-R1-Distill-Llama-8B
// labelled by the Thought Anchors authors (interp-reasoning/thought-anchors.com,
// MIT License, Copyright (c) 2025 interp-reasoning).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "anchors/core/function_tags.h"
#include "anchors/core/trace.h"

namespace anchors {

// Which feature groups a model uses. A model stores its set, so prediction
// computes exactly the features it was trained on. The defaults are the set
// of the built-in model, chosen by leave-one-problem-out cross-validation on
// the training traces (position did not help there and is off). Every feature is a name
// ("w:check", "rr:check-open", "pos:3") hashed with FNV-1a 64 into
// 2^hash_bits buckets; values are 1 (present) except the position value.
struct TaggerFeatureSet {
  // Lower-cased tokens of the sentence (letter words, numbers as "0", LaTeX
  // commands, single operator and punctuation characters), its first one,
  // two and three tokens and its last token. Always on.
  bool bigrams = true;           // + adjacent token pairs (with start/end markers)
  bool shape = true;             // word, number and operator counts (bucketed), '=', '?', ':' at the end, \boxed, LaTeX
  bool neighbours = true;        // tokens, opening tokens, shape (and rule tag) of the previous and next sentence
  bool position = false;         // position / size in tenths, first, last, and the position as a value in [0, 1]
  bool rules = true;             // tag_trace's tag and rule name (default FunctionTaggerOptions)
  bool problem_overlap = true;   // share of the sentence's content words found in the problem text, bucketed
  std::uint32_t hash_bits = 18;  // 1..30

  bool operator==(const TaggerFeatureSet& o) const {
    return bigrams == o.bigrams && shape == o.shape && neighbours == o.neighbours && position == o.position &&
           rules == o.rules && problem_overlap == o.problem_overlap && hash_bits == o.hash_bits;
  }
};

// One sentence's features: bucket indices ascending and unique, and their values.
struct SparseFeatures {
  std::vector<std::uint32_t> index;
  std::vector<float> value;
};

// The features of every sentence of `trace` (one entry per sentence). The
// problem text is metadata["problem"] when present, else the prompt.
// Cost: linear in the trace's bytes (plus one tag_trace when rules or
// neighbours are on). Never throws on any bytes.
std::vector<SparseFeatures> tagger_features(const Trace& trace, const TaggerFeatureSet& set);

// A trained model. Scores of sentence x for class c:
//   bias[c] + sum over the features f of x that have a row r (rows[r] == f)
//             of value(f) * weights[r * classes.size() + c];
// probabilities are their softmax. Features without a row (not seen in
// training) contribute nothing. The tags of a trace are then decoded jointly:
// the sequence y maximising
//   sum_i log p_i(y_i) + transition_weight * log T(y_i | y_{i-1})
// (Viterbi; T are the label transitions of the training traces, row 0 the
// first sentence), which favours the runs of one function the authors'
// labels have (a check goes on for several sentences). transition_weight 0:
// each sentence's most probable tag.
struct TaggerModel {
  TaggerFeatureSet features;
  std::vector<std::string> classes;  // tag names (the paper's eight, function_tag_names() order)
  std::vector<float> bias;           // [classes.size()]
  float transition_weight = 0.0f;    // >= 0
  std::vector<float> transitions;    // [(classes + 1) * classes] log T(to | from), from 0 = start; or empty
  std::vector<std::uint32_t> rows;   // feature buckets with weights, strictly ascending
  std::vector<float> weights;        // [rows.size() * classes.size()], row-major

  // Per sentence, the probability of each class (rows sum to 1), in
  // `classes` order, before the joint decoding. Cost: O(features of the
  // trace * log(rows) + S * classes).
  std::vector<std::vector<double>> probabilities(const Trace& trace) const;
  // The decoded class index per sentence for these probabilities (above).
  // Cost: O(S * classes^2).
  std::vector<std::size_t> decode(const std::vector<std::vector<double>>& probabilities) const;

  // The binary weights file (little-endian; magic "ANCHTAG1", version, the
  // feature set, the class names, bias, transitions, rows, weights) and back.
  // parse: anchors::Error "<name>: not a tagger model (...)" for a wrong
  // magic or version, a truncated file, trailing bytes, rows not ascending,
  // classes that are not function tags, hash_bits outside 1..30, a negative
  // transition weight or a transition table of the wrong size.
  std::string serialize() const;
  static TaggerModel parse(std::string_view bytes, const std::string& name);
  // parse() of a file (read_text_file with the 256 MiB model-file limit).
  static TaggerModel read(const std::string& path);

  bool operator==(const TaggerModel& o) const {
    return features == o.features && classes == o.classes && bias == o.bias &&
           transition_weight == o.transition_weight && transitions == o.transitions && rows == o.rows &&
           weights == o.weights;
  }
};

// The model compiled into the library (parsed once, on first use; thread-safe).
const TaggerModel& builtin_tagger_model();

struct TaggerTrainingOptions {
  TaggerFeatureSet features;
  // Weight of the L2 penalty (l2 / 2) * ||weights||^2 added to the mean
  // negative log-likelihood over the training sentences; the bias is not
  // penalised. The default was chosen by leave-one-problem-out
  // cross-validation on the training traces (docs/function-tags.md).
  double l2 = 3e-3;
  // L-BFGS (memory 10, backtracking line search) from all-zero weights,
  // stopped after this many iterations or when the largest gradient entry is
  // below 1e-6. No randomness: the same traces in the same order give the
  // same model, bit for bit, on one machine.
  std::size_t iterations = 300;
  // Feature buckets present in fewer training sentences than this get no row
  // (they carry little evidence and make the weights file larger).
  std::size_t min_count = 2;
  // TaggerModel::transition_weight of the model (0: no joint decoding).
  double transition_weight = 0.0;
};

// Trains a model on labelled traces: the label of a sentence is its first
// tag (sentences[i].tags[0], as in the authors' chunks_labeled.json);
// sentences without tags or whose first tag is not one of the eight
// categories are left out of the loss (they still serve as neighbours).
// anchors::Error when no sentence has a usable label or hash_bits is outside
// 1..30. Cost: features once, then per iteration O(nonzero features *
// classes) (about two seconds for the 20 training traces, 2,929 sentences).
TaggerModel train_tagger(const std::vector<Trace>& traces, const TaggerTrainingOptions& options = {});

// Replaces every sentence's tags with the decoded tag (TaggerModel: the
// jointly most probable sequence, or each sentence's most probable tag, ties
// to the earlier class) and returns the decisions, whose `rule` is "learned". Never
// throws on any bytes; an empty trace gives an empty list.
std::vector<FunctionTagDecision> tag_trace_learned(Trace& trace, const TaggerModel& model = builtin_tagger_model());

}  // namespace anchors
