// The learned function tagger: the compiled-in weights are the committed file
// and reproduce the trainer's tags, its agreement with the authors' labels on
// the reference traces stays above a regression floor, one tag per sentence
// whatever the input, the weights format, the trainer's determinism, and the
// method switch of tag_functions.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/function_tags.h"
#include "anchors/core/learned_tagger.h"
#include "anchors/core/reference_import.h"
#include "anchors/core/segmentation.h"
#include "random_text.h"
#include "test_paths.h"

namespace anchors {
namespace {

const char* kApples =
    "We need to find how many apples Tom has left. First, I will find the total, then subtract what he ate. "
    "A dozen is 12. 3 * 12 = 36. So Tom has 36 apples. Let me check: 36 - 12 = 24, which matches. 12 + 7 = 18. "
    "Wait, 12 + 7 is 19, not 18. So the answer is \\boxed{19}.";

Trace trace_of(const std::string& text) {
  Trace t;
  t.text = text;
  t.sentences = split_sentences(text);
  return t;
}

std::string reference_root() { return testing::data_dir() + "/reference/"; }

TEST(LearnedTaggerTest, BuiltinModelIsTheCommittedWeightsFile) {
  const std::string path = testing::data_dir() + "/../../src/core/tagger/learned_tagger.weights";
  const TaggerModel& builtin = builtin_tagger_model();
  EXPECT_EQ(builtin.serialize(), read_text_file(path, kModelFileLimit));
  EXPECT_EQ(builtin, TaggerModel::read(path));
  // The eight categories, a row of weights per feature row, under 5 MB.
  EXPECT_EQ(builtin.classes, std::vector<std::string>(function_tag_names().begin(), function_tag_names().end() - 1));
  EXPECT_EQ(builtin.weights.size(), builtin.rows.size() * builtin.classes.size());
  EXPECT_GT(builtin.rows.size(), 1000u);
  EXPECT_LT(builtin.serialize().size(), 5u << 20);
}

// tests/data/function_tags/learned_predictions.txt holds the tags the trainer's
// final model gave the reference traces in the trainer's own process (written
// with the weights file by tools/train_function_tagger.cpp --predictions): the
// compiled-in weights must give exactly the same.
TEST(LearnedTaggerTest, CompiledInWeightsReproduceTheTrainersTags) {
  std::istringstream lines(read_text_file(testing::data_dir() + "/function_tags/learned_predictions.txt",
                                          kConfigFileLimit));
  std::string line;
  std::size_t traces = 0;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string name, tag;
    words >> name;
    std::vector<std::string> expected;
    while (words >> tag) expected.push_back(tag);
    Trace trace = import_reference_folder(reference_root() + name).trace;
    const std::vector<FunctionTagDecision> ours = tag_trace_learned(trace);
    ASSERT_EQ(ours.size(), expected.size()) << name;
    for (std::size_t i = 0; i < ours.size(); ++i) EXPECT_EQ(ours[i].tag, expected[i]) << name << " sentence " << i;
    ++traces;
  }
  EXPECT_EQ(traces, 4u);
}

// Regression guard, not a quality certificate: the floors sit a little below
// what the built-in model measures (docs/function-tags.md, "The learned
// tagger"). The three DeepSeek-R1-Distill-Qwen-14B traces are of a model the
// tagger was not trained on; the DeepSeek-R1-Distill-Llama-8B trace
// (problem 3448, incorrect) IS one of its training traces, so the four-trace
// figure is partly in-sample.
constexpr double kQwenFloor = 0.60;  // measured 246 / 398 = 0.618 (held-out model)
constexpr double kAllFloor = 0.70;   // measured 405 / 562 = 0.721 (the llama trace in-sample)
TEST(LearnedTaggerTest, AgreementWithTheAuthorsLabelsStaysAboveItsFloor) {
  std::size_t total = 0, agree = 0, qwen_total = 0, qwen_agree = 0;
  for (const std::string& dir : testing::reference_dirs()) {
    const AnalysisResult reference = import_reference_folder(dir);
    Trace trace = reference.trace;
    tag_trace_learned(trace);
    std::size_t here = 0;
    for (std::size_t i = 0; i < trace.sentences.size(); ++i)
      here += trace.sentences[i].tags.at(0) == reference.trace.sentences[i].tags.at(0);
    total += trace.sentences.size();
    agree += here;
    if (dir.find("qwen-14b") != std::string::npos) {
      qwen_total += trace.sentences.size();
      qwen_agree += here;
    }
  }
  EXPECT_EQ(total, 562u);
  EXPECT_EQ(qwen_total, 398u);
  EXPECT_GE(static_cast<double>(qwen_agree) / qwen_total, kQwenFloor) << qwen_agree << " of " << qwen_total;
  EXPECT_GE(static_cast<double>(agree) / total, kAllFloor) << agree << " of " << total;
}

TEST(LearnedTaggerTest, OneTagPerSentenceDeterministicWithProbabilities) {
  Trace trace = trace_of(kApples);
  trace.metadata["problem"] = "Tom has a dozen apples and eats some. How many are left?";
  ASSERT_EQ(trace.sentences.size(), 9u);
  Trace again = trace;
  const std::vector<FunctionTagDecision> first = tag_trace_learned(trace);
  const std::vector<FunctionTagDecision> second = tag_trace_learned(again);
  EXPECT_EQ(first, second);
  EXPECT_EQ(trace, again);
  const auto& names = function_tag_names();
  const auto p = builtin_tagger_model().probabilities(trace);
  ASSERT_EQ(p.size(), 9u);
  for (std::size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i].rule, "learned");
    ASSERT_EQ(trace.sentences[i].tags, std::vector<std::string>{first[i].tag});
    EXPECT_NE(std::find(names.begin(), names.end() - 1, first[i].tag), names.end() - 1) << first[i].tag;
    double sum = 0.0;
    for (double q : p[i]) {
      EXPECT_GE(q, 0.0);
      sum += q;
    }
    EXPECT_NEAR(sum, 1.0, 1e-9);
    // The decision is the most probable class.
    const auto best = std::max_element(p[i].begin(), p[i].end()) - p[i].begin();
    EXPECT_EQ(builtin_tagger_model().classes[static_cast<std::size_t>(best)], first[i].tag);
  }
  // Unmistakable sentences.
  EXPECT_EQ(first.back().tag, "final_answer_emission");
  EXPECT_EQ(first[3].tag, "active_computation");
}

TEST(LearnedTaggerTest, EmptyTracesAndAnyBytesNeverThrow) {
  Trace empty;
  EXPECT_TRUE(tag_trace_learned(empty).empty());
  EXPECT_TRUE(builtin_tagger_model().probabilities(empty).empty());
  Trace odd;
  for (const std::string& s : {std::string(), std::string("\xff\xfe\x80"), std::string("   "),
                              std::string("\\"), std::string("\xE2\x80"), std::string(1, '\0'),
                              std::string(5000, '=')}) {
    Sentence sentence;
    sentence.index = odd.sentences.size();
    sentence.text = s;
    odd.sentences.push_back(sentence);
  }
  odd.metadata["problem"] = "\xC3";
  EXPECT_EQ(tag_trace_learned(odd).size(), odd.sentences.size());
  std::mt19937 rng(13);
  for (int k = 0; k < 30; ++k) {
    Trace t = trace_of(anchors_test::random_text(rng, 400).text);
    std::vector<FunctionTagDecision> d;
    EXPECT_NO_THROW(d = tag_trace_learned(t));
    EXPECT_EQ(d.size(), t.sentences.size());
  }
}

TEST(LearnedTaggerTest, WeightsFileRoundTripsAndBadFilesAreErrors) {
  const std::string bytes = builtin_tagger_model().serialize();
  EXPECT_EQ(TaggerModel::parse(bytes, "w"), builtin_tagger_model());
  const auto fails = [](const std::string& b, const std::string& why) {
    try {
      TaggerModel::parse(b, "w.weights");
      ADD_FAILURE() << "no error for " << why;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("w.weights: not a tagger model ("), std::string::npos) << e.what();
    }
  };
  fails("", "empty");
  fails("ANCHTAG2" + bytes.substr(8), "wrong magic");
  fails(bytes.substr(0, bytes.size() - 1), "truncated");
  fails(bytes.substr(0, 30), "truncated header");
  fails(bytes + "x", "trailing byte");
  std::string version = bytes;
  version[8] = 2;
  fails(version, "version 2");
  std::string bits = bytes;
  bits[12] = 31;
  fails(bits, "hash_bits 31");
}

TEST(LearnedTaggerTest, TrainingIsDeterministicAndFitsItsData) {
  std::vector<Trace> traces;
  for (const std::string& dir : testing::reference_dirs()) traces.push_back(import_reference_folder(dir).trace);
  traces.resize(2);
  TaggerTrainingOptions o;
  o.iterations = 40;
  o.features.hash_bits = 14;
  o.min_count = 1;
  const TaggerModel a = train_tagger(traces, o);
  const TaggerModel b = train_tagger(traces, o);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.features, o.features);
  EXPECT_EQ(TaggerModel::parse(a.serialize(), "a"), a);
  std::size_t total = 0, agree = 0;
  for (const Trace& t : traces) {
    Trace copy = t;
    const auto d = tag_trace_learned(copy, a);
    for (std::size_t i = 0; i < d.size(); ++i) agree += d[i].tag == t.sentences[i].tags.at(0);
    total += d.size();
  }
  EXPECT_GE(static_cast<double>(agree) / total, 0.9) << "the optimiser does not fit its own training data";
  // A feature set without the rules trains too and records it.
  o.features.rules = false;
  EXPECT_FALSE(train_tagger(traces, o).features.rules);
  // Nothing to learn from.
  Trace unlabelled = trace_of(kApples);
  EXPECT_THROW(train_tagger({unlabelled}, o), Error);
  o.features.hash_bits = 0;
  EXPECT_THROW(train_tagger(traces, o), Error);
}

TEST(LearnedTaggerTest, TagFunctionsChoosesTheMethod) {
  EXPECT_EQ(function_tag_methods(), (std::vector<std::string>{"learned", "rules"}));
  const Trace base = trace_of(kApples);
  Trace by_default = base, learned = base, rules = base, direct_rules = base, direct_learned = base;
  EXPECT_EQ(tag_functions(by_default), tag_trace_learned(direct_learned));
  EXPECT_EQ(by_default, direct_learned);
  EXPECT_EQ(tag_functions(learned, "learned"), tag_functions(by_default));
  FunctionTaggerOptions o;
  o.max_check_block = 0;
  EXPECT_EQ(tag_functions(rules, "rules", o), tag_trace(direct_rules, o));
  EXPECT_EQ(rules, direct_rules);
  Trace unchanged = base;
  try {
    tag_functions(unchanged, "llm");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown function tagging method 'llm' (learned, rules)");
  }
  EXPECT_EQ(unchanged, base);
}

}  // namespace
}  // namespace anchors
