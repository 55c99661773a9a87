// The batched sampler (anchors/model/sampler.h) on the tiny random checkpoints
// of tests/data/tiny_models: greedy equivalence, seeded reproducibility,
// independence from the batch, the empirical next-token distribution, stops,
// prefix reuse and input checks.
#include "anchors/model/sampler.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "anchors/core/error.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/tokenizer.h"
#include "expect_error.h"
#include "test_paths.h"

namespace anchors::model {
namespace {

std::shared_ptr<CausalLM> load_tiny(const std::string& name) {
  return CausalLM::load(anchors::testing::data_dir() + "/tiny_models/" + name);
}

const std::vector<std::int64_t> kPrompt = {11, 42, 7, 99, 3, 250, 18, 64};

TEST(SamplerTest, TemperatureZeroEqualsGreedy) {
  for (const std::string name :
       {"qwen2_bias_tied", "llama_linear_bias_mha_tied", "llama_rope_llama3_gqa2", "qwen3_gqa4_head16_tied"}) {
    SCOPED_TRACE(name);
    const auto model = load_tiny(name);
    const auto greedy = model->generate_greedy(kPrompt, 32);
    SamplingOptions o;
    o.temperature = 0;
    o.max_new_tokens = 32;
    const auto samples = sample(*model, kPrompt, 3, o);
    ASSERT_EQ(samples.size(), 3u);
    for (const auto& s : samples) {
      EXPECT_EQ(s.ids, greedy);
      EXPECT_EQ(s.finish_reason, "length");
    }
  }
}

// A memory budget that holds three lanes decodes eight in batches of 3, 3 and
// 2 with the very samples of one batch; budgets too small for one lane, or for
// the results, are errors before anything is allocated.
TEST(SamplerTest, LanesRunInBatchesThatFitTheMemoryBudget) {
  const auto model = load_tiny("qwen2_bias_tied");
  SamplingOptions o;
  o.temperature = 1.0;
  o.max_new_tokens = 12;
  for (std::int64_t id = 0; id < 16; ++id) o.stop_ids.push_back(id);
  o.seed = 77;
  const std::int64_t total_slots = static_cast<std::int64_t>(kPrompt.size()) + o.max_new_tokens;
  // A lane's cache copies the prefill cache's capacity, which is at least 64 slots.
  const std::int64_t lane = sampler_detail::lane_bytes(*model, std::max<std::int64_t>(total_slots, 64));
  EXPECT_GT(lane, 2 * 2 * model->config().num_hidden_layers * 64);  // at least K and V, twice
  const auto whole = sample(*model, kPrompt, 8, o);
  o.max_batch_bytes = 3 * lane + lane / 2;
  const auto batched = sample(*model, kPrompt, 8, o);
  for (std::size_t k = 0; k < 8; ++k) {
    EXPECT_EQ(whole[k].ids, batched[k].ids) << "lane " << k;
    EXPECT_EQ(whole[k].finish_reason, batched[k].finish_reason) << "lane " << k;
  }
  o.max_batch_bytes = lane - 1;
  EXPECT_ANCHORS_ERROR(sample(*model, kPrompt, 1, o), "one lane needs", "max_batch_bytes", "lower max_new_tokens");
  o.max_batch_bytes = 0;  // half the memory available: never a trillion samples
  EXPECT_ANCHORS_ERROR(sample(*model, kPrompt, std::int64_t{1} << 40, o), "1099511627776 samples",
                       "half the memory available now");
  EXPECT_GT(sampler_detail::default_batch_budget(torch::kCPU), 0);
}

TEST(SamplerTest, SeedsAreReproducibleAndIndependentOfBatch) {
  const auto model = load_tiny("qwen2_bias_tied");
  SamplingOptions o;
  o.temperature = 1.0;
  o.top_p = 0.95;
  o.max_new_tokens = 24;
  // A sixteenth of the vocabulary stops a lane, so lanes finish at different
  // steps and the batch is compacted while others keep going.
  for (std::int64_t id = 0; id < 16; ++id) o.stop_ids.push_back(id);
  o.seed = 1234;
  const auto a = sample(*model, kPrompt, 4, o);
  const auto b = sample(*model, kPrompt, 4, o);
  const auto c = sample(*model, kPrompt, 8, o);
  std::set<std::size_t> lengths;
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(a[k].ids, b[k].ids) << "lane " << k;
    EXPECT_EQ(a[k].ids, c[k].ids) << "lane " << k;
    EXPECT_EQ(a[k].finish_reason, c[k].finish_reason);
  }
  for (const auto& s : c) lengths.insert(s.ids.size());
  EXPECT_GT(lengths.size(), 1u) << "want lanes finishing at different steps";
  // Lanes differ from each other, and another seed gives other samples.
  EXPECT_NE(c[0].ids, c[1].ids);
  o.seed = 1235;
  const auto d = sample(*model, kPrompt, 4, o);
  int same = 0;
  for (std::size_t k = 0; k < 4; ++k) same += (d[k].ids == a[k].ids);
  EXPECT_LT(same, 4);
}

TEST(SamplerTest, TruncatedDistributionExact) {
  // p = (0.5, 0.3, 0.15, 0.05) at T = 1: top-p 0.9 keeps 3 (0.5, 0.8, 0.95 >= 0.9).
  const torch::Tensor logits = torch::log(torch::tensor({0.3, 0.05, 0.5, 0.15}, torch::kFloat64)).to(torch::kFloat32);
  torch::Tensor q = sampler_detail::truncated_distribution(logits, 1.0, 0.9, 0);
  EXPECT_NEAR(q[2].item<double>(), 0.5 / 0.95, 1e-6);
  EXPECT_NEAR(q[0].item<double>(), 0.3 / 0.95, 1e-6);
  EXPECT_NEAR(q[3].item<double>(), 0.15 / 0.95, 1e-6);
  EXPECT_EQ(q[1].item<double>(), 0.0);
  // top_p exactly reached: 0.8 keeps 2.
  q = sampler_detail::truncated_distribution(logits, 1.0, 0.8 - 1e-9, 0);
  EXPECT_NEAR(q[2].item<double>(), 0.5 / 0.8, 1e-6);
  EXPECT_EQ(q[3].item<double>(), 0.0);
  // top-k 2 then top-p 0.5 on the renormalised (0.625, 0.375): keeps 1.
  q = sampler_detail::truncated_distribution(logits, 1.0, 0.5, 2);
  EXPECT_EQ(q[2].item<double>(), 1.0);
  // Tiny top_p: at least one token.
  q = sampler_detail::truncated_distribution(logits, 1.0, 1e-12, 0);
  EXPECT_EQ(q[2].item<double>(), 1.0);
  // Temperature sharpens: T = 0.5 squares the probabilities.
  q = sampler_detail::truncated_distribution(logits, 0.5, 1.0, 0);
  const double z = 0.25 + 0.09 + 0.0225 + 0.0025;
  EXPECT_NEAR(q[2].item<double>(), 0.25 / z, 1e-6);
  EXPECT_NEAR(q[1].item<double>(), 0.0025 / z, 1e-6);
}

// Draws N next tokens through sample() (max_new_tokens = 1, N lanes, one seed)
// and compares their frequencies with softmax(logits / T) truncated by top-p /
// top-k and renormalised. With a fixed seed the outcome is deterministic; the
// bounds are what a correct sampler meets with overwhelming probability:
//  * chi-square over the kept tokens (every expected count >= 5 is checked):
//    X^2 ~ chi2(df = K - 1), mean df, sd sqrt(2 df); we require
//    X^2 < df + 6 sqrt(2 df) (about a 6-sigma bound);
//  * total variation: E[TV] <= 0.5 * sum_i sqrt(q_i / N) <= 0.5 sqrt(K / N); we
//    require TV < 0.5 sum_i sqrt(q_i / N) (the expectation bound itself; the
//    true mean is ~0.8x of it since E|X| = sqrt(2/pi) sd);
//  * no token outside the kept set is ever drawn.
// An independent reference of the truncated distribution, in plain C++:
// softmax(logits / T) in double, stable sort by probability (descending), keep
// the top k, renormalise, keep the smallest prefix whose cumulative probability
// reaches top_p (at least one), renormalise.
// min_p (transformers' order, last): of those, keep the tokens whose
// probability is >= min_p times the largest, renormalise.
torch::Tensor reference_distribution(const torch::Tensor& logits, double temperature, double top_p,
                                     std::int64_t top_k, double min_p = 0.0) {
  const torch::Tensor l = logits.to(torch::kFloat64).contiguous();
  const auto vocab = static_cast<std::size_t>(l.size(0));
  const double* x = l.data_ptr<double>();
  double max_logit = -INFINITY;
  for (std::size_t i = 0; i < vocab; ++i) max_logit = std::max(max_logit, x[i] / temperature);
  std::vector<double> p(vocab);
  double z = 0;
  for (std::size_t i = 0; i < vocab; ++i) z += (p[i] = std::exp(x[i] / temperature - max_logit));
  for (auto& v : p) v /= z;
  std::vector<std::size_t> order(vocab);
  for (std::size_t i = 0; i < vocab; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] > p[b]; });
  std::size_t keep = top_k > 0 ? std::min<std::size_t>(static_cast<std::size_t>(top_k), vocab) : vocab;
  double mass = 0;
  for (std::size_t i = 0; i < keep; ++i) mass += p[order[i]];
  double cum = 0;
  for (std::size_t i = 0; i < keep; ++i) {
    cum += p[order[i]] / mass;
    if (cum >= top_p) {
      keep = i + 1;
      break;
    }
  }
  const double floor = min_p * p[order[0]];
  while (keep > 1 && p[order[keep - 1]] < floor) --keep;
  torch::Tensor q = torch::zeros({l.size(0)}, torch::kFloat64);
  double kept_mass = 0;
  for (std::size_t i = 0; i < keep; ++i) kept_mass += p[order[i]];
  for (std::size_t i = 0; i < keep; ++i)
    q[static_cast<std::int64_t>(order[i])] = p[order[i]] / kept_mass;
  return q;
}

// CTRL's repetition penalty, literally: every distinct id of `history` has its
// logit divided by `penalty` when positive, multiplied when negative.
torch::Tensor reference_penalty(const torch::Tensor& logits, const std::vector<std::int64_t>& history, double penalty) {
  torch::Tensor out = logits.to(torch::kFloat64).clone().contiguous();
  double* x = out.data_ptr<double>();
  std::set<std::int64_t> distinct(history.begin(), history.end());
  for (const std::int64_t id : distinct) x[id] = x[id] < 0 ? x[id] * penalty : x[id] / penalty;
  return out;
}

struct FitResult {
  double chi2 = 0, df = 0, tv = 0, tv_bound = 0;
  std::int64_t kept = 0, outside = 0;
};

// Chi-square and total variation of `counts` (over `draws`) against q. Tokens
// with expected count < 5 are pooled into one chi-square bin (the chi-square
// approximation needs expected counts >= 5).
FitResult compare(const std::vector<double>& counts, const torch::Tensor& q, std::int64_t draws) {
  FitResult r;
  const auto n = static_cast<double>(draws);
  double pooled_expected = 0, pooled_observed = 0;
  std::int64_t bins = 0;
  for (std::int64_t v = 0; v < q.size(0); ++v) {
    const double qv = q[v].item<double>();
    const double observed = counts[static_cast<std::size_t>(v)];
    if (qv == 0) {
      r.outside += static_cast<std::int64_t>(observed);
      continue;
    }
    ++r.kept;
    r.tv += 0.5 * std::abs(observed / n - qv);
    r.tv_bound += 0.5 * std::sqrt(qv / n);
    const double expected = qv * n;
    if (expected < 5) {
      pooled_expected += expected;
      pooled_observed += observed;
      continue;
    }
    r.chi2 += (observed - expected) * (observed - expected) / expected;
    ++bins;
  }
  if (pooled_expected > 0) {
    r.chi2 += (pooled_observed - pooled_expected) * (pooled_observed - pooled_expected) / pooled_expected;
    ++bins;
  }
  r.df = static_cast<double>(bins - 1);
  // McDiarmid: TV moves by at most 1/N per draw, so P(TV > E[TV] + t) <= exp(-2 N t^2);
  // t = sqrt(ln(1e6) / (2N)) makes that <= 1e-6.
  r.tv_bound += std::sqrt(std::log(1e6) / (2 * n));
  return r;
}

double chi2_bound(double df) { return df + 6 * std::sqrt(2 * df); }

FitResult fit(const CausalLM& model, const SamplingOptions& o, std::int64_t draws) {
  KVCache scratch;
  const torch::Tensor raw = extend_prefix(model, scratch, kPrompt);
  const torch::Tensor logits = reference_penalty(raw, kPrompt, o.repetition_penalty);
  EXPECT_TRUE(torch::equal(logits, sampler_detail::apply_repetition_penalty(raw, kPrompt, o.repetition_penalty)));
  const torch::Tensor q = reference_distribution(logits, o.temperature, o.top_p, o.top_k, o.min_p);
  EXPECT_TRUE(torch::allclose(
      q, sampler_detail::truncated_distribution(logits, o.temperature, o.top_p, o.top_k, o.min_p), 1e-12, 1e-12));
  const auto samples = sample(model, kPrompt, draws, o);
  std::vector<double> counts(static_cast<std::size_t>(q.size(0)), 0.0);
  for (const auto& s : samples) {
    EXPECT_EQ(s.ids.size(), 1u);
    counts[static_cast<std::size_t>(s.ids.at(0))] += 1;
  }
  return compare(counts, q, draws);
}

TEST(SamplerTest, EmpiricalNextTokenFrequenciesMatchTruncatedSoftmax) {
  const auto model = load_tiny("qwen2_bias_tied");
  struct Case {
    double temperature, top_p;
    std::int64_t top_k;
    double min_p = 0, repetition_penalty = 1;
  };
  // The last two: min-p without top-p (the unsorted path) and with it, with the
  // repetition penalty on the prompt's ids (the tiny model's logits are nearly
  // flat, so a strong penalty is what visibly moves the distribution).
  for (const Case c : {Case{0.6, 0.95, 0}, Case{1.0, 0.8, 0}, Case{1.5, 0.99, 10}, Case{1.5, 1.0, 0, 0.1, 1.0},
                       Case{1.5, 0.97, 0, 0.2, 3.0}}) {
    SamplingOptions o;
    o.temperature = c.temperature;
    o.top_p = c.top_p;
    o.top_k = c.top_k;
    o.min_p = c.min_p;
    o.repetition_penalty = c.repetition_penalty;
    o.max_new_tokens = 1;
    o.seed = 20240601;
    const FitResult r = fit(*model, o, 20000);
    SCOPED_TRACE(::testing::Message() << "T " << c.temperature << " top_p " << c.top_p << " top_k " << c.top_k
                                      << " min_p " << c.min_p << " penalty " << c.repetition_penalty);
    std::printf("[sampler stat] T=%.2f top_p=%.2f top_k=%lld min_p=%.2f rep=%.1f: kept %lld tokens, chi2 %.1f (df "
                "%.0f, bound %.1f), TV %.4f (bound %.4f)\n",
                c.temperature, c.top_p, static_cast<long long>(c.top_k), c.min_p, c.repetition_penalty,
                static_cast<long long>(r.kept), r.chi2, r.df, chi2_bound(r.df), r.tv, r.tv_bound);
    EXPECT_GT(r.df, 2) << "want a non-trivial nucleus";
    EXPECT_EQ(r.outside, 0) << "tokens outside the nucleus were drawn";
    EXPECT_LT(r.chi2, chi2_bound(r.df));
    EXPECT_LT(r.tv, r.tv_bound);
  }
}

// The same bounds on peaked synthetic logits (the tiny random models' logits are
// nearly flat), through the per-row draw with one generator.
TEST(SamplerTest, EmpiricalFrequenciesOnPeakedLogits) {
  torch::manual_seed(7);
  const torch::Tensor logits = (torch::randn({256}) * 3).to(torch::kFloat32);
  const double temperature = 0.6, top_p = 0.95;
  const torch::Tensor q = reference_distribution(logits, temperature, top_p, 0);
  EXPECT_TRUE(torch::allclose(q, sampler_detail::truncated_distribution(logits, temperature, top_p, 0), 1e-12, 1e-12));
  torch::Generator g = sampler_detail::lane_generator(99, 0);
  const std::int64_t draws = 20000;
  std::vector<double> counts(256, 0.0);
  for (std::int64_t i = 0; i < draws; ++i) counts[sampler_detail::draw(logits, temperature, top_p, 0, g)] += 1;
  const FitResult r = compare(counts, q, draws);
  std::printf("[sampler stat] peaked logits T=0.6 top_p=0.95: kept %lld tokens, chi2 %.1f (df %.0f, bound %.1f), "
              "TV %.4f (bound %.4f), max q %.3f\n",
              static_cast<long long>(r.kept), r.chi2, r.df, chi2_bound(r.df), r.tv, r.tv_bound, q.max().item<double>());
  EXPECT_GT(r.df, 2);
  EXPECT_EQ(r.outside, 0);
  EXPECT_LT(r.chi2, chi2_bound(r.df));
  EXPECT_LT(r.tv, r.tv_bound);
}

TEST(SamplerTest, MinPAndRepetitionPenaltyExact) {
  // p = (0.3, 0.05, 0.5, 0.15): min_p 0.35 keeps p >= 0.175 -> tokens 2 and 0.
  const torch::Tensor logits = torch::log(torch::tensor({0.3, 0.05, 0.5, 0.15}, torch::kFloat64)).to(torch::kFloat32);
  for (const double top_p : {1.0, 0.9}) {  // without top-p (vocabulary order) and with it (sorted)
    SCOPED_TRACE(top_p);
    const torch::Tensor q = sampler_detail::truncated_distribution(logits, 1.0, top_p, 0, 0.35);
    EXPECT_NEAR(q[2].item<double>(), 0.5 / 0.8, 1e-6);
    EXPECT_NEAR(q[0].item<double>(), 0.3 / 0.8, 1e-6);
    EXPECT_EQ(q[3].item<double>(), 0.0);
    EXPECT_EQ(q[1].item<double>(), 0.0);
  }
  // min_p after top-p: top-p 0.5 keeps only token 2, whatever min_p says.
  EXPECT_EQ(sampler_detail::truncated_distribution(logits, 1.0, 0.5, 0, 0.01)[2].item<double>(), 1.0);
  // min_p 1 keeps the argmax alone; min_p 0.25 at T = 0.5 (p^2: .25, .09, .0225, .0025) keeps 2 and 0.
  EXPECT_EQ(sampler_detail::truncated_distribution(logits, 1.0, 1.0, 0, 1.0)[2].item<double>(), 1.0);
  const torch::Tensor sharp = sampler_detail::truncated_distribution(logits, 0.5, 1.0, 0, 0.25);
  EXPECT_NEAR(sharp[2].item<double>(), 0.25 / 0.34, 1e-6);
  EXPECT_EQ(sharp[3].item<double>(), 0.0);

  // The penalty divides positive logits, multiplies negative ones, once per distinct id.
  const torch::Tensor raw = torch::tensor({2.0, -1.0, 0.5, 3.0}, torch::kFloat32);
  const torch::Tensor penalised = sampler_detail::apply_repetition_penalty(raw, {0, 1, 1, 0}, 2.0);
  EXPECT_TRUE(torch::equal(penalised, torch::tensor({1.0, -2.0, 0.5, 3.0}, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(sampler_detail::apply_repetition_penalty(raw, {0, 1}, 1.0), raw.to(torch::kFloat64)));
  EXPECT_THROW(sampler_detail::apply_repetition_penalty(raw, {4}, 2.0), Error);
  EXPECT_THROW(sampler_detail::apply_repetition_penalty(raw, {0}, 0.0), Error);
}

// At temperature 0 the penalty applies to the prompt and to each lane's own
// generated tokens: sample() equals a plain greedy loop that penalises
// prompt + tokens so far before every argmax.
TEST(SamplerTest, RepetitionPenaltyFollowsEachLanesTokens) {
  const auto model = load_tiny("qwen2_bias_tied");
  const double penalty = 2.5;
  std::vector<std::int64_t> history = kPrompt, expected;
  KVCache cache;
  torch::Tensor logits = extend_prefix(*model, cache, kPrompt);
  for (int step = 0; step < 24; ++step) {
    const std::int64_t next = reference_penalty(logits, history, penalty).argmax().item<std::int64_t>();
    expected.push_back(next);
    history.push_back(next);
    logits = extend_prefix(*model, cache, {next});
  }
  SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = 24;
  o.repetition_penalty = penalty;
  for (const auto& s : sample(*model, kPrompt, 3, o)) EXPECT_EQ(s.ids, expected);
  // It changes the greedy path, and the penalised path repeats less.
  const auto greedy = model->generate_greedy(kPrompt, 24);
  EXPECT_NE(greedy, expected);
  const auto repeats = [](const std::vector<std::int64_t>& ids) {
    return ids.size() - std::set<std::int64_t>(ids.begin(), ids.end()).size();
  };
  std::printf("[sampler rep] repeated tokens in 24 greedy steps: %zu plain, %zu with penalty %.1f\n", repeats(greedy),
              repeats(expected), penalty);
  EXPECT_LE(repeats(expected), repeats(greedy));

  // Sampled lanes with the penalty keep their seeds' independence from n.
  o.temperature = 1.0;
  o.top_p = 0.95;
  o.seed = 17;
  const auto four = sample(*model, kPrompt, 4, o);
  const auto two = sample(*model, kPrompt, 2, o);
  EXPECT_EQ(four[0].ids, two[0].ids);
  EXPECT_EQ(four[1].ids, two[1].ids);
}

TEST(SamplerTest, StopIdsAndMaxNewTokens) {
  const auto model = load_tiny("qwen2_bias_tied");
  const auto greedy = model->generate_greedy(kPrompt, 20);
  SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = 20;
  o.stop_ids = {greedy[5]};
  // The first occurrence of greedy[5] ends the sample, and it is kept.
  const std::size_t first = static_cast<std::size_t>(std::find(greedy.begin(), greedy.end(), greedy[5]) - greedy.begin());
  auto s = sample(*model, kPrompt, 2, o);
  for (const auto& x : s) {
    EXPECT_EQ(x.ids, std::vector<std::int64_t>(greedy.begin(), greedy.begin() + first + 1));
    EXPECT_EQ(x.finish_reason, "stop");
  }
  o.stop_ids.clear();
  o.max_new_tokens = 7;
  o.temperature = 0.8;
  s = sample(*model, kPrompt, 5, o);
  for (const auto& x : s) {
    EXPECT_EQ(x.ids.size(), 7u);
    EXPECT_EQ(x.finish_reason, "length");
  }
  o.max_new_tokens = 0;
  s = sample(*model, kPrompt, 2, o);
  for (const auto& x : s) EXPECT_TRUE(x.ids.empty());
}

TEST(SamplerTest, TextOffsetsAndStopStrings) {
  const auto model = load_tiny("qwen2_bias_tied");
  // Qwen2's byte-level vocabulary: ids below 256 are single byte-level symbols.
  const auto tokenizer = Tokenizer::load(anchors::testing::data_dir() + "/tokenizers/qwen2");
  SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = 30;
  const auto s = sample(*model, kPrompt, 1, o, tokenizer.get()).at(0);
  EXPECT_EQ(s.text, tokenizer->decode(s.ids));
  ASSERT_EQ(s.offsets.size(), s.ids.size());
  std::size_t end = 0;
  for (std::size_t k = 0; k < s.ids.size(); ++k) {
    EXPECT_GE(s.offsets[k].begin, k == 0 ? 0 : s.offsets[k - 1].begin);
    EXPECT_LE(s.offsets[k].end, s.text.size());
    end = std::max(end, s.offsets[k].end);
  }
  EXPECT_EQ(end, s.text.size());
  // Stop at the first occurrence of the text of two tokens (from the 4th on)
  // that decode to whole characters.
  std::string stop;
  for (std::size_t k = 3; k + 1 < s.ids.size() && stop.empty(); ++k) {
    const std::string candidate = tokenizer->decode({s.ids[k], s.ids[k + 1]});
    if (candidate.find("\xEF\xBF\xBD") == std::string::npos) stop = candidate;
  }
  ASSERT_FALSE(stop.empty());
  std::size_t expect_len = 0;
  for (std::size_t k = 1; k <= s.ids.size(); ++k)
    if (tokenizer->decode(std::vector<std::int64_t>(s.ids.begin(), s.ids.begin() + k)).find(stop) != std::string::npos) {
      expect_len = k;
      break;
    }
  ASSERT_GT(expect_len, 0u);
  o.stop_strings = {stop};
  const auto t = sample(*model, kPrompt, 1, o, tokenizer.get()).at(0);
  EXPECT_EQ(t.finish_reason, "stop");
  EXPECT_EQ(t.ids, std::vector<std::int64_t>(s.ids.begin(), s.ids.begin() + expect_len));
  EXPECT_NE(t.text.find(stop), std::string::npos);
}

TEST(SamplerTest, PrefixCacheIsReusedAcrossCalls) {
  const auto model = load_tiny("qwen2_bias_tied");
  SamplingOptions o;
  o.temperature = 0.7;
  o.max_new_tokens = 12;
  o.seed = 5;
  KVCache prefix;
  const auto a = sample(*model, kPrompt, 3, o, nullptr, &prefix);
  EXPECT_EQ(prefix.length(), static_cast<std::int64_t>(kPrompt.size()));
  EXPECT_EQ(a[1].ids, sample(*model, kPrompt, 3, o)[1].ids);
  // The next sentence's prompt extends this one: only the new tokens are run.
  std::vector<std::int64_t> longer = kPrompt;
  longer.insert(longer.end(), {5, 6, 7});
  const auto b = sample(*model, longer, 3, o, nullptr, &prefix);
  EXPECT_EQ(prefix.length(), static_cast<std::int64_t>(longer.size()));
  for (std::size_t k = 0; k < 3; ++k) EXPECT_EQ(b[k].ids, sample(*model, longer, 3, o)[k].ids);
  // A prompt sharing only 4 tokens: rewind first.
  std::vector<std::int64_t> other(kPrompt.begin(), kPrompt.begin() + 4);
  other.insert(other.end(), {100, 101});
  prefix.truncate(4);
  const auto c = sample(*model, other, 2, o, nullptr, &prefix);
  EXPECT_EQ(c[0].ids, sample(*model, other, 2, o)[0].ids);
  // The same prompt again (cache already holds all of it).
  EXPECT_EQ(sample(*model, other, 2, o, nullptr, &prefix)[1].ids, c[1].ids);
}

// Greedy decoding by hand: one full forward pass per step with the control
// (no KV cache), argmax of the last position.
std::vector<std::int64_t> greedy_by_forward(const CausalLM& model, std::vector<std::int64_t> ids, std::int64_t steps,
                                            const AttentionControl& control) {
  std::vector<std::int64_t> out;
  for (std::int64_t step = 0; step < steps; ++step) {
    const auto T = static_cast<std::int64_t>(ids.size());
    const torch::Tensor logits =
        model.forward(torch::tensor(ids, torch::kInt64).unsqueeze(0), torch::arange(T, torch::kInt64), nullptr,
                      control.empty() ? nullptr : &control);
    out.push_back(logits[0][T - 1].argmax().item<std::int64_t>());
    ids.push_back(out.back());
  }
  return out;
}

// Each kind of control, starting in the prompt or after it: the cached,
// batched sampler decodes exactly what full uncached forward passes with the
// same control give, and the control changes the output.
TEST(SamplerTest, AttentionControlWhileGenerating) {
  const auto model = load_tiny("llama_rope_llama3_gqa2");
  const auto P = static_cast<std::int64_t>(kPrompt.size());
  SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = 10;
  const auto plain = sample(*model, kPrompt, 1, o)[0].ids;
  std::vector<AttentionControl> controls(4);
  controls[0].ablate_heads(0, {0, 2}).ablate_heads(1, {1});           // from slot 0
  controls[1].ablate_heads(1, {}, /*from=*/P + 2);                    // every head of layer 1, generated tokens
  controls[2].suppress_keys({1, 6}, /*from=*/5);                      // starts inside the prompt
  controls[3].boost_keys({0, 3}, 3.0, /*from=*/P, {}, /*heads=*/{1});
  for (std::size_t i = 0; i < controls.size(); ++i) {
    SCOPED_TRACE(i);
    o.control = controls[i];
    const auto expected = greedy_by_forward(*model, kPrompt, o.max_new_tokens, controls[i]);
    KVCache prefix;
    const auto got = sample(*model, kPrompt, 2, o, nullptr, &prefix);
    EXPECT_EQ(got[0].ids, expected);
    EXPECT_EQ(got[1].ids, expected);
    EXPECT_NE(got[0].ids, plain);
    // The cache keeps only the slots the control leaves unchanged, so the next
    // plain call from it is plain.
    EXPECT_EQ(prefix.length(), std::min(P, controls[i].first_query()));
    o.control = {};
    EXPECT_EQ(sample(*model, kPrompt, 1, o, nullptr, &prefix)[0].ids, plain);
    EXPECT_EQ(prefix.length(), P);
    // And a controlled call from a full plain cache recomputes what it must.
    o.control = controls[i];
    EXPECT_EQ(sample(*model, kPrompt, 1, o, nullptr, &prefix)[0].ids, expected);
    o.control = {};
  }
}

TEST(SamplerTest, AttentionControlErrors) {
  const auto model = load_tiny("qwen2_bias_tied");
  SamplingOptions o;
  o.max_new_tokens = 4;
  o.control.regions.push_back(AttentionRegion::suppress(0, {0, 10}, {0, 2}));
  EXPECT_ANCHORS_ERROR(sample(*model, kPrompt, 1, o), "every lane");
  o.control = {};
  o.control.ablate_heads(model->config().num_hidden_layers, {0});
  EXPECT_ANCHORS_ERROR(sample(*model, kPrompt, 1, o), "sample: attention control region 0: layer");
  o.control = {};
  o.control.ablate_heads(0, {model->config().num_attention_heads});
  EXPECT_ANCHORS_ERROR(sample(*model, kPrompt, 1, o), "head");
}

TEST(SamplerTest, BadInputsThrow) {
  const auto model = load_tiny("qwen2_bias_tied");
  SamplingOptions o;
  o.max_new_tokens = 4;
  EXPECT_THROW(sample(*model, {}, 1, o), Error);
  EXPECT_THROW(sample(*model, kPrompt, 0, o), Error);
  EXPECT_THROW(sample(*model, {1, 256}, 1, o), Error);
  EXPECT_THROW(sample(*model, {1, -1}, 1, o), Error);
  auto bad = o;
  bad.temperature = -0.1;
  EXPECT_THROW(sample(*model, kPrompt, 1, bad), Error);
  bad = o;
  bad.temperature = std::nan("");
  EXPECT_THROW(sample(*model, kPrompt, 1, bad), Error);
  for (const double p : {0.0, -0.5, 1.5, std::nan("")}) {
    bad = o;
    bad.top_p = p;
    EXPECT_THROW(sample(*model, kPrompt, 1, bad), Error) << p;
  }
  bad = o;
  bad.top_k = -1;
  EXPECT_THROW(sample(*model, kPrompt, 1, bad), Error);
  for (const double m : {-0.1, 1.5, std::nan("")}) {
    bad = o;
    bad.min_p = m;
    EXPECT_THROW(sample(*model, kPrompt, 1, bad), Error) << m;
  }
  for (const double r : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    bad = o;
    bad.repetition_penalty = r;
    EXPECT_THROW(sample(*model, kPrompt, 1, bad), Error) << r;
  }
  bad = o;
  bad.max_new_tokens = -1;
  EXPECT_THROW(sample(*model, kPrompt, 1, bad), Error);
  bad = o;
  bad.max_new_tokens = 256;  // 8 + 256 - 1 > 256 positions
  EXPECT_THROW(sample(*model, kPrompt, 1, bad), Error);
  bad = o;
  bad.stop_ids = {300};
  EXPECT_THROW(sample(*model, kPrompt, 1, bad), Error);
  bad = o;
  bad.stop_strings = {"x"};
  EXPECT_THROW(sample(*model, kPrompt, 1, bad), Error);  // no tokenizer
  KVCache too_long;
  extend_prefix(*model, too_long, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  EXPECT_THROW(sample(*model, kPrompt, 1, o, nullptr, &too_long), Error);
  KVCache two_lanes = too_long.repeat_lanes(2);
  EXPECT_THROW(sample(*model, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 1, o, nullptr, &two_lanes), Error);
}

}  // namespace
}  // namespace anchors::model
