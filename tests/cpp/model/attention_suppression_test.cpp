// Attention suppression on the random tiny checkpoints against a slow
// reference written here: per suppressed sentence one full forward pass with
// the control (no cache, batch 1), the full [T, V] logits, and the per-position
// rule with a full sort of the vocabulary, std::set unions and scalar float64
// arithmetic. Also: the batched, prefix-reusing path against independent full
// passes, suppression_log_kl on hand-computed cases, the centred matrix, and
// bad input.
//
// Memory (why the fast path may differ from the reference only by rounding):
// the reference holds [T, V] logits per pass; suppression_matrix never does --
// it keeps the base pass's top-min(max_kept, V) logits per sentence token and
// projects at most vocab_chunk positions to the vocabulary at once, so its
// peak is the KV caches + one batched pass's hidden states + [vocab_chunk, V].
// The vocab_chunk = 3 / 5 / 64 runs below check that chunking changes nothing.
#include "anchors/model/attention_suppression.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "test_paths.h"
#include "anchors/core/error.h"
#include "anchors/model/attention.h"
#include "anchors/model/causal_lm.h"

namespace anchors::model {
namespace {

const double kLogFloor = std::log(1e-9);
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string fixture_dir(const std::string& name) { return anchors::testing::data_dir() + "/tiny_models/" + name; }

TokenTrace random_trace(const CausalLM& model, std::int64_t T, std::vector<TokenSpan> spans, std::uint64_t seed) {
  torch::manual_seed(seed);
  const torch::Tensor ids = torch::randint(model.config().vocab_size, {T}, torch::kInt64);
  TokenTrace trace;
  trace.ids.assign(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + T);
  trace.sentences = std::move(spans);
  return trace;
}

// ---------------------------------------------------------------------------
// The slow reference.
// ---------------------------------------------------------------------------

// One side's kept set at one position: full descending sort, cumulative sum,
// k = (first index with cum >= p) + 1, capped, at least 1.
std::vector<std::pair<std::int64_t, double>> reference_kept(const torch::Tensor& row, double temperature, double top_p,
                                                            std::int64_t max_kept) {
  const torch::Tensor logits = row.to(torch::kFloat64);
  const torch::Tensor probs = torch::softmax(logits / temperature, -1);
  const auto [sorted, order] = torch::sort(probs, /*stable=*/true, /*dim=*/-1, /*descending=*/true);
  const auto p = sorted.accessor<double, 1>();
  const auto o = order.accessor<std::int64_t, 1>();
  const std::int64_t V = row.size(0);
  std::int64_t k = V;
  double cum = 0;
  for (std::int64_t n = 0; n < V; ++n) {
    cum += p[n];
    if (cum >= top_p) {
      k = n + 1;
      break;
    }
  }
  k = std::max<std::int64_t>(1, std::min({k, max_kept, V}));
  std::vector<std::pair<std::int64_t, double>> kept;
  const auto l = logits.accessor<double, 1>();
  for (std::int64_t n = 0; n < k; ++n) kept.push_back({o[n], l[o[n]]});
  return kept;
}

double reference_log_kl(const torch::Tensor& base_row, const torch::Tensor& supp_row, double temperature, double top_p,
                        std::int64_t max_kept) {
  const auto base = reference_kept(base_row, temperature, top_p, max_kept);
  const auto supp = reference_kept(supp_row, temperature, top_p, max_kept);
  std::set<std::int64_t> union_ids;
  for (const auto& [id, _] : base) union_ids.insert(id);
  for (const auto& [id, _] : supp) union_ids.insert(id);
  const auto logit_of = [](const std::vector<std::pair<std::int64_t, double>>& kept, std::int64_t id) {
    for (const auto& [i, l] : kept)
      if (i == id) return l;
    return -1e9;
  };
  std::vector<double> a, b;
  for (const std::int64_t id : union_ids) {
    a.push_back(logit_of(base, id) / temperature);
    b.push_back(logit_of(supp, id) / temperature);
  }
  const auto log_softmax = [](std::vector<double> x) {
    const double m = *std::max_element(x.begin(), x.end());
    double s = 0;
    for (const double v : x) s += std::exp(v - m);
    for (double& v : x) v = v - m - std::log(s);
    return x;
  };
  const std::vector<double> lp = log_softmax(a), lq = log_softmax(b);
  double kl = 0;
  for (std::size_t n = 0; n < lp.size(); ++n) {
    const double p = std::exp(lp[n]);
    if (p > 0) kl += p * (lp[n] - lq[n]);
  }
  return std::log(std::max(kl, 0.0) + 1e-9);
}

torch::Tensor reference_matrix(const CausalLM& model, const TokenTrace& trace, const SuppressionOptions& o) {
  const auto T = static_cast<std::int64_t>(trace.ids.size());
  const auto S = static_cast<std::int64_t>(trace.sentences.size());
  const torch::Tensor ids = torch::tensor(trace.ids, torch::kInt64).view({1, T});
  const torch::Tensor base = model.forward(ids, torch::arange(T))[0];  // [T, V]
  torch::Tensor raw = torch::full({S, S}, kLogFloor, torch::kFloat64);
  for (std::int64_t i = 0; i < S; ++i) {
    AttentionControl control;
    control.regions.push_back(AttentionRegion::suppress(0, {0, T}, trace.sentences[i]));
    const torch::Tensor supp = model.forward(ids, torch::arange(T), nullptr, &control)[0];
    for (std::int64_t j = i; j < S; ++j) {
      double sum = 0;
      for (std::int64_t t = trace.sentences[j].begin; t < trace.sentences[j].end; ++t)
        sum += reference_log_kl(base[t], supp[t], o.temperature, o.top_p, o.max_kept);
      raw[j][i] = sum / static_cast<double>(trace.sentences[j].size());
    }
  }
  return raw;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// ---------------------------------------------------------------------------
// The tiny checkpoints.
// ---------------------------------------------------------------------------

struct RuleCase {
  const char* name;
  double temperature;
  double top_p;
  std::int64_t max_kept;
};

// The defaults (on these near-uniform random models the cap of 100 decides k),
// a nucleus that decides k itself (top_p 0.5 keeps well under 100 of the 256
// tokens), and the untruncated KL (every token kept on both sides).
const RuleCase kRules[] = {{"defaults", 0.6, 0.9999, 100}, {"nucleus", 0.6, 0.5, 100}, {"full", 1.0, 1.0, 256}};

class SuppressionModels : public ::testing::TestWithParam<std::string> {};

TEST_P(SuppressionModels, MatchesSlowReference) {
  const auto model = CausalLM::load(fixture_dir(GetParam()));
  // 52 tokens, 5 sentences, a prompt before the first and gaps between some.
  const TokenTrace trace = random_trace(*model, 52, {{4, 11}, {11, 20}, {22, 30}, {30, 41}, {44, 52}}, 17);
  for (const RuleCase& rule : kRules) {
    SuppressionOptions o;
    o.temperature = rule.temperature;
    o.top_p = rule.top_p;
    o.max_kept = rule.max_kept;
    o.batch_lanes = 3;
    o.vocab_chunk = 5;
    const torch::Tensor got = suppression_matrix(*model, trace, o);
    ASSERT_EQ(got.sizes(), (std::vector<std::int64_t>{5, 5}));
    ASSERT_EQ(got.scalar_type(), torch::kFloat64);
    ASSERT_EQ(got.device().type(), torch::kCPU);
    const torch::Tensor want = reference_matrix(*model, trace, o);
    const double error = max_abs_diff(got, want);
    EXPECT_LT(error, 1e-4) << rule.name << "\n" << got << "\n" << want;
    // Above the diagonal: exactly log(1e-9); on and below it: real effects.
    for (std::int64_t j = 0; j < 5; ++j)
      for (std::int64_t i = j + 1; i < 5; ++i) EXPECT_EQ(got[j][i].item<double>(), kLogFloor);
    // Suppression moves every later prediction on these models (no entry on or below the diagonal near the floor).
    const torch::Tensor lower = torch::ones({5, 5}, torch::kBool).tril();
    EXPECT_EQ((lower & (got > kLogFloor + 1)).sum().item<std::int64_t>(), 15) << rule.name << "\n" << got;
    std::cout << "[ " << GetParam() << " / " << rule.name << " ] max abs error vs the slow reference " << error << "\n";
  }
}

TEST_P(SuppressionModels, BatchedPrefixReuseEqualsIndependentFullPasses) {
  const auto model = CausalLM::load(fixture_dir(GetParam()));
  // 6 sentences, the first at position 0 (a group whose prefix is empty).
  const TokenTrace trace = random_trace(*model, 58, {{0, 7}, {7, 15}, {15, 24}, {26, 33}, {33, 45}, {47, 58}}, 29);
  for (const RuleCase& rule : kRules) {
    SuppressionOptions fast;
    fast.temperature = rule.temperature;
    fast.top_p = rule.top_p;
    fast.max_kept = rule.max_kept;
    fast.batch_lanes = 3;
    fast.reuse_prefix = true;
    SuppressionOptions slow = fast;
    slow.batch_lanes = 1;
    slow.reuse_prefix = false;
    slow.vocab_chunk = 3;
    const torch::Tensor a = suppression_matrix(*model, trace, fast);
    const torch::Tensor b = suppression_matrix(*model, trace, slow);
    EXPECT_LT(max_abs_diff(a, b), 1e-4) << rule.name;
    // Other lane counts, with and without the prefix (4 lanes: a short last
    // group; 9: one group of all 6 sentences).
    for (const auto& [lanes, reuse] : std::vector<std::pair<std::int64_t, bool>>{{2, false}, {4, true}, {9, true}}) {
      SuppressionOptions other = fast;
      other.batch_lanes = lanes;
      other.reuse_prefix = reuse;
      other.vocab_chunk = 64;
      EXPECT_LT(max_abs_diff(suppression_matrix(*model, trace, other), b), 1e-4)
          << rule.name << " lanes " << lanes << " reuse " << reuse;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AttentionSuppression, SuppressionModels,
                         ::testing::Values("qwen2_bias_tied", "llama_rope_llama3_gqa2", "qwen3_gqa4_head16_tied",
                                           "llama_linear_bias_mha_tied"));

TEST(AttentionSuppression, ProgressAndCancel) {
  const auto model = CausalLM::load(fixture_dir("qwen2_bias_tied"));
  const TokenTrace trace = random_trace(*model, 30, {{0, 6}, {6, 12}, {12, 18}, {18, 24}, {24, 30}}, 3);
  SuppressionOptions o;
  o.batch_lanes = 2;
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  o.control.progress = [&](std::size_t done, std::size_t total, const std::string& unit) {
    EXPECT_EQ(unit, "sentences");
    calls.push_back({done, total});
  };
  suppression_matrix(*model, trace, o);
  EXPECT_EQ(calls, (std::vector<std::pair<std::size_t, std::size_t>>{{2, 5}, {4, 5}, {5, 5}}));

  std::atomic<bool> cancel{true};
  o.control.cancel = &cancel;
  o.control.progress = {};
  EXPECT_THROW(suppression_matrix(*model, trace, o), Error);  // set before the start
  cancel = false;
  std::size_t passes = 0;
  o.control.progress = [&](std::size_t, std::size_t, const std::string&) {
    ++passes;
    cancel = true;  // set during the run: stops at the next check point
  };
  try {
    suppression_matrix(*model, trace, o);
    ADD_FAILURE() << "not cancelled";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cancelled"), std::string::npos) << e.what();
  }
  EXPECT_EQ(passes, 1u);
}

TEST(AttentionSuppression, RejectsBadInput) {
  const auto model = CausalLM::load(fixture_dir("llama_rope_llama3_gqa2"));
  const TokenTrace ok = random_trace(*model, 20, {{0, 10}, {10, 20}}, 5);
  EXPECT_NO_THROW(suppression_matrix(*model, ok));

  TokenTrace bad = ok;
  bad.ids.clear();
  EXPECT_THROW(suppression_matrix(*model, bad), Error);  // empty trace
  for (const std::vector<TokenSpan>& spans : std::vector<std::vector<TokenSpan>>{
           {}, {{0, 11}, {10, 20}}, {{10, 20}, {0, 10}}, {{0, 10}, {10, 21}}, {{5, 5}}, {{-1, 3}}}) {
    bad = ok;
    bad.sentences = spans;
    EXPECT_THROW(suppression_matrix(*model, bad), Error) << spans.size() << " spans";
  }
  bad = ok;
  bad.ids[2] = model->config().vocab_size;
  EXPECT_THROW(suppression_matrix(*model, bad), Error);  // id outside the vocabulary
  bad.ids.assign(static_cast<std::size_t>(model->config().max_position_embeddings + 1), 1);
  bad.sentences = {{0, 10}};
  EXPECT_THROW(suppression_matrix(*model, bad), Error);  // beyond max positions

  const auto with = [&](auto change) {
    SuppressionOptions o;
    change(o);
    return o;
  };
  const double inf = std::numeric_limits<double>::infinity();
  for (const double t : {0.0, -0.5, kNaN, inf})
    EXPECT_THROW(suppression_matrix(*model, ok, with([&](auto& o) { o.temperature = t; })), Error) << t;
  for (const double p : {0.0, -0.1, 1.0000001, kNaN})
    EXPECT_THROW(suppression_matrix(*model, ok, with([&](auto& o) { o.top_p = p; })), Error) << p;
  EXPECT_NO_THROW(suppression_matrix(*model, ok, with([](auto& o) { o.top_p = 1.0; })));
  EXPECT_THROW(suppression_matrix(*model, ok, with([](auto& o) { o.max_kept = 0; })), Error);
  EXPECT_THROW(suppression_matrix(*model, ok, with([](auto& o) { o.batch_lanes = 0; })), Error);
  EXPECT_THROW(suppression_matrix(*model, ok, with([](auto& o) { o.vocab_chunk = 0; })), Error);
  // max_kept beyond the vocabulary is fine (every token can be kept).
  EXPECT_NO_THROW(suppression_matrix(*model, ok, with([](auto& o) { o.max_kept = 100000; })));
}

// ---------------------------------------------------------------------------
// suppression_log_kl
// ---------------------------------------------------------------------------

TEST(SuppressionLogKl, HandComputedCases) {
  // V = 5. Row 0, T = 0.6, p = 0.9, max_kept 3:
  //   base  [2, 1, 0.5, -1, 0]: sorted probabilities cumulate 0.7614, 0.9052 -> keeps {0, 1};
  //   supp  [0, 1.5, 0.2, 1.4, -3]: 0.4893, 0.9035 -> keeps {1, 3}; union {0, 1, 3};
  //   p = softmax([2, 1, -1e9] / 0.6), q = softmax([-1e9, 1.5, 1.4] / 0.6),
  //   KL = Σ p (log p − log q) = 1401884827.4767942 (token 0 is "impossible" for q),
  //   value = log(KL + 1e-9) = 21.061083473451745.
  // Row 1, same logits as base on both sides: KL 0, value log(1e-9) exactly.
  // Row 2, p = 0.99 and max_kept 2: both sides capped at their top 2 ({0, 1} each),
  //   supp [1.9, 1.2, 0.5, -1, 0]: KL over {0, 1} = 0.018655185894301055 -> -3.981631053902966.
  // (numpy, float64: sort, cumsum, searchsorted(side="left") + 1, union, log-softmax.)
  const torch::Tensor base = torch::tensor({2.0, 1.0, 0.5, -1.0, 0.0}, torch::kFloat32);
  const torch::Tensor supp0 = torch::tensor({0.0, 1.5, 0.2, 1.4, -3.0}, torch::kFloat32);
  const torch::Tensor supp2 = torch::tensor({1.9, 1.2, 0.5, -1.0, 0.0}, torch::kFloat64);
  const torch::Tensor got = suppression_log_kl(torch::stack({base, base}), torch::stack({supp0, base}), 0.6, 0.9, 3);
  ASSERT_EQ(got.sizes(), (std::vector<std::int64_t>{2}));
  ASSERT_EQ(got.scalar_type(), torch::kFloat64);
  EXPECT_NEAR(got[0].item<double>(), 21.061083473451745, 1e-9);
  EXPECT_EQ(got[1].item<double>(), kLogFloor);
  const torch::Tensor base64 = base.to(torch::kFloat64).unsqueeze(0);
  EXPECT_NEAR(suppression_log_kl(base64, supp2.unsqueeze(0), 0.6, 0.99, 2)[0].item<double>(), -3.981631053902966,
              1e-12);
  // Untruncated (p = 1, every token kept): the plain KL, 0.017092368186440554 -> -4.069123161478067.
  EXPECT_NEAR(suppression_log_kl(base64, supp2.unsqueeze(0), 0.6, 1.0, 5)[0].item<double>(), -4.069123161478067,
              1e-12);
  // The inputs are not modified (float64 input is not copied by .to()).
  EXPECT_TRUE(torch::equal(base64, base.to(torch::kFloat64).unsqueeze(0)));
  // Identical rows: exactly log(1e-9) whatever the rule.
  const torch::Tensor random = torch::randn({9, 300});
  EXPECT_TRUE(torch::all(suppression_log_kl(random, random.clone(), 0.6, 0.9999, 100) == kLogFloor).item<bool>());
  EXPECT_EQ(suppression_log_kl(torch::zeros({0, 5}), torch::zeros({0, 5}), 0.6, 0.9, 3).numel(), 0);
}

TEST(SuppressionLogKl, MatchesFullSortReference) {
  torch::manual_seed(12);
  // Logits spread like a real model's (some peaked rows, some flat), V = 1000,
  // 150 rows (several internal chunks).
  const torch::Tensor scale = torch::rand({150, 1}) * 6;
  const torch::Tensor base = torch::randn({150, 1000}) * scale;
  const torch::Tensor supp = base + 0.5 * torch::randn({150, 1000}) * scale;
  for (const RuleCase& rule : {RuleCase{"defaults", 0.6, 0.9999, 100}, RuleCase{"p", 0.6, 0.8, 100},
                               RuleCase{"k", 1.3, 0.95, 7}, RuleCase{"one", 0.6, 1e-6, 100}}) {
    const torch::Tensor got = suppression_log_kl(base, supp, rule.temperature, rule.top_p, rule.max_kept);
    double worst = 0;
    for (std::int64_t t = 0; t < 150; ++t)
      worst = std::max(worst, std::abs(got[t].item<double>() -
                                       reference_log_kl(base[t], supp[t], rule.temperature, rule.top_p, rule.max_kept)));
    EXPECT_LT(worst, 1e-9) << rule.name;
  }
}

TEST(SuppressionLogKl, RejectsBadInput) {
  const torch::Tensor a = torch::randn({3, 8});
  EXPECT_THROW(suppression_log_kl(a, torch::randn({3, 9}), 0.6, 0.9, 3), Error);
  EXPECT_THROW(suppression_log_kl(a[0], a[0], 0.6, 0.9, 3), Error);
  EXPECT_THROW(suppression_log_kl(a, torch::Tensor(), 0.6, 0.9, 3), Error);
  EXPECT_THROW(suppression_log_kl(a.to(torch::kInt64), a.to(torch::kInt64), 0.6, 0.9, 3), Error);
  EXPECT_THROW(suppression_log_kl(torch::zeros({3, 0}), torch::zeros({3, 0}), 0.6, 0.9, 3), Error);
  EXPECT_THROW(suppression_log_kl(a, a, 0.0, 0.9, 3), Error);
  EXPECT_THROW(suppression_log_kl(a, a, 0.6, 0.0, 3), Error);
  EXPECT_THROW(suppression_log_kl(a, a, 0.6, 1.5, 3), Error);
  EXPECT_THROW(suppression_log_kl(a, a, 0.6, 0.9, 0), Error);
}

// ---------------------------------------------------------------------------
// centre_suppression_matrix
// ---------------------------------------------------------------------------

TEST(CentreSuppressionMatrix, MasksAndCentresRows) {
  torch::manual_seed(4);
  const std::int64_t S = 6;
  torch::Tensor raw = torch::randn({S, S}, torch::kFloat64) * 3;
  raw[4][1] = kNaN;  // a missing entry is skipped, stays NaN
  const torch::Tensor c = centre_suppression_matrix(raw);
  ASSERT_EQ(c.sizes(), raw.sizes());
  ASSERT_EQ(c.scalar_type(), torch::kFloat64);
  for (std::int64_t j = 0; j < S; ++j) {
    double sum = 0, raw_sum = 0;
    int count = 0;
    for (std::int64_t i = 0; i < S; ++i) {
      const double v = c[j][i].item<double>();
      if (i >= j || (j == 4 && i == 1)) {
        EXPECT_TRUE(std::isnan(v)) << j << "," << i;
        continue;
      }
      sum += v;
      raw_sum += raw[j][i].item<double>();
      ++count;
    }
    if (count == 0) continue;  // row 0
    EXPECT_NEAR(sum, 0.0, 1e-12) << "row " << j;
    for (std::int64_t i = 0; i < j; ++i)
      if (!(j == 4 && i == 1))
        EXPECT_NEAR(c[j][i].item<double>(), raw[j][i].item<double>() - raw_sum / count, 1e-12);
  }
  // The input is not modified; float32 input is fine.
  EXPECT_FALSE(std::isnan(raw[3][4].item<double>()));
  EXPECT_EQ(centre_suppression_matrix(raw.to(torch::kFloat32)).scalar_type(), torch::kFloat64);
  EXPECT_EQ(centre_suppression_matrix(torch::zeros({0, 0})).numel(), 0);
  EXPECT_THROW(centre_suppression_matrix(torch::zeros({2, 3})), Error);
  EXPECT_THROW(centre_suppression_matrix(torch::zeros({4})), Error);
  EXPECT_THROW(centre_suppression_matrix(torch::zeros({2, 2}, torch::kInt64)), Error);
  EXPECT_THROW(centre_suppression_matrix(torch::Tensor()), Error);
}

}  // namespace
}  // namespace anchors::model
