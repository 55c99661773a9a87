#pragma once
// config.json of the supported architectures. Anything this library cannot run
// exactly (another architecture, an unknown rope_scaling type, partial
// rotary, ...) is an anchors::Error that names the file and the option.
//
// Absent fields take the defaults of the transformers configuration classes
// (LlamaConfig, Qwen2Config, Qwen3Config, MistralConfig, Qwen3MoeConfig,
// SmolLM3Config, Phi3Config, Olmo3Config, BertConfig); rope settings are read
// from "rope_scaling" (transformers 4) or "rope_parameters" (transformers 5),
// rope_theta from inside that object or from the top level.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace anchors::model {

enum class Architecture { kLlama, kQwen2, kQwen3, kBert, kMistral, kQwen3Moe, kSmolLM3, kPhi3, kOlmo3 };

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3, kYarn, kLongRope } type = Type::kNone;
  double factor = 1.0;
  // llama3 only
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  std::int64_t original_max_position_embeddings = 8192;  // llama3, yarn, longrope; absent: max_position_embeddings
  // yarn only (transformers' _compute_yarn_parameters)
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  bool truncate = true;
  double attention_factor = 1.0;  // yarn and longrope, resolved: cos and sin are multiplied by it
  // longrope only (Phi-3.5, Phi-4-mini): per-frequency divisors of the inverse
  // frequencies [rotary_dim / 2], the short ones while a forward pass's
  // positions stay within original_max_position_embeddings, the long ones
  // beyond (transformers decides per call, from the call's largest position).
  std::vector<double> short_factor, long_factor;
};

// The rotary embedding of a layer: base and scaling.
struct Rope {
  double theta = 10000.0;
  RopeScaling scaling;
};

struct ModelConfig {
  Architecture architecture = Architecture::kQwen2;
  std::string architecture_name;  // as in config.json, e.g. "Qwen2ForCausalLM"
  std::string model_type;         // "qwen2", "llama", "qwen3", "mistral", "qwen3_moe", "smollm3", "phi3", "olmo3", "bert"
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  // When absent, as transformers: Llama and BERT use num_attention_heads (no
  // GQA); Qwen2/Qwen3 use their class default 32 (an explicit null means
  // num_attention_heads). num_attention_heads is a multiple of it.
  std::int64_t num_key_value_heads = 0;
  // When absent: hidden_size / num_attention_heads, except Qwen3, whose
  // transformers default is 128 (an explicit null there also means
  // hidden_size / num_attention_heads).
  std::int64_t head_dim = 0;
  // The leading dimensions of each head that RoPE rotates (even): head_dim,
  // or head_dim · partial_rotary_factor (Phi-4-mini: 0.75); the rest pass
  // through unrotated.
  std::int64_t rotary_dim = 0;
  std::int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-6;             // decoder LMs
  double layer_norm_eps = 1e-12;          // BERT
  bool tie_word_embeddings = false;
  bool attention_bias = false;            // q/k/v biases (Qwen2 always; Llama's and Qwen3's attention_bias)
  bool attention_output_bias = false;     // o_proj bias (Llama's and Qwen3's attention_bias; never Qwen2)
  bool mlp_bias = false;                  // Llama's mlp_bias
  bool qk_norm = false;                   // RMSNorm on q and k: per head (Qwen3) or over all heads (OLMo-3)
  std::string hidden_act = "silu";        // "silu" (decoders; "swish" is read as silu), "gelu" (BERT, erf form)
  std::string torch_dtype;                // as saved ("bfloat16", ...), informational
  std::optional<std::int64_t> bos_token_id;
  std::optional<std::int64_t> eos_token_id;  // the first one when config.json lists several
  std::vector<std::int64_t> eos_token_ids;   // all of them
  std::int64_t type_vocab_size = 0;       // BERT
  std::int64_t pad_token_id = 0;          // BERT padding id (0 when absent or null)

  // Sparse MoE (Qwen3-MoE). A routed layer replaces the SwiGLU MLP with
  // num_experts SwiGLU experts of moe_intermediate_size; each token goes to
  // the num_experts_per_tok experts of highest router softmax, weighted by
  // those probabilities (renormalised to sum 1 when norm_topk_prob).
  std::int64_t num_experts = 0;           // 0: every layer dense
  std::int64_t num_experts_per_tok = 0;
  std::int64_t moe_intermediate_size = 0;
  bool norm_topk_prob = false;
  std::vector<bool> moe_layers;           // per layer: routed MLP; empty: none
  // Per layer: whether RoPE rotates q and k (SmolLM3 leaves every 4th layer
  // without positions, "NoPE"); empty: every layer.
  std::vector<bool> rope_layers;
  // Per layer: the sliding window W of its attention, 0 for full attention;
  // empty: every layer full. Query slot t sees key slots (t - W, t], as
  // transformers' sliding_window_overlay (`kv_idx > q_idx - W`).
  std::vector<std::int64_t> sliding_windows;
  // Per layer: whether its type is "sliding_attention" (config "layer_types";
  // it says which rope applies even without a window); empty: none.
  std::vector<bool> sliding_attention_layers;
  // The rope of the sliding_attention layers when it differs from the others'
  // (transformers 5's per-layer-type "rope_parameters"; OLMo-3 scales only its
  // full-attention layers with YaRN). None: every layer uses rope_theta and
  // rope_scaling.
  std::optional<Rope> sliding_attention_rope;

  bool is_decoder() const { return architecture != Architecture::kBert; }
  bool is_moe_layer(std::int64_t layer) const {
    return layer >= 0 && layer < static_cast<std::int64_t>(moe_layers.size()) && moe_layers[layer];
  }
  bool uses_rope(std::int64_t layer) const {
    return rope_layers.empty() || (layer >= 0 && layer < static_cast<std::int64_t>(rope_layers.size()) &&
                                   rope_layers[layer]);
  }
  bool is_sliding_attention_layer(std::int64_t layer) const {
    return layer >= 0 && layer < static_cast<std::int64_t>(sliding_attention_layers.size()) &&
           sliding_attention_layers[layer];
  }
  // The rope of one layer.
  Rope rope(std::int64_t layer) const {
    return is_sliding_attention_layer(layer) && sliding_attention_rope ? *sliding_attention_rope
                                                                       : Rope{rope_theta, rope_scaling};
  }
  std::int64_t sliding_window(std::int64_t layer) const {
    return layer >= 0 && layer < static_cast<std::int64_t>(sliding_windows.size()) ? sliding_windows[layer] : 0;
  }
  // The layers, in order, for which `has(layer)` holds (is_moe_layer, ...).
  template <typename Predicate>
  std::vector<std::int64_t> layers_where(Predicate has) const {
    std::vector<std::int64_t> out;
    for (std::int64_t layer = 0; layer < num_hidden_layers; ++layer)
      if (has(layer)) out.push_back(layer);
    return out;
  }

};

// "llama", "qwen2", "qwen3", "mistral", "qwen3_moe", "smollm3", "phi3", "olmo3", "bert".
const char* architecture_label(Architecture architecture);

// Parses config.json text; `source` names the file in errors.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source = "config.json");
// Reads <path> (a config.json file, or a folder containing one), a regular
// file within kConfigFileLimit (core/file_io.h); anchors::Error otherwise.
ModelConfig read_model_config(const std::string& path);

}  // namespace anchors::model
