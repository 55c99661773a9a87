// Answer distributions and smoothed KL (docs/distributions.md): checked
// against the formula written out here, and against the authors' published
// resampling_importance_kl values.
#include "anchors/core/distribution.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "expect_error.h"

namespace {

using anchors::AnswerDistribution;
using anchors::kl_divergence;
using anchors::kl_divergence_binary;
using Counts = std::map<std::string, std::size_t>;
namespace fs = std::filesystem;

// The definition, spelled out independently of the library's loop.
double direct_kl(const Counts& p, const Counts& q, double alpha) {
  std::set<std::string> v;
  double np = 0, nq = 0;
  for (const auto& [a, c] : p) {
    v.insert(a);
    np += static_cast<double>(c);
  }
  for (const auto& [a, c] : q) {
    v.insert(a);
    nq += static_cast<double>(c);
  }
  if (np == 0 || nq == 0) return 0.0;
  const auto get = [](const Counts& m, const std::string& a) {
    const auto it = m.find(a);
    return it == m.end() ? 0.0 : static_cast<double>(it->second);
  };
  double kl = 0;
  for (const auto& a : v) {
    const double pa = (get(p, a) + alpha) / (np + alpha * static_cast<double>(v.size()));
    const double qa = (get(q, a) + alpha) / (nq + alpha * static_cast<double>(v.size()));
    kl += pa * std::log(pa / qa);
  }
  return std::max(0.0, kl);
}

AnswerDistribution make(const Counts& counts) {
  AnswerDistribution d;
  for (const auto& [a, c] : counts) d.add(a, c, /*normalize=*/false);
  return d;
}

// ---------------------------------------------------------------------------
// AnswerDistribution
// ---------------------------------------------------------------------------

TEST(DistributionCounts, NormalizesAndSkipsEmpty) {
  const auto d = AnswerDistribution::from_answers(
      {"\\frac{1}{2}", "\\dfrac12", " \\frac 1 2 ", "5", "$5$", "", "   ", "\\text{}", "1/2"});
  EXPECT_EQ(d.total(), 6u);
  EXPECT_EQ(d.size(), 3u);
  EXPECT_EQ(d.count("\\frac12"), 3u);
  EXPECT_EQ(d.count("5"), 2u);
  // Keys are normalized strings, not numeric classes (as in the reference):
  // 1/2 is its own answer.
  EXPECT_EQ(d.count("1/2"), 1u);
  EXPECT_EQ(d.count("\\frac{1}{2}"), 0u);  // lookups take normalized answers
  EXPECT_DOUBLE_EQ(d.probability("\\frac12"), 0.5);
  EXPECT_DOUBLE_EQ(d.probability("absent"), 0.0);
}

TEST(DistributionCounts, WithoutNormalization) {
  const auto d = AnswerDistribution::from_answers({"A", "a", ""}, /*normalize=*/false);
  EXPECT_EQ(d.total(), 2u);
  EXPECT_EQ(d.count("A"), 1u);
  EXPECT_EQ(d.count("a"), 1u);
}

TEST(DistributionCounts, AddWithCountAndMerge) {
  AnswerDistribution a;
  a.add("7", 3);
  a.add("8", 0);  // ignored
  a.add("", 5);   // ignored
  AnswerDistribution b;
  b.add("7");
  b.add("9", 2);
  a.merge(b);
  EXPECT_EQ(a.total(), 6u);
  EXPECT_EQ(a.count("7"), 4u);
  EXPECT_EQ(a.count("9"), 2u);
  EXPECT_EQ(a.count("8"), 0u);
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(a, AnswerDistribution::from_answers({"7", "7", "7", "7", "9", "9"}));
  EXPECT_NE(a, b);
}

TEST(DistributionCounts, TotalThatWouldWrapIsAnError) {
  constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max();
  AnswerDistribution a;
  a.add("7", kMax - 1);  // the largest total is still a total
  a.add("8");
  EXPECT_EQ(a.total(), kMax);
  const AnswerDistribution before = a;
  // Before the check, total wrapped to 0 and the counts of "7" to 1.
  EXPECT_ANCHORS_ERROR(a.add("7", 2), "AnswerDistribution::add", "overflows");
  EXPECT_ANCHORS_ERROR(a.add("9"), "AnswerDistribution::add", "overflows");
  EXPECT_EQ(a, before);  // unchanged
  EXPECT_EQ(a.total(), kMax);
  EXPECT_NO_THROW(a.add("9", 0));  // nothing added, nothing to overflow
  EXPECT_NO_THROW(a.add("", 5));   // empty answers are not counted

  AnswerDistribution b;
  b.add("7", 2);
  EXPECT_ANCHORS_ERROR(a.merge(b), "AnswerDistribution::merge", "overflows");
  EXPECT_EQ(a, before);
  EXPECT_ANCHORS_ERROR(b.merge(a), "AnswerDistribution::merge", "overflows");
  EXPECT_EQ(b.total(), 2u);
}

TEST(DistributionCounts, EmptyDistribution) {
  const AnswerDistribution d;
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(d.total(), 0u);
  EXPECT_DOUBLE_EQ(d.probability("x"), 0.0);
}

// ---------------------------------------------------------------------------
// kl_divergence
// ---------------------------------------------------------------------------

TEST(KlDivergence, MatchesDirectFormula) {
  const std::vector<std::pair<Counts, Counts>> cases = {
      {{{"1", 60}, {"2", 30}, {"3", 10}}, {{"1", 20}, {"2", 50}, {"4", 30}}},
      {{{"a", 1}}, {{"a", 1}, {"b", 99}}},
      {{{"a", 97}, {"b", 3}}, {{"a", 3}, {"b", 97}}},
      {{{"x", 5}, {"y", 5}, {"z", 5}}, {{"x", 1}}},
  };
  for (double alpha : {1e-9, 1e-3, 0.5, 1.0}) {
    for (const auto& [p, q] : cases) {
      const double want = direct_kl(p, q, alpha);
      EXPECT_NEAR(kl_divergence(make(p), make(q), alpha), want, 1e-12 * std::max(1.0, want))
          << "alpha " << alpha;
      const double want_reverse = direct_kl(q, p, alpha);
      EXPECT_NEAR(kl_divergence(make(q), make(p), alpha), want_reverse,
                  1e-12 * std::max(1.0, want_reverse));
    }
  }
}

TEST(KlDivergence, DefaultAlphaIsReference) {
  EXPECT_EQ(anchors::kDefaultKlAlpha, 1e-9);
  const Counts p = {{"1", 8}, {"2", 2}};
  const Counts q = {{"1", 5}, {"2", 5}};
  EXPECT_DOUBLE_EQ(kl_divergence(make(p), make(q)), direct_kl(p, q, 1e-9));
}

TEST(KlDivergence, IdenticalDistributionsAreZero) {
  const Counts p = {{"1", 37}, {"2", 41}, {"3", 22}};
  EXPECT_EQ(kl_divergence(make(p), make(p)), 0.0);
  // Same proportions at different sample sizes: zero up to the smoothing.
  const Counts p2 = {{"1", 74}, {"2", 82}, {"3", 44}};
  EXPECT_NEAR(kl_divergence(make(p), make(p2)), 0.0, 1e-9);
  EXPECT_GE(kl_divergence(make(p), make(p2)), 0.0);
}

TEST(KlDivergence, AsymmetricInGeneralSymmetricForMirrorImages) {
  const Counts p = {{"a", 90}, {"b", 10}};
  const Counts q = {{"a", 50}, {"b", 50}};
  const double pq = kl_divergence(make(p), make(q));
  const double qp = kl_divergence(make(q), make(p));
  EXPECT_GT(std::abs(pq - qp), 1e-3);
  // 0.9 log(0.9/0.5) + 0.1 log(0.1/0.5)
  EXPECT_NEAR(pq, 0.9 * std::log(1.8) + 0.1 * std::log(0.2), 1e-8);

  const Counts r = {{"a", 70}, {"b", 30}};
  const Counts s = {{"a", 30}, {"b", 70}};
  EXPECT_NEAR(kl_divergence(make(r), make(s)), kl_divergence(make(s), make(r)), 1e-12);
}

TEST(KlDivergence, DisjointSupportsFiniteWithSmoothing) {
  const Counts p = {{"a", 10}};
  const Counts q = {{"b", 10}};
  const double kl = kl_divergence(make(p), make(q), 1e-9);
  EXPECT_TRUE(std::isfinite(kl));
  EXPECT_NEAR(kl, direct_kl(p, q, 1e-9), 1e-9);
  // Dominated by log(N / alpha) = log(1e10).
  EXPECT_NEAR(kl, std::log(1e10), 1e-6);
}

TEST(KlDivergence, LargerAlphaShrinksDivergence) {
  const Counts p = {{"a", 9}, {"b", 1}};
  const Counts q = {{"a", 1}, {"b", 9}, {"c", 5}};
  double previous = std::numeric_limits<double>::infinity();
  for (double alpha : {0.0, 1e-9, 1e-3, 0.1, 1.0, 10.0, 1000.0}) {
    const double kl = kl_divergence(make(p), make(q), alpha);
    EXPECT_LT(kl, previous) << "alpha " << alpha;
    previous = kl;
  }
  EXPECT_LT(previous, 1e-3);  // huge alpha: both sides near uniform
}

TEST(KlDivergence, LaplaceSmoothingIsAlphaOne) {
  // The reference's laplace_smooth=True: alpha = 1.
  const Counts p = {{"a", 3}};
  const Counts q = {{"b", 2}};
  // V = 2: p = (4/5, 1/5), q = (1/4, 3/4).
  const double want = 0.8 * std::log(0.8 / 0.25) + 0.2 * std::log(0.2 / 0.75);
  EXPECT_NEAR(kl_divergence(make(p), make(q), 1.0), want, 1e-12);
}

TEST(KlDivergence, AlphaZero) {
  const Counts p = {{"a", 1}, {"b", 1}};
  const Counts q = {{"a", 1}, {"b", 1}, {"c", 2}};
  // Q covers P: finite, 0 log 0 terms vanish.
  EXPECT_NEAR(kl_divergence(make(p), make(q), 0.0), std::log(2.0), 1e-12);
  // P has an answer Q lacks: infinite.
  EXPECT_TRUE(std::isinf(kl_divergence(make(q), make(p), 0.0)));
}

TEST(KlDivergence, EmptySideIsZero) {
  const AnswerDistribution empty;
  const auto some = AnswerDistribution::from_answers({"1", "2"});
  EXPECT_EQ(kl_divergence(empty, some), 0.0);
  EXPECT_EQ(kl_divergence(some, empty), 0.0);
  EXPECT_EQ(kl_divergence(empty, empty), 0.0);
  // Empty answers do not make a side non-empty.
  EXPECT_EQ(kl_divergence(AnswerDistribution::from_answers({"", " "}), some), 0.0);
}

TEST(KlDivergence, RejectsBadAlpha) {
  const auto d = AnswerDistribution::from_answers({"1"});
  EXPECT_THROW(kl_divergence(d, d, -1e-9), anchors::Error);
  EXPECT_THROW(kl_divergence(d, d, std::nan("")), anchors::Error);
  EXPECT_THROW(kl_divergence(d, d, std::numeric_limits<double>::infinity()), anchors::Error);
}

// ---------------------------------------------------------------------------
// kl_divergence_binary (the reference's use_prob_true variant)
// ---------------------------------------------------------------------------

double direct_binary(double cp, double np, double cq, double nq, double alpha) {
  const double p = (cp + alpha) / (np + 2 * alpha);
  const double q = (cq + alpha) / (nq + 2 * alpha);
  return std::max(0.0, p * std::log(p / q) + (1 - p) * std::log((1 - p) / (1 - q)));
}

TEST(KlBinary, MatchesDirectFormula) {
  for (double alpha : {1e-9, 0.5, 1.0}) {
    EXPECT_NEAR(kl_divergence_binary(87, 98, 79, 98, alpha), direct_binary(87, 98, 79, 98, alpha),
                1e-12);
    EXPECT_NEAR(kl_divergence_binary(3, 10, 9, 12, alpha), direct_binary(3, 10, 9, 12, alpha),
                1e-12);
  }
}

TEST(KlBinary, EqualsTwoAnswerDistribution) {
  // With one correct and one wrong answer the two variants coincide.
  for (const auto& [cp, np, cq, nq] :
       std::vector<std::array<std::size_t, 4>>{{87, 98, 79, 98}, {1, 50, 49, 50}, {10, 30, 3, 7}}) {
    const Counts p = {{"right", cp}, {"wrong", np - cp}};
    const Counts q = {{"right", cq}, {"wrong", nq - cq}};
    EXPECT_NEAR(kl_divergence_binary(cp, np, cq, nq), kl_divergence(make(p), make(q)), 1e-12);
  }
}

TEST(KlBinary, EdgeCases) {
  EXPECT_EQ(kl_divergence_binary(0, 0, 3, 5), 0.0);
  EXPECT_EQ(kl_divergence_binary(3, 5, 0, 0), 0.0);
  EXPECT_EQ(kl_divergence_binary(4, 8, 2, 4), 0.0);
  EXPECT_EQ(kl_divergence_binary(10, 10, 10, 10), 0.0);
  const double all_vs_none = kl_divergence_binary(10, 10, 0, 10);
  EXPECT_TRUE(std::isfinite(all_vs_none));
  EXPECT_NEAR(all_vs_none, std::log(10 / 1e-9), 1e-6);
  EXPECT_TRUE(std::isinf(kl_divergence_binary(10, 10, 0, 10, 0.0)));
  EXPECT_THROW(kl_divergence_binary(6, 5, 1, 5), anchors::Error);
  EXPECT_THROW(kl_divergence_binary(1, 5, 1, 5, -1.0), anchors::Error);
}

// ---------------------------------------------------------------------------
// The authors' published numbers
// ---------------------------------------------------------------------------

// accuracy = correct / total with total <= 100 rollouts: the smallest such
// fraction (p log(p/q) depends only on the ratios, up to the 1e-9 smoothing).
bool as_fraction(double accuracy, std::size_t* correct, std::size_t* total) {
  for (std::size_t n = 1; n <= 100; ++n) {
    const double c = std::round(accuracy * static_cast<double>(n));
    if (std::abs(c / static_cast<double>(n) - accuracy) < 1e-12) {
      *correct = static_cast<std::size_t>(c);
      *total = n;
      return true;
    }
  }
  return false;
}

// resampling_importance_kl[i] = KL(P(R_i) || P(R_{i+1})) over *answers*. The
// binary (correct / wrong) KL of the same rollouts is a coarsening, so it can
// never exceed the published value, and equals it whenever all wrong rollouts
// gave one answer. That the published values are often strictly larger shows
// the data were computed with the answer-distribution variant (the
// reference's --use_prob_true flag has default=False, action='store_false').
TEST(KlReference, ResamplingKlIsAnswerDistributionKl) {
  const fs::path root = fs::path(ANCHORS_TEST_DATA_DIR) / "reference";
  std::size_t rows = 0, equal = 0, larger = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.path().filename() != "chunks_labeled.json") continue;
    std::ifstream in(entry.path());
    const auto chunks = nlohmann::json::parse(in);
    for (std::size_t i = 0; i + 1 < chunks.size(); ++i) {
      const auto& a = chunks[i];
      const auto& b = chunks[i + 1];
      if (!a.contains("accuracy") || !b.contains("accuracy") || !a["accuracy"].is_number() ||
          !b["accuracy"].is_number() || !a["resampling_importance_kl"].is_number()) {
        continue;
      }
      std::size_t cp = 0, np = 0, cq = 0, nq = 0;
      if (!as_fraction(a["accuracy"], &cp, &np) || !as_fraction(b["accuracy"], &cq, &nq)) continue;
      const double published = a["resampling_importance_kl"];
      const double binary = kl_divergence_binary(cp, np, cq, nq);
      ++rows;
      EXPECT_LE(binary, published + 1e-9) << entry.path() << " chunk " << i;
      if (std::abs(binary - published) <= 1e-9 * std::max(1.0, published)) {
        ++equal;
      } else if (published > binary) {
        ++larger;
      }
    }
  }
  EXPECT_GE(rows, 500u);           // 558 consecutive pairs in the four traces
  EXPECT_GE(equal, rows / 2);      // two answer classes: the variants agree exactly
  EXPECT_GE(larger, rows / 5);     // several wrong answers: only the answer KL is larger
}

}  // namespace
