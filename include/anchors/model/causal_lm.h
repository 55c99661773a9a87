#pragma once
// A decoder-only language model loaded from a Hugging Face checkpoint folder
// (config.json + model.safetensors or sharded safetensors) and run in LibTorch:
// LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM,
// Qwen3MoeForCausalLM (routed experts), SmolLM3ForCausalLM (layers without
// RoPE), Phi3ForCausalLM (fused weights, LongRoPE, partial rotary) and
// Olmo3ForCausalLM (post-sublayer norms), sliding windows and YaRN included,
// matching transformers' logits (fp32 to ~1e-5) on CPU and CUDA in float32,
// bfloat16 and float16.
//
//   auto model = anchors::model::CausalLM::load("/models/R1-Distill-Qwen-1.5B",
//                                               {.dtype = torch::kBFloat16, .device = torch::kCUDA});
//   torch::Tensor logits = model->forward(ids, positions);           // [B, T, V] float32
//   auto continuation = model->generate_greedy(prompt_ids, 256, eos);
//
// All attention goes through anchors::model::attention (attention.h), which is
// where an AttentionControl (key suppression / boosting) takes effect.
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "anchors/model/attention.h"
#include "anchors/model/config.h"
#include "anchors/model/kv_cache.h"

namespace anchors::model {

class Tokenizer;  // tokenizer.h

struct LoadOptions {
  torch::Dtype dtype = torch::kFloat32;  // float32, bfloat16 or float16: weights, activations, KV cache
  torch::Device device = torch::kCPU;
};

// Called once per layer with that layer's attention inputs, exactly as handed
// to attention(): queries [B, Hq, T, D] after RoPE (none in a NoPE layer; Qwen3's q_norm first), keys and
// values [B, Hkv, Tk, D] including cached slots. For white-box analyses; the
// tensors are views, clone() what you keep past the call.
using AttentionInputsCallback = std::function<void(std::int64_t layer, const torch::Tensor& queries,
                                                   const torch::Tensor& keys, const torch::Tensor& values)>;

class CausalLM {
 public:
  // Reads <dir>/config.json and the safetensors weights, converted to
  // options.dtype on options.device, and <dir>/tokenizer.json when present.
  // anchors::Error naming the file for a
  // missing or malformed file, an unsupported architecture or option, or a
  // missing / mis-shaped tensor (lm_head.weight may be absent only when
  // tie_word_embeddings is true).
  static std::shared_ptr<CausalLM> load(const std::string& dir, const LoadOptions& options = {});

  // The same model over tensors the caller already holds, named as in a
  // checkpoint (transformers' state_dict: `Model.from_transformers` in Python).
  // A tensor already in options.dtype on options.device is used as it is --
  // shared, not copied -- and projections the checkpoint keeps apart (q, k, v;
  // gate, up) stay apart, one GEMM each, instead of being stacked into a copy;
  // other tensors are converted. `source` names the tensors in errors.
  // anchors::Error as load() for an unsupported config, or a missing,
  // mis-shaped or non-floating tensor.
  static std::shared_ptr<CausalLM> from_tensors(ModelConfig config, const std::map<std::string, torch::Tensor>& tensors,
                                                const LoadOptions& options = {},
                                                std::shared_ptr<const Tokenizer> tokenizer = nullptr,
                                                const std::string& source = "tensors");

  // The weight tensors the model holds, by checkpoint name ("model.layers.0.self_attn.q_proj.weight", ...; a
  // projection stacked at load time under the stacked name, "...self_attn.qkv_proj.weight"); a tied lm_head is
  // not listed apart from the embedding.
  std::vector<std::pair<std::string, torch::Tensor>> named_weights() const;

  const ModelConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  // The folder's tokenizer.json, or null when it has none.
  std::shared_ptr<const Tokenizer> tokenizer() const { return tokenizer_; }
  torch::Dtype dtype() const { return dtype_; }
  torch::Device device() const { return device_; }
  std::int64_t num_parameters() const;  // distinct parameters (tied embeddings counted once)

  // Logits [B, T, V] (float32) for token ids [B, T] (int64) at RoPE positions
  // [B, T] or [T] (int64). With a cache, the T tokens follow the cache's
  // length() slots and are appended to it (the positions are still the
  // caller's: usually length() + arange(T)). With a control, its regions change
  // attention in every layer they name. anchors::Error for a wrong dtype, rank
  // or shape, ids outside [0, vocab_size), positions outside
  // [0, max_position_embeddings), a cache of another batch size or dtype, or
  // control regions outside the batch / heads / layers.
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& positions, KVCache* cache = nullptr,
                        const AttentionControl* control = nullptr) const;

  // The final (normed) hidden states [B, T, hidden_size] in dtype(), i.e.
  // forward() without the vocabulary projection; `on_attention` (optional)
  // sees every layer's attention inputs.
  torch::Tensor hidden_states(const torch::Tensor& ids, const torch::Tensor& positions, KVCache* cache = nullptr,
                              const AttentionControl* control = nullptr,
                              const AttentionInputsCallback& on_attention = {}) const;
  // Logits (float32) of hidden states [..., hidden_size].
  torch::Tensor project_to_vocab(const torch::Tensor& hidden) const;

  // Greedy decoding with a KV cache: the prompt is run once, then one token per
  // step. Returns the new tokens only (at most max_new_tokens; the eos token is
  // included when generated, and stops decoding). anchors::Error for an empty
  // prompt, ids outside the vocabulary, or prompt + max_new_tokens beyond
  // max_position_embeddings.
  std::vector<std::int64_t> generate_greedy(const std::vector<std::int64_t>& prompt, std::int64_t max_new_tokens,
                                            std::optional<std::int64_t> eos_id = std::nullopt) const;

  struct Weights;  // per-layer tensors in the layout forward() uses (causal_lm.cpp)

  CausalLM(ModelConfig config, std::string dir, torch::Dtype dtype, torch::Device device,
           std::shared_ptr<const Weights> weights, std::shared_ptr<const Tokenizer> tokenizer);

 private:
  torch::Tensor checked_ids(const torch::Tensor& ids) const;
  torch::Tensor checked_positions(const torch::Tensor& positions, std::int64_t batch, std::int64_t tokens) const;

  ModelConfig config_;
  std::string dir_;
  torch::Dtype dtype_;
  torch::Device device_;
  std::shared_ptr<const Weights> weights_;
  std::shared_ptr<const Tokenizer> tokenizer_;
};

}  // namespace anchors::model
