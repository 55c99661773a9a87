// The study table and its aggregates (core/study_table.h, study_aggregates.h).
// tests/python/test_study.py checks the aggregates against a pandas reference
// on the bundled traces; these tests check the definitions on tables small
// enough to work out by hand.
#include "anchors/core/study_aggregates.h"
#include "anchors/core/study_table.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "anchors/core/error.h"
#include "anchors/core/reference_import.h"
#include "anchors/core/segmentation.h"
#include "test_paths.h"

namespace anchors {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A trace of `tags.size()` sentences with those tags and one "m" attribution.
AnalysisResult result(const std::string& problem, const std::vector<std::string>& tags,
                      const std::map<std::string, std::vector<double>>& scores, const std::string& method = "m") {
  AnalysisResult r;
  std::string text;
  for (std::size_t i = 0; i < tags.size(); ++i) text += "Sentence number " + std::to_string(i) + " here. ";
  r.trace.text = text;
  r.trace.sentences = split_sentences(text);
  for (std::size_t i = 0; i < tags.size(); ++i) r.trace.sentences[i].tags = {tags[i]};
  r.trace.metadata["problem_id"] = problem;
  Attribution a;
  a.method = method;
  a.scores = scores;
  r.attributions.push_back(a);
  return r;
}

TEST(StudyTable, ReadsTheBundledReferenceTraces) {
  const StudyTable t = study_table_from_folders(testing::data_dir() + "/reference");
  std::size_t sentences = 0;
  for (const std::string& dir : testing::reference_dirs()) sentences += import_reference_folder(dir).trace.sentences.size();
  ASSERT_EQ(t.size(), sentences);
  // Sorted path order: the llama-8b folder first; model and base kind from the layout.
  EXPECT_EQ(t.model.front(), "deepseek-r1-distill-llama-8b");
  EXPECT_EQ(t.base.front(), "incorrect");
  EXPECT_EQ(t.problem.front(), "problem_3448");
  EXPECT_EQ(t.model.back(), "deepseek-r1-distill-qwen-14b");
  EXPECT_EQ(t.base.back(), "correct");
  EXPECT_EQ(t.sentence.front(), 0);
  EXPECT_EQ(t.position.front(), 0.0);
  for (std::size_t r = 1; r < t.size(); ++r)
    if (t.source[r] != t.source[r - 1]) EXPECT_EQ(t.position[r - 1], 1.0);  // each trace ends at position 1
  EXPECT_FALSE(t.tag.front().empty());
  EXPECT_FALSE(t.level.front().empty());
  const std::string column = t.score_column("counterfactual_importance_accuracy");
  EXPECT_EQ(column, "resampling.counterfactual_importance_accuracy");
  EXPECT_EQ(&t.score("counterfactual_importance_accuracy"), &t.scores.at(column));
  EXPECT_THROW(t.score("no_such_score"), Error);
  // A folder of one trace is a study of one trace.
  EXPECT_EQ(study_table_from_folders(testing::reference_dirs()[0]).size(),
            import_reference_folder(testing::reference_dirs()[0]).trace.sentences.size());
  testing::ScratchDir empty("study-empty");
  EXPECT_THROW(study_table_from_folders(empty.path()), Error);
  EXPECT_THROW(study_table_from_folders(empty.path() + "/absent"), Error);
}

TEST(StudyTable, ColumnsAlignAcrossTracesWithDifferentScores) {
  StudyTable t;
  t.append(result("p1", {"a", "b"}, {{"x", {1, 2}}}), "M", "correct", "s1");
  t.append(result("p2", {"c"}, {{"y", {5}}}), "M", "", "s2");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t.base[2], "unknown");  // no kind given, no is_correct
  EXPECT_TRUE(std::isnan(t.score("x")[2]));
  EXPECT_TRUE(std::isnan(t.score("y")[0]) && std::isnan(t.score("y")[1]));
  EXPECT_EQ(t.score("m.y")[2], 5);
  // A series two methods have is ambiguous by its short name.
  t.append(result("p3", {"a"}, {{"x", {7}}}, "other"), "M", "", "s3");
  EXPECT_THROW(t.score("x"), Error);
  EXPECT_EQ(t.score("other.x")[3], 7);
  // A series of the wrong length is refused before anything is appended.
  EXPECT_THROW(t.append(result("p4", {"a", "b"}, {{"x", {1}}}), "M", "", "s4"), Error);
  EXPECT_EQ(t.size(), 4u);
}

TEST(StudyAggregates, MeansAndIntervalsByHand) {
  StudyTable t;
  t.append(result("p1", {"plan_generation", "active_computation", "zeta"}, {{"x", {1, 3, 9}}}), "M", "", "s1");
  t.append(result("p2", {"plan_generation", "active_computation"}, {{"x", {3, kNaN}}}), "M", "", "s2");
  AggregateOptions none;
  none.resamples = 0;
  const auto g = mean_by(t, "x", "tag", none);
  ASSERT_EQ(g.size(), 3u);  // the paper's order, then other tags
  EXPECT_EQ(g[0].group, "plan_generation");
  EXPECT_EQ(g[0].mean, 2.0);
  EXPECT_EQ(g[0].sentences, 2u);
  EXPECT_EQ(g[0].problems, 2u);
  EXPECT_EQ(g[1].group, "active_computation");
  EXPECT_EQ(g[1].mean, 3.0);  // the NaN row is left out
  EXPECT_EQ(g[1].problems, 1u);
  EXPECT_EQ(g[2].group, "zeta");
  EXPECT_TRUE(std::isnan(g[0].ci_low));
  // With resamples: plan_generation's resampled means are 1 (p1 twice), 2 or
  // 3 (p2 twice), so the interval lies in [1, 3]; active_computation exists
  // only in p1 and is always 3.
  const auto b = mean_by(t, "x", "tag");
  EXPECT_GE(b[0].ci_low, 1.0);
  EXPECT_LE(b[0].ci_high, 3.0);
  EXPECT_LT(b[0].ci_low, b[0].ci_high);
  EXPECT_EQ(b[1].ci_low, 3.0);
  EXPECT_EQ(b[1].ci_high, 3.0);
  EXPECT_EQ(mean_by(t, "x", "tag"), b);  // deterministic
  AggregateOptions other;
  other.seed = 7;
  EXPECT_EQ(mean_by(t, "x", "tag", other)[0].mean, b[0].mean);
  // Other groupings; bad arguments.
  EXPECT_EQ(mean_by(t, "x", "model", none).front().mean, 4.0);
  EXPECT_THROW(mean_by(t, "x", "colour"), Error);
  AggregateOptions bad;
  bad.confidence = 1.0;
  EXPECT_THROW(mean_by(t, "x", "tag", bad), Error);
}

TEST(StudyAggregates, PositionDebiasedMeansAreResidualsOfTheLine) {
  // score = 10 * position, plus 1 for the sentences tagged "b": the line
  // takes the position trend, the residuals keep the tag's effect.
  StudyTable t;
  for (int p = 0; p < 4; ++p)
    t.append(result("p" + std::to_string(p), {"a", "b", "a"}, {{"x", {0.0, 6.0, 10.0}}}), "M", "", "s" + std::to_string(p));
  AggregateOptions o;
  o.resamples = 0;
  o.debias_position = true;
  const auto g = mean_by(t, "x", "tag", o);
  ASSERT_EQ(g.size(), 2u);
  // The line through (0, 0), (.5, 6), (1, 10) (every trace alike): slope 10,
  // intercept 1/3; residuals -1/3, 2/3, -1/3.
  EXPECT_NEAR(g[0].mean, -1.0 / 3.0, 1e-12);
  EXPECT_NEAR(g[1].mean, 2.0 / 3.0, 1e-12);
}

TEST(StudyAggregates, MethodAgreementPerTrace) {
  StudyTable t;
  t.append(result("p1", {"a", "a", "a", "a"}, {{"x", {1, 2, 3, 4}}, {"y", {4, 3, 2, 1}}}), "M", "", "s1");
  t.append(result("p2", {"a", "a", "a"}, {{"x", {1, 2, kNaN}}, {"y", {1, 3, 2}}}), "M", "", "s2");
  t.append(result("p3", {"a"}, {{"x", {1}}, {"y", {1}}}), "M", "", "s3");
  const auto r = method_agreement(t, "x", "y", 1);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].spearman, -1.0);
  EXPECT_EQ(r[0].top_k_overlap, 0.0);  // x's top is sentence 3, y's sentence 0
  EXPECT_EQ(r[1].sentences, 2u);
  EXPECT_EQ(r[1].spearman, 1.0);
  EXPECT_EQ(r[1].top_k_overlap, 1.0);
  EXPECT_TRUE(std::isnan(r[2].spearman));  // one sentence
  EXPECT_EQ(method_agreement(t, "x", "y", 10)[0].top_k_overlap, 1.0);  // k' = 4: all of them
  EXPECT_THROW(method_agreement(t, "x", "y", 0), Error);
}

// A trace whose receiver_heads attribution holds a 2 x 3 kurtosis matrix.
AnalysisResult with_kurtosis(const std::string& problem, const std::vector<double>& values) {
  AnalysisResult r = result(problem, {"a"}, {{"x", {0}}});
  Attribution a;
  a.method = "receiver_heads";
  a.matrices["head_kurtosis"] = Matrix(2, 3);
  a.matrices["head_kurtosis"].data = values;
  r.attributions.push_back(a);
  return r;
}

TEST(StudyAggregates, ReceiverHeadReliability) {
  // Layer 1's heads have kurtosis 1, 5, 9 in every trace, up to +-0.1: the
  // halves agree (r near 1); layer 0 (left out) is noise.
  StudyTable t;
  for (int k = 0; k < 6; ++k) {
    const double e = (k % 2 ? 0.1 : -0.1) * (k % 3);
    t.append(with_kurtosis("p" + std::to_string(k), {100.0 * k, -7.0 * k, 3.0, 1 + e, 5 - e, 9 + e}), "M", "",
             "s" + std::to_string(k));
  }
  ASSERT_EQ(t.matrices.at("receiver_heads.head_kurtosis").size(), 6u);
  EXPECT_EQ(t.matrices.count("m.x"), 0u);  // only the kept matrices
  ReliabilityOptions o;
  o.splits = 20;
  const SplitHalfReliability r = receiver_head_reliability(t, o);
  EXPECT_EQ(r.traces, 6u);
  EXPECT_EQ(r.heads, 3u);
  ASSERT_EQ(r.split_r.size(), 20u);
  EXPECT_GT(r.mean_r, 0.99);
  EXPECT_NEAR(r.spearman_brown, 2 * r.mean_r / (1 + r.mean_r), 1e-15);
  EXPECT_EQ(receiver_head_reliability(t, o).split_r, r.split_r);  // deterministic
  o.include_layer0 = true;  // layer 0 varies wildly from trace to trace
  EXPECT_EQ(receiver_head_reliability(t, o).heads, 6u);
  // Errors: too few traces, shapes that differ.
  StudyTable few;
  for (int k = 0; k < 3; ++k) few.append(with_kurtosis("p", {1, 2, 3, 4, 5, 6}), "M", "", "s" + std::to_string(k));
  EXPECT_THROW(receiver_head_reliability(few), Error);
  AnalysisResult odd = with_kurtosis("q", {1, 2, 3, 4, 5, 6});
  odd.attributions.back().matrices["head_kurtosis"] = Matrix(3, 3, 1.0);
  t.append(odd, "M", "", "odd");
  EXPECT_THROW(receiver_head_reliability(t), Error);
}

}  // namespace
}  // namespace anchors
