// CausalLM against transformers on the tiny random checkpoints of
// tests/data/tiny_models (written by tests/python/make_lm_fixtures.py):
// float32 logits, greedy continuations, and the KV cache, batching, per-lane
// positions, attention control and input checks on top of them.
#include "anchors/model/causal_lm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "expect_error.h"
#include "test_paths.h"
#include "anchors/core/error.h"
#include "anchors/model/config.h"
#include "anchors/model/safetensors.h"

namespace anchors::model {
namespace {

namespace fs = std::filesystem;

std::string fixture_dir(const std::string& name) { return anchors::testing::data_dir() + "/tiny_models/" + name; }

struct Expected {
  std::vector<std::int64_t> input_ids;
  torch::Tensor logits;  // [T, V] float32
  std::vector<std::int64_t> greedy_new_tokens;
};

Expected read_expected(const std::string& name) {
  std::ifstream in(fixture_dir(name) + "/expected.json");
  if (!in) throw std::runtime_error("missing fixture " + name + "; run tests/python/make_lm_fixtures.py");
  const nlohmann::json doc = nlohmann::json::parse(in);
  Expected e;
  e.input_ids = doc.at("input_ids").get<std::vector<std::int64_t>>();
  const auto rows = doc.at("logits").get<std::vector<std::vector<float>>>();
  e.logits = torch::empty({static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(rows.at(0).size())});
  for (std::size_t t = 0; t < rows.size(); ++t)
    e.logits[static_cast<std::int64_t>(t)].copy_(torch::tensor(rows[t]));
  e.greedy_new_tokens = doc.at("greedy_new_tokens").get<std::vector<std::int64_t>>();
  return e;
}

torch::Tensor ids_tensor(const std::vector<std::int64_t>& ids) {
  return torch::tensor(ids, torch::dtype(torch::kInt64)).unsqueeze(0);  // [1, T]
}

torch::Tensor positions_from(std::int64_t begin, std::int64_t count) {
  return torch::arange(begin, begin + count, torch::dtype(torch::kInt64));
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

const std::vector<std::string> kFixtures = {"qwen2_bias_tied",          "llama_rope_llama3_gqa2",
                                            "qwen3_gqa4_head16_tied",   "llama_linear_bias_mha_tied",
                                            "qwen3moe_top2of4_dense1",  "smollm3_nope1_tied",
                                            "phi3_fused_gqa2_tied",     "olmo3_window4_yarn"};

// ---------------------------------------------------------------------------
// Against transformers
// ---------------------------------------------------------------------------

class CausalLmVsTransformers : public ::testing::TestWithParam<std::string> {};

TEST_P(CausalLmVsTransformers, Float32LogitsMatch) {
  const Expected expected = read_expected(GetParam());
  const auto model = CausalLM::load(fixture_dir(GetParam()));
  const auto T = static_cast<std::int64_t>(expected.input_ids.size());
  const torch::Tensor logits = model->forward(ids_tensor(expected.input_ids), positions_from(0, T));
  ASSERT_EQ(logits.sizes(), (std::vector<std::int64_t>{1, T, model->config().vocab_size}));
  EXPECT_EQ(logits.scalar_type(), torch::kFloat32);
  const double diff = max_abs_diff(logits[0], expected.logits);
  RecordProperty("max_abs_diff", std::to_string(diff));
  std::cout << "[          ] " << GetParam() << ": fp32 max |logits - transformers| = " << diff << "\n";
  EXPECT_LT(diff, 1e-4);
}

TEST_P(CausalLmVsTransformers, GreedyDecodingMatches) {
  const Expected expected = read_expected(GetParam());
  const auto model = CausalLM::load(fixture_dir(GetParam()));
  const auto generated = model->generate_greedy(expected.input_ids,
                                                static_cast<std::int64_t>(expected.greedy_new_tokens.size()));
  EXPECT_EQ(generated, expected.greedy_new_tokens);
}

TEST_P(CausalLmVsTransformers, IncrementalDecodingEqualsFullForward) {
  // Prefix of 10, a chunk of 5, then single tokens: every piece through the cache.
  const Expected expected = read_expected(GetParam());
  const auto model = CausalLM::load(fixture_dir(GetParam()));
  const torch::Tensor ids = ids_tensor(expected.input_ids);
  const std::int64_t T = ids.size(1);
  KVCache cache;
  std::vector<torch::Tensor> pieces;
  std::int64_t done = 0;
  for (const std::int64_t size : {std::int64_t{10}, std::int64_t{5}}) {
    pieces.push_back(model->forward(ids.narrow(1, done, size), positions_from(done, size), &cache));
    done += size;
    EXPECT_EQ(cache.length(), done);
  }
  for (; done < T; ++done) pieces.push_back(model->forward(ids.narrow(1, done, 1), positions_from(done, 1), &cache));
  EXPECT_LT(max_abs_diff(torch::cat(pieces, 1)[0], expected.logits), 1e-4);
}

TEST_P(CausalLmVsTransformers, LowPrecisionStaysClose) {
  const Expected expected = read_expected(GetParam());
  const auto T = static_cast<std::int64_t>(expected.input_ids.size());
  for (const auto dtype : {torch::kBFloat16, torch::kFloat16}) {
    const auto model = CausalLM::load(fixture_dir(GetParam()), {.dtype = dtype});
    EXPECT_EQ(model->dtype(), dtype);
    const torch::Tensor logits = model->forward(ids_tensor(expected.input_ids), positions_from(0, T));
    EXPECT_EQ(logits.scalar_type(), torch::kFloat32);
    ASSERT_TRUE(torch::isfinite(logits).all().item<bool>());
    // Loose: the Python tests hold bf16 to twice transformers' own bf16 error.
    EXPECT_LT(max_abs_diff(logits[0], expected.logits), dtype == torch::kBFloat16 ? 0.5 : 0.1) << c10::toString(dtype);
  }
}

// from_tensors over the checkpoint's own zero-copy views: every weight held
// is the view itself (q/k/v and gate/up kept apart, not stacked), and the
// logits are transformers'.
TEST_P(CausalLmVsTransformers, FromTensorsSharesTheViews) {
  const Expected expected = read_expected(GetParam());
  const Checkpoint checkpoint = Checkpoint::open(fixture_dir(GetParam()));
  std::map<std::string, torch::Tensor> tensors;
  for (const std::string& name : checkpoint.names()) tensors[name] = checkpoint.view(name);
  const auto model = CausalLM::from_tensors(read_model_config(fixture_dir(GetParam())), tensors, {}, nullptr,
                                            GetParam());
  const auto T = static_cast<std::int64_t>(expected.input_ids.size());
  const torch::Tensor logits = model->forward(ids_tensor(expected.input_ids), positions_from(0, T));
  EXPECT_LT(max_abs_diff(logits[0], expected.logits), 1e-4);
  EXPECT_EQ(model->num_parameters(), CausalLM::load(fixture_dir(GetParam()))->num_parameters());
  EXPECT_TRUE(model->dir().empty());
  for (const auto& [name, tensor] : model->named_weights()) {
    if (tensors.count(name) == 0) {
      // Per-expert tensors (as saved) are stacked into one: the only copy (transformers 5 holds them stacked).
      EXPECT_NE(name.find("mlp.experts."), std::string::npos) << name;
      continue;
    }
    EXPECT_EQ(tensor.data_ptr(), tensors.at(name).data_ptr()) << name;
  }
  // Errors name the tensor: missing, mis-shaped, not floating point.
  std::map<std::string, torch::Tensor> broken = tensors;
  broken.erase("model.norm.weight");
  EXPECT_ANCHORS_ERROR(CausalLM::from_tensors(model->config(), broken, {}, nullptr, "mine"), "mine",
                       "model.norm.weight", "missing");
  broken = tensors;
  broken["model.norm.weight"] = torch::zeros({3});
  EXPECT_ANCHORS_ERROR(CausalLM::from_tensors(model->config(), broken, {}, nullptr, "mine"), "model.norm.weight",
                       "[3]");
  broken["model.norm.weight"] = torch::zeros({model->config().hidden_size}, torch::kInt64);
  EXPECT_ANCHORS_ERROR(CausalLM::from_tensors(model->config(), broken, {}, nullptr, "mine"), "model.norm.weight",
                       "floating");
}

INSTANTIATE_TEST_SUITE_P(CausalLmFixtures, CausalLmVsTransformers, ::testing::ValuesIn(kFixtures),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------------------
// Batching, positions, cache operations, control
// ---------------------------------------------------------------------------

class CausalLmBehaviour : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = CausalLM::load(fixture_dir("llama_rope_llama3_gqa2"));
    expected_ = read_expected("llama_rope_llama3_gqa2");
    ids_ = ids_tensor(expected_.input_ids);
  }
  torch::Tensor run(const torch::Tensor& ids, std::int64_t first_position = 0) const {
    return model_->forward(ids, positions_from(first_position, ids.size(1)));
  }
  std::shared_ptr<CausalLM> model_;
  Expected expected_;
  torch::Tensor ids_;
};

TEST_F(CausalLmBehaviour, ReportsConfigDtypeDeviceAndParameters) {
  EXPECT_EQ(model_->config().architecture, Architecture::kLlama);
  EXPECT_EQ(model_->dtype(), torch::kFloat32);
  EXPECT_EQ(model_->device(), torch::Device(torch::kCPU));
  // embed 256x32 + head 256x32 + 2 x (norms 2x32 + q,o 32x32 + k,v 16x32 + mlp 3x32x48) + final norm 32
  EXPECT_EQ(model_->num_parameters(), 2 * 256 * 32 + 2 * (2 * 32 + 2 * 32 * 32 + 2 * 16 * 32 + 3 * 32 * 48) + 32);
}

TEST_F(CausalLmBehaviour, BatchLanesAreIndependent) {
  const torch::Tensor other = torch::flip(ids_, {1});
  const torch::Tensor batched = model_->forward(torch::cat({ids_, other}, 0), positions_from(0, ids_.size(1)));
  EXPECT_LT(max_abs_diff(batched[0], expected_.logits), 1e-4);
  EXPECT_LT(max_abs_diff(batched[1], run(other)[0]), 1e-5);
}

TEST_F(CausalLmBehaviour, PerLanePositions) {
  // Lane 1 skips 20 positions half-way (as after removed padding). A uniform
  // shift would change nothing: RoPE only sees relative positions.
  const std::int64_t T = ids_.size(1), half = T / 2;
  const torch::Tensor gapped = torch::cat({positions_from(0, half), positions_from(half + 20, T - half)});
  const torch::Tensor positions = torch::stack({positions_from(0, T), gapped});  // [2, T]
  const torch::Tensor batched = model_->forward(torch::cat({ids_, ids_}, 0), positions);
  EXPECT_LT(max_abs_diff(batched[0], expected_.logits), 1e-4);
  EXPECT_LT(max_abs_diff(batched[1], model_->forward(ids_, gapped)[0]), 1e-5);
  EXPECT_LT(max_abs_diff(batched[1].narrow(0, 0, half), batched[0].narrow(0, 0, half)), 1e-5);
  EXPECT_GT(max_abs_diff(batched[1].narrow(0, half, T - half), batched[0].narrow(0, half, T - half)), 1e-3);
  EXPECT_LT(max_abs_diff(run(ids_, 7)[0], expected_.logits), 1e-4);  // the uniform shift
}

TEST_F(CausalLmBehaviour, HiddenStatesAndAttentionInputs) {
  const std::int64_t T = ids_.size(1);
  const ModelConfig& c = model_->config();
  std::vector<std::int64_t> layers_seen;
  const torch::Tensor hidden = model_->hidden_states(
      ids_, positions_from(0, T), nullptr, nullptr,
      [&](std::int64_t layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
        layers_seen.push_back(layer);
        EXPECT_EQ(q.sizes(), (std::vector<std::int64_t>{1, c.num_attention_heads, T, c.head_dim}));
        EXPECT_EQ(k.sizes(), (std::vector<std::int64_t>{1, c.num_key_value_heads, T, c.head_dim}));
        EXPECT_EQ(v.sizes(), k.sizes());
      });
  EXPECT_EQ(layers_seen, (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(hidden.sizes(), (std::vector<std::int64_t>{1, T, c.hidden_size}));
  EXPECT_LT(max_abs_diff(model_->project_to_vocab(hidden)[0], expected_.logits), 1e-4);
}

TEST_F(CausalLmBehaviour, SharedPrefixFannedOutToLanes) {
  // One prefix cached once, copied to two lanes that continue differently.
  const std::int64_t prefix = 12, T = ids_.size(1);
  KVCache cache;
  model_->forward(ids_.narrow(1, 0, prefix), positions_from(0, prefix), &cache);
  KVCache lanes = cache.repeat_lanes(2);
  const torch::Tensor tail = ids_.narrow(1, prefix, T - prefix);
  const torch::Tensor other_tail = torch::flip(tail, {1});
  const torch::Tensor continued =
      model_->forward(torch::cat({tail, other_tail}, 0), positions_from(prefix, T - prefix), &lanes);
  EXPECT_LT(max_abs_diff(continued[0], expected_.logits.narrow(0, prefix, T - prefix)), 1e-4);
  const torch::Tensor other_full = run(torch::cat({ids_.narrow(1, 0, prefix), other_tail}, 1));
  EXPECT_LT(max_abs_diff(continued[1], other_full[0].narrow(0, prefix, T - prefix)), 1e-5);
  // Rewinding the batch-1 cache and replaying the tail gives the same logits again.
  model_->forward(tail, positions_from(prefix, T - prefix), &cache);
  cache.truncate(prefix);
  EXPECT_EQ(cache.length(), prefix);
  const torch::Tensor replayed = model_->forward(tail, positions_from(prefix, T - prefix), &cache);
  EXPECT_LT(max_abs_diff(replayed[0], continued[0]), 1e-6);
}

// KVCache::share_prefix: the lanes see the prefix without copies of it, and
// every pass (several tokens, single decoding steps, lanes dropped, controls,
// the attention callback) equals the same pass over per-lane copies.
TEST_F(CausalLmBehaviour, SharedPrefixEqualsCopiedPrefix) {
  const std::int64_t prefix = 12, T = ids_.size(1), lanes = 3;
  KVCache cache;
  model_->forward(ids_.narrow(1, 0, prefix), positions_from(0, prefix), &cache);
  KVCache copied = cache.repeat_lanes(lanes);
  KVCache shared = KVCache::share_prefix(cache, lanes);
  EXPECT_EQ(shared.shared_length(), prefix);
  EXPECT_EQ(shared.length(), prefix);
  EXPECT_EQ(shared.batch(), lanes);
  const torch::Tensor tail = ids_.narrow(1, prefix, 6);
  const torch::Tensor tails = torch::cat({tail, torch::flip(tail, {1}), torch::roll(tail, 1, 1)}, 0);  // [3, 6]
  const auto both = [&](const torch::Tensor& step, const AttentionControl* control = nullptr) {
    const torch::Tensor positions = positions_from(copied.length(), step.size(1));
    const torch::Tensor want = model_->forward(step, positions, &copied, control);
    const torch::Tensor got = model_->forward(step, positions, &shared, control);
    EXPECT_LT(max_abs_diff(got, want), 1e-5);
    return got;
  };
  both(tails);  // several tokens at once: causal within the lanes' own slots
  EXPECT_EQ(shared.length(), prefix + 6);
  for (std::int64_t l = 0; l < model_->config().num_hidden_layers; ++l) {
    EXPECT_LT(max_abs_diff(shared.layer(l).first, copied.layer(l).first), 1e-5);
    EXPECT_EQ(shared.shared_layer(l).first.size(2), prefix);
  }
  const torch::Tensor first_tokens = tails.narrow(1, 0, 1);
  both(first_tokens);  // a decoding step
  // Suppressing prefix keys (the control needs the whole sequence) and ablating a head (it does not).
  AttentionControl suppress;
  suppress.regions.push_back(AttentionRegion::suppress(kEveryLane, {0, T}, {3, 7}));
  both(first_tokens, &suppress);
  AttentionControl ablate = AttentionControl::ablating({{1, 2}, {0, 0}});
  both(first_tokens, &ablate);
  // Lanes dropped (the sampler compacts finished lanes): the prefix stays shared.
  copied = copied.select_lanes({2, 0});
  shared = shared.select_lanes({2, 0});
  EXPECT_EQ(shared.shared_length(), prefix);
  EXPECT_EQ(shared.batch(), 2);
  both(torch::cat({first_tokens[2], first_tokens[0]}).unsqueeze(1));
  // The attention callback sees every slot, as with copies.
  const torch::Tensor step = torch::full({2, 1}, 7, torch::kInt64), at = positions_from(shared.length(), 1);
  KVCache shared_again = shared.clone(), copied_again = copied.clone();
  std::vector<torch::Tensor> seen_shared, seen_copied;
  model_->hidden_states(step, at, &shared_again, nullptr,
                        [&](std::int64_t, const torch::Tensor&, const torch::Tensor& k, const torch::Tensor&) {
                          seen_shared.push_back(k.clone());
                        });
  model_->hidden_states(step, at, &copied_again, nullptr,
                        [&](std::int64_t, const torch::Tensor&, const torch::Tensor& k, const torch::Tensor&) {
                          seen_copied.push_back(k.clone());
                        });
  ASSERT_EQ(seen_shared.size(), seen_copied.size());
  for (std::size_t l = 0; l < seen_shared.size(); ++l) EXPECT_LT(max_abs_diff(seen_shared[l], seen_copied[l]), 1e-6);

  EXPECT_ANCHORS_ERROR(shared.truncate(prefix - 1), "shared prefix");
  EXPECT_ANCHORS_ERROR(KVCache::share_prefix(cache, 1).repeat_lanes(2), "shares a prefix");
  EXPECT_ANCHORS_ERROR(shared.select_lanes({2}), "lane 2 outside [0, 2)");
  EXPECT_ANCHORS_ERROR(KVCache::share_prefix(copied, 2), "batch-1");
  EXPECT_ANCHORS_ERROR(KVCache::share_prefix(shared, 2), "shares a prefix itself");
  EXPECT_THROW(model_->forward(ids_.narrow(1, 0, 1), at, &shared), Error);  // 1 lane against 2
  EXPECT_TRUE(KVCache::share_prefix(KVCache(), 4).empty());
}

TEST_F(CausalLmBehaviour, SuppressionChangesOnlyLaterRowsOfItsLane) {
  const std::int64_t T = ids_.size(1);
  const torch::Tensor two_lanes = torch::cat({ids_, ids_}, 0);
  AttentionControl control;
  control.regions.push_back(AttentionRegion::suppress(1, {0, T}, {5, 9}));  // lane 1: hide tokens 5..8
  const torch::Tensor suppressed = model_->forward(two_lanes, positions_from(0, T), nullptr, &control);
  const torch::Tensor plain = run(ids_)[0];
  EXPECT_LT(max_abs_diff(suppressed[0], plain), 1e-5);                                      // other lane
  EXPECT_LT(max_abs_diff(suppressed[1].narrow(0, 0, 5), plain.narrow(0, 0, 5)), 1e-5);      // rows before
  EXPECT_GT(max_abs_diff(suppressed[1].narrow(0, 5, T - 5), plain.narrow(0, 5, T - 5)), 1e-3);

  // The same suppression with the unaffected prefix taken from the cache.
  KVCache cache;
  model_->forward(ids_.narrow(1, 0, 5), positions_from(0, 5), &cache);
  AttentionControl lane0;
  lane0.regions.push_back(AttentionRegion::suppress(0, {0, T}, {5, 9}));
  const torch::Tensor suffix =
      model_->forward(ids_.narrow(1, 5, T - 5), positions_from(5, T - 5), &cache, &lane0);
  EXPECT_LT(max_abs_diff(suffix[0], suppressed[1].narrow(0, 5, T - 5)), 1e-5);
}

TEST_F(CausalLmBehaviour, BadInputsAreErrors) {
  const std::int64_t T = ids_.size(1);
  const auto positions = positions_from(0, T);
  EXPECT_THROW(model_->forward(ids_.to(torch::kFloat32), positions), Error);           // dtype
  EXPECT_THROW(model_->forward(ids_[0], positions), Error);                             // rank
  EXPECT_THROW(model_->forward(ids_.narrow(1, 0, 0), positions.narrow(0, 0, 0)), Error); // empty
  EXPECT_THROW(model_->forward(torch::full({1, 2}, 256, torch::kInt64), positions_from(0, 2)), Error);  // vocab
  EXPECT_THROW(model_->forward(torch::full({1, 2}, -1, torch::kInt64), positions_from(0, 2)), Error);
  EXPECT_THROW(model_->forward(ids_, positions_from(0, T + 1)), Error);                 // shape
  EXPECT_THROW(model_->forward(ids_, positions_from(250, T)), Error);                   // >= 256 positions
  EXPECT_THROW(model_->forward(ids_, positions_from(-1, T)), Error);
  EXPECT_THROW(model_->generate_greedy({}, 4), Error);
  EXPECT_THROW(model_->generate_greedy({1, 2, 300}, 4), Error);
  EXPECT_THROW(model_->generate_greedy(expected_.input_ids, 240), Error);             // past max positions
  KVCache two_lanes;
  model_->forward(torch::cat({ids_, ids_}, 0), positions, &two_lanes);
  EXPECT_THROW(model_->forward(ids_, positions_from(T, T), &two_lanes), Error);         // batch differs
  AttentionControl control;
  control.regions.push_back(AttentionRegion::suppress(1, {0, T}, {0, 2}));
  EXPECT_THROW(model_->forward(ids_, positions, nullptr, &control), Error);             // lane 1 of 1
}

TEST_F(CausalLmBehaviour, GreedyStopsAtEos) {
  const auto full = model_->generate_greedy(expected_.input_ids, 16);
  ASSERT_GE(full.size(), 4u);
  const auto stopped = model_->generate_greedy(expected_.input_ids, 16, full[3]);
  const auto first = std::find(full.begin(), full.end(), full[3]);
  EXPECT_EQ(stopped, std::vector<std::int64_t>(full.begin(), first + 1));  // eos included
  EXPECT_TRUE(model_->generate_greedy(expected_.input_ids, 0).empty());
}

// ---------------------------------------------------------------------------
// Loading errors
// ---------------------------------------------------------------------------

TEST(CausalLmLoad, MissingFolderAndMissingHeadAreErrors) {
  EXPECT_THROW(CausalLM::load(fixture_dir("no_such_model")), Error);
  // A tied checkpoint whose config claims an untied head: lm_head.weight is missing.
  anchors::testing::ScratchDir scratch("untied");
  const std::string source = fixture_dir("qwen2_bias_tied");
  fs::copy_file(source + "/model.safetensors", scratch.file("model.safetensors"));
  std::ifstream in(source + "/config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config["tie_word_embeddings"] = false;
  std::ofstream(scratch.file("config.json")) << config.dump();
  try {
    CausalLM::load(scratch.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lm_head.weight"), std::string::npos) << e.what();
  }
  EXPECT_THROW(CausalLM::load(source, {.dtype = torch::kFloat64}), Error);
}

}  // namespace
}  // namespace anchors::model
