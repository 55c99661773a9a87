// config.json: the defaults of transformers' configuration classes
// (transformers 5.x: LlamaConfig, Qwen2Config, Qwen3Config, BertConfig), the
// rope_scaling spellings of transformers 4 and 5, and every unsupported option.
#include "anchors/model/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "anchors/core/error.h"

namespace fs = std::filesystem;
using anchors::model::Architecture;
using anchors::model::ModelConfig;
using anchors::model::parse_model_config;
using anchors::model::read_model_config;
using anchors::model::RopeScaling;

namespace {

ModelConfig parse(const std::string& text) { return parse_model_config(text, "test/config.json"); }

// Expects parse(text) to throw an anchors::Error mentioning the file and every needle.
void expect_rejected(const std::string& text, const std::vector<std::string>& needles) {
  try {
    parse(text);
    ADD_FAILURE() << "expected anchors::Error for " << text;
  } catch (const anchors::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("test/config.json"), std::string::npos) << message;
    for (const auto& needle : needles)
      EXPECT_NE(message.find(needle), std::string::npos) << "\"" << message << "\" lacks \"" << needle << "\"";
  }
}

TEST(ModelConfigTest, LlamaDefaults) {
  const auto c = parse(R"({"architectures": ["LlamaForCausalLM"]})");
  EXPECT_EQ(c.architecture, Architecture::kLlama);
  EXPECT_EQ(c.architecture_name, "LlamaForCausalLM");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_TRUE(c.is_decoder());
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 11008);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.attention_output_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.hidden_act, "silu");
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
}

TEST(ModelConfigTest, LlamaGqaAndBiases) {
  const auto c = parse(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
    "num_attention_heads": 8, "num_key_value_heads": 2, "attention_bias": true, "mlp_bias": true,
    "tie_word_embeddings": true, "head_dim": null, "bos_token_id": null, "eos_token_id": [5, 6]})");
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.attention_output_bias);
  EXPECT_TRUE(c.mlp_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.bos_token_id.has_value());
  EXPECT_EQ(c.eos_token_id, 5);
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int64_t>{5, 6}));
  // null kv heads: one per attention head
  EXPECT_EQ(parse(R"({"architectures": ["LlamaForCausalLM"], "num_attention_heads": 8, "hidden_size": 64,
    "num_key_value_heads": null})").num_key_value_heads, 8);
}

TEST(ModelConfigTest, Qwen2Defaults) {
  const auto c = parse(R"({"architectures": ["Qwen2ForCausalLM"]})");
  EXPECT_EQ(c.architecture, Architecture::kQwen2);
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 22016);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  // Qwen2Attention: q/k/v biases always, o_proj never, whatever the file says.
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.attention_output_bias);
  EXPECT_TRUE(parse(R"({"architectures": ["Qwen2ForCausalLM"], "attention_bias": false})").attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_FALSE(c.bos_token_id.has_value());
  EXPECT_FALSE(c.eos_token_id.has_value());
}

TEST(ModelConfigTest, Qwen2KvHeadsDefaultIs32NotNumAttentionHeads) {
  // Qwen2Config declares num_key_value_heads = 32; only an explicit null means "one per head".
  expect_rejected(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "num_attention_heads": 4})",
                  {"num_key_value_heads 32"});
  EXPECT_EQ(parse(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
    "num_key_value_heads": null})").num_key_value_heads, 4);
}

TEST(ModelConfigTest, DeepSeekR1DistillQwen14B) {
  // The config.json the reference traces were produced with (transformers 4 format).
  const auto c = parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 5120, "initializer_range": 0.02,
    "intermediate_size": 13824, "max_position_embeddings": 131072, "max_window_layers": 48,
    "model_type": "qwen2", "num_attention_heads": 40, "num_hidden_layers": 48, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": false,
    "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false,
    "vocab_size": 152064})");
  EXPECT_EQ(c.hidden_size, 5120);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_hidden_layers, 48);
  EXPECT_EQ(c.vocab_size, 152064);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.eos_token_id, 151643);
}

TEST(ModelConfigTest, Qwen3DefaultsAndQkNorm) {
  const auto c = parse(R"({"architectures": ["Qwen3ForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
    "num_key_value_heads": 2})");
  EXPECT_EQ(c.architecture, Architecture::kQwen3);
  EXPECT_EQ(c.model_type, "qwen3");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.head_dim, 128);  // Qwen3Config's default, not hidden_size / heads
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(parse(R"({"architectures": ["Qwen3ForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": null})").head_dim, 16);
  const auto biased = parse(R"({"architectures": ["Qwen3ForCausalLM"], "attention_bias": true})");
  EXPECT_TRUE(biased.attention_bias);
  EXPECT_TRUE(biased.attention_output_bias);
}

TEST(ModelConfigTest, Qwen3_8B) {
  const auto c = parse(R"({
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 12288, "max_position_embeddings": 40960,
    "max_window_layers": 36, "model_type": "qwen3", "num_attention_heads": 32, "num_hidden_layers": 36,
    "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
    "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);  // an integer in the file
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_EQ(c.max_position_embeddings, 40960);
}

TEST(ModelConfigTest, BertMiniLM) {
  // all-MiniLM-L6-v2's config.json as shipped.
  const auto c = parse(R"({
    "_name_or_path": "nreimers/MiniLM-L6-H384-uncased", "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": false, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 384, "initializer_range": 0.02, "intermediate_size": 1536,
    "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
    "num_hidden_layers": 6, "pad_token_id": 0, "position_embedding_type": "absolute",
    "transformers_version": "4.8.2", "type_vocab_size": 2, "use_cache": true, "vocab_size": 30522})");
  EXPECT_EQ(c.architecture, Architecture::kBert);
  EXPECT_FALSE(c.is_decoder());
  EXPECT_EQ(c.hidden_size, 384);
  EXPECT_EQ(c.num_hidden_layers, 6);
  EXPECT_EQ(c.num_attention_heads, 12);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_EQ(c.type_vocab_size, 2);
  EXPECT_EQ(c.vocab_size, 30522);
  EXPECT_DOUBLE_EQ(c.layer_norm_eps, 1e-12);
  EXPECT_EQ(c.hidden_act, "gelu");
  EXPECT_EQ(c.pad_token_id, 0);
}

TEST(ModelConfigTest, BertDefaultsAndModelTypeOnly) {
  const auto c = parse(R"({"model_type": "bert"})");
  EXPECT_EQ(c.architecture, Architecture::kBert);
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.num_hidden_layers, 12);
  EXPECT_EQ(c.intermediate_size, 3072);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.type_vocab_size, 2);
  EXPECT_EQ(parse(R"({"model_type": "qwen2"})").architecture, Architecture::kQwen2);
}

// ---------------------------------------------------------------------------
// Rope
// ---------------------------------------------------------------------------

TEST(ModelConfigTest, Llama3RopeScalingTransformers4Format) {
  // DeepSeek-R1-Distill-Llama-8B.
  const auto c = parse(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
    "max_position_embeddings": 131072, "num_attention_heads": 32, "num_key_value_heads": 8, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "bos_token_id": 128000, "eos_token_id": 128001, "vocab_size": 128256, "pretraining_tp": 1})");
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.num_key_value_heads, 8);
}

TEST(ModelConfigTest, Llama3RopeParametersTransformers5Format) {
  // rope_theta inside rope_parameters wins over a top-level one; the original
  // context defaults to max_position_embeddings, as in transformers.
  const auto c = parse(R"({"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 4096,
    "rope_theta": 1.0, "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32,
    "low_freq_factor": 2, "high_freq_factor": 8}})");
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 2.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 8.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
}

TEST(ModelConfigTest, LinearAndDefaultRope) {
  const auto linear = parse(R"({"architectures": ["LlamaForCausalLM"], "rope_scaling": {"type": "linear", "factor": 2.0}})");
  EXPECT_EQ(linear.rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_DOUBLE_EQ(linear.rope_scaling.factor, 2.0);
  EXPECT_DOUBLE_EQ(linear.rope_theta, 10000.0);

  const auto v5_default = parse(R"({"architectures": ["Qwen2ForCausalLM"],
    "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"}})");
  EXPECT_EQ(v5_default.rope_scaling.type, RopeScaling::Type::kNone);
  EXPECT_DOUBLE_EQ(v5_default.rope_theta, 1e6);

  // An empty rope_scaling falls through to rope_parameters; a non-empty one wins.
  const auto empty_scaling = parse(R"({"architectures": ["Qwen2ForCausalLM"], "rope_scaling": {},
    "rope_parameters": {"rope_type": "linear", "factor": 4}})");
  EXPECT_EQ(empty_scaling.rope_scaling.type, RopeScaling::Type::kLinear);
  const auto both = parse(R"({"architectures": ["LlamaForCausalLM"], "rope_scaling": {"type": "linear", "factor": 3},
    "rope_parameters": {"rope_type": "default"}})");
  EXPECT_DOUBLE_EQ(both.rope_scaling.factor, 3.0);
}

// YaRN (Qwen3's long-context setting, OLMo-3's full layers) as transformers'
// _compute_yarn_parameters reads it: the attention factor from the factor
// (0.1 ln f + 1), or from mscale / mscale_all_dim, or given; a null factor is
// the context ratio; zero or null betas take 32 / 1.
TEST(ModelConfigTest, YarnRope) {
  const auto qwen3 = parse(R"({"architectures": ["Qwen3ForCausalLM"], "max_position_embeddings": 131072,
    "rope_theta": 1000000, "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
    "original_max_position_embeddings": 32768}})");
  EXPECT_EQ(qwen3.rope_scaling.type, RopeScaling::Type::kYarn);
  EXPECT_DOUBLE_EQ(qwen3.rope_scaling.factor, 4.0);
  EXPECT_EQ(qwen3.rope_scaling.original_max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(qwen3.rope_scaling.attention_factor, 0.1 * std::log(4.0) + 1.0);
  EXPECT_DOUBLE_EQ(qwen3.rope_scaling.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(qwen3.rope_scaling.beta_slow, 1.0);
  EXPECT_TRUE(qwen3.rope_scaling.truncate);
  const auto given = parse(R"({"architectures": ["LlamaForCausalLM"], "rope_parameters": {"rope_type": "yarn",
    "factor": 8.0, "attention_factor": 1.2079, "beta_fast": 16, "beta_slow": 2, "truncate": false,
    "original_max_position_embeddings": 512}})");
  EXPECT_DOUBLE_EQ(given.rope_scaling.attention_factor, 1.2079);
  EXPECT_DOUBLE_EQ(given.rope_scaling.beta_fast, 16.0);
  EXPECT_DOUBLE_EQ(given.rope_scaling.beta_slow, 2.0);
  EXPECT_FALSE(given.rope_scaling.truncate);
  const auto mscale = parse(R"({"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 4096,
    "rope_scaling": {"rope_type": "yarn", "factor": null, "mscale": 2.0, "mscale_all_dim": 1.0,
    "original_max_position_embeddings": 1024, "beta_fast": null}})");
  EXPECT_DOUBLE_EQ(mscale.rope_scaling.factor, 4.0);
  EXPECT_DOUBLE_EQ(mscale.rope_scaling.attention_factor, (0.2 * std::log(4.0) + 1.0) / (0.1 * std::log(4.0) + 1.0));
  EXPECT_DOUBLE_EQ(mscale.rope_scaling.beta_fast, 32.0);
  // A pretraining context at the top level (where Phi-3 keeps it) wins.
  EXPECT_EQ(parse(R"({"architectures": ["LlamaForCausalLM"], "original_max_position_embeddings": 2048,
    "rope_scaling": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 999}})")
                .rope_scaling.original_max_position_embeddings,
            2048);
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "rope_scaling": {"rope_type": "yarn", "factor": 2.0,
    "attention_factor": -1}})", {"attention_factor"});
}

TEST(ModelConfigTest, UnsupportedRope) {
  for (const std::string type : {"dynamic", "proportional", "su"})  // "su": Phi-3's name for longrope only
    expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "rope_scaling": {"rope_type": ")" + type +
                        R"(", "factor": 4.0, "original_max_position_embeddings": 4096}})",
                    {type, "rope_scaling", "not supported"});
  expect_rejected(R"({"architectures": ["Qwen2ForCausalLM"], "rope_parameters": {"rope_type": "dynamic", "factor": 4.0}})",
                  {"dynamic", "rope_parameters"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "rope_scaling": {"rope_type": "linear"}})",
                  {"factor", "required"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "rope_scaling": {"rope_type": "llama3", "factor": 8,
    "low_freq_factor": 1}})", {"high_freq_factor"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "rope_scaling": {"rope_type": "linear", "factor": "2"}})",
                  {"factor", "number"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "rope_scaling": "linear"})", {"rope_scaling"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "partial_rotary_factor": 0.5})",
                  {"partial_rotary_factor"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "rope_parameters": {"rope_type": "default",
    "partial_rotary_factor": 0.25}})", {"partial_rotary_factor", "Phi3ForCausalLM"});
  // Per-layer-type rope on a family that has no layer types.
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "rope_parameters": {"full_attention":
    {"rope_type": "default"}, "sliding_attention": {"rope_type": "default", "rope_theta": 5}}})",
                  {"layer_types", "sliding_attention"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "rope_theta": -1})", {"rope_theta"});
}

// ---------------------------------------------------------------------------
// Sliding windows (Qwen2/Qwen3)
// ---------------------------------------------------------------------------

// MistralConfig's defaults (transformers 5), and its window on every layer
// (class default 4096; null: none).
TEST(ModelConfigTest, MistralDefaultsAndWindow) {
  const auto c = parse(R"({"architectures": ["MistralForCausalLM"], "sliding_window": null})");
  EXPECT_EQ(c.architecture, Architecture::kMistral);
  EXPECT_STREQ(architecture_label(c.architecture), "mistral");
  EXPECT_EQ(c.model_type, "mistral");
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_FALSE(c.attention_bias || c.attention_output_bias || c.mlp_bias || c.qk_norm);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  // Magistral-Small-2509's shape: head_dim 128 with hidden 5120 / 32 heads.
  const auto magistral = parse(R"({"architectures": ["MistralForCausalLM"], "hidden_size": 5120,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 32768,
    "num_hidden_layers": 40, "max_position_embeddings": 131072, "rope_theta": 1000000000.0,
    "sliding_window": null, "vocab_size": 131072, "model_type": "mistral"})");
  EXPECT_EQ(magistral.head_dim, 128);
  EXPECT_DOUBLE_EQ(magistral.rope_theta, 1e9);
  EXPECT_EQ(parse(R"({"architectures": ["MistralForCausalLM"], "num_key_value_heads": null, "sliding_window": null})")
                .num_key_value_heads,
            32);
  EXPECT_TRUE(c.sliding_windows == std::vector<std::int64_t>(32, 0));
  // The class default window (4096), and Mistral-7B-v0.1's, on every layer.
  EXPECT_TRUE(parse(R"({"architectures": ["MistralForCausalLM"]})").sliding_windows ==
              std::vector<std::int64_t>(32, 4096));
  const auto v01 = parse(R"({"architectures": ["MistralForCausalLM"], "sliding_window": 4096,
    "max_position_embeddings": 32768, "num_hidden_layers": 2})");
  EXPECT_EQ(v01.sliding_window(0), 4096);
  EXPECT_EQ(v01.sliding_window(1), 4096);
  EXPECT_EQ(v01.sliding_window(2), 0);  // no such layer
  expect_rejected(R"({"architectures": ["MistralForCausalLM"], "sliding_window": 0})", {"sliding_window"});
}

// Qwen3MoeConfig's defaults (transformers 5) and its routed layers.
TEST(ModelConfigTest, Qwen3MoeDefaultsAndRoutedLayers) {
  const auto c = parse(R"({"architectures": ["Qwen3MoeForCausalLM"]})");
  EXPECT_EQ(c.architecture, Architecture::kQwen3Moe);
  EXPECT_STREQ(architecture_label(c.architecture), "qwen3_moe");
  EXPECT_EQ(c.model_type, "qwen3_moe");
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_hidden_layers, 24);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 64);  // hidden / heads: unlike Qwen3Config, no 128 default
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.num_experts, 128);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.moe_intermediate_size, 768);
  EXPECT_FALSE(c.norm_topk_prob);
  ASSERT_EQ(c.moe_layers.size(), 24u);
  for (std::int64_t i = 0; i < 24; ++i) EXPECT_TRUE(c.is_moe_layer(i)) << i;
  EXPECT_TRUE(c.uses_rope(0));
  // Qwen3-30B-A3B's config.json (released with "num_experts"; transformers 5 saves "num_local_experts").
  const auto a3b = parse(R"({"architectures": ["Qwen3MoeForCausalLM"], "decoder_sparse_step": 1, "head_dim": 128,
    "hidden_size": 2048, "intermediate_size": 6144, "max_position_embeddings": 40960, "mlp_only_layers": [],
    "model_type": "qwen3_moe", "moe_intermediate_size": 768, "norm_topk_prob": true, "num_attention_heads": 32,
    "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 48, "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": null, "use_sliding_window": false,
    "vocab_size": 151936})");
  EXPECT_EQ(a3b.head_dim, 128);
  EXPECT_TRUE(a3b.norm_topk_prob);
  EXPECT_EQ(a3b.moe_layers.size(), 48u);
  // decoder_sparse_step 2 routes layers 1, 3, ...; mlp_only_layers stay dense; 0 experts: all dense.
  const auto sparse = parse(R"({"architectures": ["Qwen3MoeForCausalLM"], "num_hidden_layers": 6,
    "decoder_sparse_step": 2, "mlp_only_layers": [3, 17], "num_local_experts": 4, "num_experts_per_tok": 2})");
  EXPECT_EQ(sparse.num_experts, 4);
  const std::vector<bool> routed = {false, true, false, false, false, true};
  for (std::int64_t i = 0; i < 6; ++i) EXPECT_EQ(sparse.is_moe_layer(i), routed[i]) << i;
  const auto dense = parse(R"({"architectures": ["Qwen3MoeForCausalLM"], "num_hidden_layers": 2, "num_experts": 0})");
  EXPECT_FALSE(dense.is_moe_layer(0) || dense.is_moe_layer(1));

  expect_rejected(R"({"architectures": ["Qwen3MoeForCausalLM"], "num_experts": 4, "num_experts_per_tok": 5})",
                  {"num_experts_per_tok", "5", "4 experts"});
  expect_rejected(R"({"architectures": ["Qwen3MoeForCausalLM"], "num_experts": -1})", {"num_experts", "-1"});
  expect_rejected(R"({"architectures": ["Qwen3MoeForCausalLM"], "mlp_only_layers": ["x"]})", {"mlp_only_layers"});
  expect_rejected(R"({"architectures": ["Qwen3MoeForCausalLM"], "decoder_sparse_step": 0})", {"decoder_sparse_step"});
  // use_sliding_window slides every layer (class default window 4096).
  EXPECT_EQ(parse(R"({"architectures": ["Qwen3MoeForCausalLM"], "use_sliding_window": true})").sliding_window(23),
            4096);
  EXPECT_EQ(parse(R"({"architectures": ["Qwen3MoeForCausalLM"], "use_sliding_window": false,
    "sliding_window": 4096})").sliding_window(0), 0);
}

// SmolLM3Config's defaults and its layers without RoPE.
TEST(ModelConfigTest, SmolLM3DefaultsAndNoRopeLayers) {
  const auto c = parse(R"({"architectures": ["SmolLM3ForCausalLM"], "num_hidden_layers": 8})");
  EXPECT_EQ(c.architecture, Architecture::kSmolLM3);
  EXPECT_STREQ(architecture_label(c.architecture), "smollm3");
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.num_attention_heads, 16);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rope_theta, 2000000.0);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_id, 128001);
  EXPECT_FALSE(c.qk_norm);
  // no_rope_layer_interval 4: layers 3 and 7 have no RoPE.
  for (std::int64_t i = 0; i < 8; ++i) EXPECT_EQ(c.uses_rope(i), (i + 1) % 4 != 0) << i;
  EXPECT_FALSE(c.is_moe_layer(0));
  const auto listed = parse(R"({"architectures": ["SmolLM3ForCausalLM"], "num_hidden_layers": 3,
    "no_rope_layers": [0, 1, 1], "attention_bias": true, "mlp_bias": true, "rope_theta": 5000000.0})");
  EXPECT_FALSE(listed.uses_rope(0));
  EXPECT_TRUE(listed.uses_rope(1) && listed.uses_rope(2));
  EXPECT_TRUE(listed.attention_bias && listed.attention_output_bias && listed.mlp_bias);
  EXPECT_DOUBLE_EQ(listed.rope_theta, 5e6);
  expect_rejected(R"({"architectures": ["SmolLM3ForCausalLM"], "num_hidden_layers": 3, "no_rope_layers": [1, 1]})",
                  {"no_rope_layers", "3"});
  expect_rejected(R"({"architectures": ["SmolLM3ForCausalLM"], "num_hidden_layers": 2, "no_rope_layers": [1, 2]})",
                  {"no_rope_layers", "2"});
  // use_sliding_window: the NoPE layers slide (its default layer types), or those "layer_types" names.
  EXPECT_TRUE(parse(R"({"architectures": ["SmolLM3ForCausalLM"], "num_hidden_layers": 4, "use_sliding_window": true,
    "sliding_window": 128})").sliding_windows == (std::vector<std::int64_t>{0, 0, 0, 128}));
  EXPECT_TRUE(parse(R"({"architectures": ["SmolLM3ForCausalLM"], "num_hidden_layers": 2, "use_sliding_window": true,
    "sliding_window": 64, "layer_types": ["sliding_attention", "full_attention"]})").sliding_windows ==
              (std::vector<std::int64_t>{64, 0}));
  EXPECT_TRUE(parse(R"({"architectures": ["SmolLM3ForCausalLM"], "num_hidden_layers": 4,
    "use_sliding_window": false, "sliding_window": 128})").sliding_windows == std::vector<std::int64_t>(4, 0));
}

// Phi3Config's defaults.
TEST(ModelConfigTest, Phi3Defaults) {
  const auto c = parse(R"({"architectures": ["Phi3ForCausalLM"]})");
  EXPECT_EQ(c.architecture, Architecture::kPhi3);
  EXPECT_STREQ(architecture_label(c.architecture), "phi3");
  EXPECT_EQ(c.vocab_size, 32064);
  EXPECT_EQ(c.num_key_value_heads, 32);  // None: one per attention head
  EXPECT_EQ(c.head_dim, 96);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 32000);
  EXPECT_FALSE(c.attention_bias || c.attention_output_bias || c.mlp_bias || c.qk_norm);
  // Phi-4-reasoning's shape: default rope, no window.
  const auto phi4 = parse(R"({"architectures": ["Phi3ForCausalLM"], "hidden_size": 5120, "intermediate_size": 17920,
    "max_position_embeddings": 32768, "model_type": "phi3", "num_attention_heads": 40, "num_hidden_layers": 40,
    "num_key_value_heads": 10, "original_max_position_embeddings": 32768, "rope_scaling": null,
    "rope_theta": 500000, "sliding_window": null, "vocab_size": 100352})");
  EXPECT_EQ(phi4.head_dim, 128);
  EXPECT_DOUBLE_EQ(phi4.rope_theta, 500000.0);
  EXPECT_EQ(c.rotary_dim, 96);
}

// Phi-4-mini-reasoning's rope: 3/4 of each head rotates, LongRoPE with the
// pretraining context at the top level (Phi3Config's own default 4096).
TEST(ModelConfigTest, Phi3LongRopeAndPartialRotary) {
  std::string shorts, longs;
  for (int i = 0; i < 48; ++i) {
    shorts += (i ? ", " : "") + std::to_string(1.0 + 0.01 * i);
    longs += (i ? ", " : "") + std::to_string(2.0 + 0.5 * i);
  }
  const auto mini = parse(R"({"architectures": ["Phi3ForCausalLM"], "hidden_size": 3072, "num_attention_heads": 24,
    "num_key_value_heads": 8, "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
    "partial_rotary_factor": 0.75, "rope_theta": 10000.0, "rope_scaling": {"type": "longrope",
    "short_factor": [)" + shorts + R"(], "long_factor": [)" + longs + R"(]}})");
  EXPECT_EQ(mini.head_dim, 128);
  EXPECT_EQ(mini.rotary_dim, 96);
  EXPECT_EQ(mini.rope_scaling.type, RopeScaling::Type::kLongRope);
  EXPECT_EQ(mini.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(mini.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(mini.rope_scaling.attention_factor, std::sqrt(1 + std::log(32.0) / std::log(4096.0)));
  ASSERT_EQ(mini.rope_scaling.short_factor.size(), 48u);
  EXPECT_DOUBLE_EQ(mini.rope_scaling.long_factor[47], 2.0 + 0.5 * 47);
  // "su" and "yarn" are Phi3Config's older names for longrope; the factor lists must fit the rotated half.
  EXPECT_EQ(parse(R"({"architectures": ["Phi3ForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
    "rope_scaling": {"type": "su", "short_factor": [1, 1, 1, 1, 1, 1, 1, 1], "long_factor": [2, 2, 2, 2, 2, 2, 2,
    2]}})").rope_scaling.type,
            RopeScaling::Type::kLongRope);
  expect_rejected(R"({"architectures": ["Phi3ForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
    "rope_scaling": {"type": "longrope", "short_factor": [1.0], "long_factor": [1.0]}})",
                  {"short_factor", "1 entries", "8"});
  expect_rejected(R"({"architectures": ["Phi3ForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
    "rope_scaling": {"type": "longrope", "short_factor": [1, 1, 1, 1, 1, 1, 1, 1]}})", {"long_factor"});
  expect_rejected(R"({"architectures": ["Phi3ForCausalLM"], "partial_rotary_factor": 0.31})",  // 29.76 -> 29
                  {"partial_rotary_factor", "even"});
  expect_rejected(R"({"architectures": ["Phi3ForCausalLM"], "partial_rotary_factor": 1.5})", {"partial_rotary_factor"});
  EXPECT_EQ(parse(R"({"architectures": ["Phi3ForCausalLM"], "rope_parameters": {"rope_type": "default",
    "partial_rotary_factor": 0.5}, "partial_rotary_factor": 1.0})").rotary_dim,
            48);
  EXPECT_EQ(parse(R"({"architectures": ["Phi3ForCausalLM"], "sliding_window": 2047})").sliding_window(31), 2047);
  EXPECT_EQ(parse(R"({"architectures": ["Phi3ForCausalLM"]})").sliding_window(0), 0);
}

// Olmo3Config's defaults: sliding layers every 3 of 4 (window 4096), the
// full layers' rope apart from the sliding ones' as transformers 5 builds
// them, q/k norms over all heads.
TEST(ModelConfigTest, Olmo3DefaultsLayerTypesAndRope) {
  const auto c = parse(R"({"architectures": ["Olmo3ForCausalLM"], "num_hidden_layers": 8})");
  EXPECT_EQ(c.architecture, Architecture::kOlmo3);
  EXPECT_STREQ(architecture_label(c.architecture), "olmo3");
  EXPECT_EQ(c.vocab_size, 50304);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_FALSE(c.bos_token_id.has_value());
  EXPECT_EQ(c.eos_token_id, 50279);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_TRUE(c.sliding_windows == (std::vector<std::int64_t>{4096, 4096, 4096, 0, 4096, 4096, 4096, 0}));
  EXPECT_FALSE(c.sliding_attention_rope.has_value());  // one rope: theta 500000 for both types
  // OLMo-3-7B-Think's config.json (transformers 4): YaRN on the full layers only.
  const auto think = parse(R"({"architectures": ["Olmo3ForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 4,
    "max_position_embeddings": 65536, "rope_theta": 500000, "sliding_window": 4096, "attention_bias": false,
    "rope_scaling": {"attention_factor": 1.2079441541679836, "beta_fast": 32, "beta_slow": 1, "factor": 8.0,
    "original_max_position_embeddings": 8192, "rope_type": "yarn"}, "eos_token_id": 100257, "vocab_size": 100278,
    "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"]})");
  EXPECT_EQ(think.rope(3).scaling.type, RopeScaling::Type::kYarn);
  EXPECT_DOUBLE_EQ(think.rope(3).scaling.attention_factor, 1.2079441541679836);
  EXPECT_EQ(think.rope(0).scaling.type, RopeScaling::Type::kNone);
  EXPECT_DOUBLE_EQ(think.rope(0).theta, 500000.0);
  EXPECT_EQ(think.sliding_window(0), 4096);
  EXPECT_EQ(think.sliding_window(3), 0);
  // A flat rope_theta reaches only the full layers in transformers 5; the sliding ones keep the class's 500000.
  const auto flat = parse(R"({"architectures": ["Olmo3ForCausalLM"], "num_hidden_layers": 4, "rope_theta": 10000})");
  EXPECT_DOUBLE_EQ(flat.rope(3).theta, 10000.0);
  EXPECT_DOUBLE_EQ(flat.rope(0).theta, 500000.0);
  // transformers 5's per-layer-type rope_parameters, and no window at all.
  const auto nested = parse(R"({"architectures": ["Olmo3ForCausalLM"], "num_hidden_layers": 2, "sliding_window": null,
    "layer_types": ["sliding_attention", "full_attention"], "rope_parameters": {
    "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000},
    "sliding_attention": {"rope_type": "default", "rope_theta": 3000}}})");
  EXPECT_TRUE(nested.sliding_windows == (std::vector<std::int64_t>{0, 0}));
  EXPECT_EQ(nested.rope(1).scaling.type, RopeScaling::Type::kLinear);
  EXPECT_DOUBLE_EQ(nested.rope(1).theta, 1000.0);
  EXPECT_DOUBLE_EQ(nested.rope(0).theta, 3000.0);
  EXPECT_TRUE(parse(R"({"architectures": ["Olmo3ForCausalLM"], "attention_bias": true})").attention_output_bias);
}

TEST(ModelConfigTest, SlidingWindow) {
  const auto windows = [](const std::string& text) { return parse(text).sliding_windows; };
  using Windows = std::vector<std::int64_t>;
  // Off (the usual case): every layer full.
  EXPECT_TRUE(windows(R"({"architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 2, "use_sliding_window": false,
    "sliding_window": 4096})") == (Windows{0, 0}));
  // Windows from max_window_layers on: none when that is past the last layer.
  EXPECT_TRUE(windows(R"({"architectures": ["Qwen2ForCausalLM"], "use_sliding_window": true,
    "sliding_window": 128, "num_hidden_layers": 4, "max_window_layers": 2})") == (Windows{0, 0, 128, 128}));
  EXPECT_TRUE(windows(R"({"architectures": ["Qwen2ForCausalLM"], "use_sliding_window": true,
    "sliding_window": 128, "num_hidden_layers": 4, "max_window_layers": 4})") == Windows(4, 0));
  // use_sliding_window with an explicit null window: no window; absent: the class default 4096 from layer 28 on.
  EXPECT_TRUE(windows(R"({"architectures": ["Qwen3ForCausalLM"], "use_sliding_window": true,
    "sliding_window": null, "num_hidden_layers": 2})") == Windows(2, 0));
  const auto qwen3 = parse(R"({"architectures": ["Qwen3ForCausalLM"], "use_sliding_window": true})");
  EXPECT_EQ(qwen3.sliding_window(27), 0);
  EXPECT_EQ(qwen3.sliding_window(28), 4096);
  // transformers 5 layer_types
  EXPECT_TRUE(windows(R"({"architectures": ["Qwen2ForCausalLM"], "use_sliding_window": true, "sliding_window": 100,
    "num_hidden_layers": 2, "layer_types": ["sliding_attention", "full_attention"]})") == (Windows{100, 0}));
  EXPECT_TRUE(windows(R"({"architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 2,
    "layer_types": ["full_attention", "full_attention"]})") == Windows(2, 0));
  expect_rejected(R"({"architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 2,
    "layer_types": ["full_attention", "sliding_attention"]})", {"layer 1", "use_sliding_window"});
  expect_rejected(R"({"architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 2,
    "layer_types": ["full_attention", "chunked_attention"]})", {"chunked_attention"});
  expect_rejected(R"({"architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 3,
    "layer_types": ["full_attention"]})", {"layer_types"});
}

// Found while writing the model_config fuzz target (its input:
// fuzz/corpus/model_config/negative_max_window_layers.json): a negative max_window_layers with use_sliding_window indexed the per-layer
// table before its first entry (AddressSanitizer: heap-buffer-overflow). As
// in transformers (layer i slides when i >= max_window_layers) it means every
// layer.
TEST(ModelConfigTest, NegativeMaxWindowLayersWindowsEveryLayer) {
  EXPECT_TRUE(parse(R"({"architectures": ["Qwen2ForCausalLM"], "use_sliding_window": true, "sliding_window": 128,
    "num_hidden_layers": 2, "max_window_layers": -3})").sliding_windows == (std::vector<std::int64_t>{128, 128}));
  EXPECT_TRUE(parse(R"({"architectures": ["Qwen2ForCausalLM"], "use_sliding_window": true,
    "sliding_window": 65536, "num_hidden_layers": 2, "max_window_layers": -9223372036854775808})")
                  .sliding_windows == (std::vector<std::int64_t>{65536, 65536}));
}

// ---------------------------------------------------------------------------
// Unsupported options and malformed files
// ---------------------------------------------------------------------------

// Found with the fuzz targets (tests/cpp/core/json_depth_test.cpp has the
// story): a wrong type deep inside a field was quoted in the error message,
// and printing 100,000 nested arrays overflowed the stack.
TEST(ModelConfigTest, DeepNestingIsRefusedBeforeParsing) {
  expect_rejected(R"({"model_type": "qwen2", "num_hidden_layers": )" + std::string(100000, '[') +
                      std::string(100000, ']') + "}",
                  {"JSON nests deeper than 512"});
}

TEST(ModelConfigTest, UnsupportedArchitectures) {
  expect_rejected(R"({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral"})",
                  {"MixtralForCausalLM", "unsupported architecture", "nearest: MistralForCausalLM",
                   "Qwen3MoeForCausalLM"});
  expect_rejected(R"({"architectures": ["Qwen2MoeForCausalLM"]})", {"nearest: Qwen3MoeForCausalLM", "shared expert"});
  expect_rejected(R"({"architectures": ["GptOssForCausalLM"]})", {"nearest: none close", "attention sinks"});
  expect_rejected(R"({"architectures": ["Olmo2ForCausalLM"]})", {"nearest: Olmo3ForCausalLM", "norm placement"});
  // Any other name: the supported class nearest by spelling.
  expect_rejected(R"({"architectures": ["Qwen4ForCausalLM"]})", {"nearest: Qwen2ForCausalLM by name"});
  expect_rejected(R"({"architectures": ["BertForMaskedLM"]})", {"BertForMaskedLM"});
  expect_rejected(R"({"model_type": "gemma"})", {"gemma"});
  expect_rejected(R"({"vocab_size": 10})", {"architectures", "model_type"});
  expect_rejected(R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "llama"})", {"model_type", "qwen2"});
  expect_rejected(R"({"architectures": ["Qwen2ForCausalLM", "LlamaForCausalLM"]})", {"architectures"});
  expect_rejected(R"({"architectures": "Qwen2ForCausalLM"})", {"architectures"});
  expect_rejected(R"({"architectures": []})", {"architectures"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "quantization_config": {"quant_method": "gptq"}})",
                  {"quantization_config"});
}

TEST(ModelConfigTest, UnsupportedActivations) {
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "hidden_act": "gelu"})", {"hidden_act", "gelu"});
  expect_rejected(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_act": "relu"})", {"hidden_act", "relu"});
  expect_rejected(R"({"architectures": ["BertModel"], "hidden_act": "gelu_new"})", {"hidden_act", "gelu_new"});
  expect_rejected(R"({"architectures": ["BertModel"], "hidden_act": "silu"})", {"hidden_act", "silu"});
  EXPECT_EQ(parse(R"({"architectures": ["LlamaForCausalLM"], "hidden_act": "swish"})").hidden_act, "silu");
  expect_rejected(R"({"architectures": ["BertModel"], "position_embedding_type": "relative_key"})",
                  {"position_embedding_type", "relative_key"});
  expect_rejected(R"({"architectures": ["BertModel"], "is_decoder": true})", {"is_decoder"});
}

TEST(ModelConfigTest, InconsistentShapes) {
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "num_attention_heads": 6, "num_key_value_heads": 4,
    "hidden_size": 48})", {"num_attention_heads 6", "num_key_value_heads 4"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 100, "num_attention_heads": 8})",
                  {"hidden_size 100"});
  expect_rejected(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 100, "num_attention_heads": 8,
    "num_key_value_heads": 8})", {"head_dim"});
  EXPECT_EQ(parse(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 100, "num_attention_heads": 8,
    "num_key_value_heads": 8, "head_dim": 16})").head_dim, 16);
  expect_rejected(R"({"architectures": ["Qwen2ForCausalLM"], "head_dim": 15, "num_key_value_heads": 8})",
                  {"head_dim 15"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": -64})", {"hidden_size", "positive"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 0})", {"num_hidden_layers"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "rms_norm_eps": 0})", {"rms_norm_eps"});
  expect_rejected(R"({"architectures": ["BertModel"], "hidden_size": 100, "num_attention_heads": 12})",
                  {"hidden_size 100"});
}

TEST(ModelConfigTest, JsonGarbageAndWrongTypes) {
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], )", {"not valid JSON"});
  expect_rejected("", {"not valid JSON"});
  expect_rejected("\x89PNG\r\n", {"not valid JSON"});
  expect_rejected("[1, 2]", {"not a JSON object"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": "4096"})", {"hidden_size", "integer"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 4096.5})", {"hidden_size", "integer"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "tie_word_embeddings": "yes"})",
                  {"tie_word_embeddings", "true or false"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "rms_norm_eps": "1e-6"})", {"rms_norm_eps", "number"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "hidden_act": 3})", {"hidden_act", "string"});
  expect_rejected(R"({"architectures": ["LlamaForCausalLM"], "eos_token_id": [1, "2"]})", {"eos_token_id"});
  expect_rejected(R"({"architectures": ["Qwen2ForCausalLM"], "use_sliding_window": "no"})", {"use_sliding_window"});
  expect_rejected(R"({"architectures": ["Qwen2ForCausalLM"], "layer_types": "full_attention"})", {"layer_types"});
  expect_rejected(R"({"model_type": 7})", {"model_type"});
}

TEST(ModelConfigTest, ReadsFileOrFolder) {
  const fs::path dir = fs::temp_directory_path() / ("anchors_cfg_" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  {
    std::ofstream out(dir / "config.json");
    out << R"({"architectures": ["Qwen3ForCausalLM"], "head_dim": 64})";
  }
  EXPECT_EQ(read_model_config(dir.string()).head_dim, 64);
  EXPECT_EQ(read_model_config((dir / "config.json").string()).architecture, Architecture::kQwen3);
  {
    std::ofstream out(dir / "config.json");
    out << "{ not json";
  }
  try {
    read_model_config(dir.string());
    ADD_FAILURE() << "expected anchors::Error";
  } catch (const anchors::Error& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "config.json").string()), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
  try {
    read_model_config(dir.string());
    ADD_FAILURE() << "expected anchors::Error";
  } catch (const anchors::Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
}

}  // namespace

namespace {

// A corrupt layer count is an error naming the field, not a failed allocation
// of per-layer tables (it was a MemoryError through Python); an end-of-sequence
// id outside the vocabulary, which could never stop a rollout, is refused.
TEST(ModelConfigTest, ImplausibleLayerCountAndEosOutsideTheVocabularyAreErrors) {
  const std::string qwen2 = R"({"architectures": ["Qwen2ForCausalLM"], "vocab_size": 100, "hidden_size": 8,
    "intermediate_size": 16, "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64,)";
  expect_rejected(qwen2 + R"("num_hidden_layers": 1000000000000})",
                  {"\"num_hidden_layers\"", "1000000000000", "at most 100000"});
  expect_rejected(qwen2 + R"("num_hidden_layers": 2, "eos_token_id": 100})",
                  {"\"eos_token_id\" 100", "outside the vocabulary [0, 100)"});
  expect_rejected(qwen2 + R"("num_hidden_layers": 2, "eos_token_id": [5, -1]})", {"\"eos_token_id\" -1"});
  const ModelConfig ok = parse(qwen2 + R"("num_hidden_layers": 2, "eos_token_id": [99, 5]})");
  EXPECT_EQ(ok.eos_token_id, 99);
  expect_rejected(R"({"architectures": ["BertModel"], "num_hidden_layers": 1000000000000})",
                  {"\"num_hidden_layers\"", "at most 100000"});
}

}  // namespace
