#include "anchors/model/causal_lm.h"
#include "tensor_description.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <filesystem>
#include <numbers>
#include <sstream>

#include "anchors/core/error.h"
#include "anchors/model/device.h"
#include "anchors/model/safetensors.h"
#include "anchors/model/tokenizer.h"
#include "decoder_kernels.h"

namespace anchors::model {

// ---------------------------------------------------------------------------
// Weights
// ---------------------------------------------------------------------------

// What a decoder layer of one architecture has beyond the common Llama block
// (RMSNorm -> attention with RoPE -> residual -> RMSNorm -> SwiGLU -> residual).
struct DecoderTraits {
  bool qkv_bias = false;     // biases on q/k/v projections
  bool output_bias = false;  // bias on o_proj
  bool mlp_bias = false;     // biases on gate/up/down
  bool qk_norm = false;      // RMSNorm over head_dim on q and k, before RoPE
  bool qk_norm_all_heads = false;  // ... over all heads' q (and all k) at once instead (OLMo-3)
  bool fused_weights = false;  // the checkpoint holds qkv_proj and gate_up_proj already stacked (Phi-3)
  // Each sublayer's *output* is normed before the residual add, its input is
  // not (OLMo-2/3: post_attention_layernorm, post_feedforward_layernorm).
  bool post_norms = false;
};

struct DecoderLayerWeights {
  torch::Tensor input_norm;           // [hidden]; undefined with post norms
  torch::Tensor qkv_proj;             // [(Hq + 2 Hkv) * D, hidden]: q, k, v rows stacked, one GEMM
  torch::Tensor qkv_bias;             // [(Hq + 2 Hkv) * D] or undefined
  // Or, kept apart (shared tensors, CausalLM::from_tensors): one GEMM each.
  torch::Tensor q_proj, k_proj, v_proj;  // [Hq D, hidden], [Hkv D, hidden], [Hkv D, hidden]
  torch::Tensor q_bias, k_bias, v_bias;  // or undefined
  torch::Tensor q_norm, k_norm;       // [D] (Qwen3), [Hq D] and [Hkv D] (OLMo-3) or undefined
  torch::Tensor output_proj;          // [hidden, Hq * D]
  torch::Tensor output_bias;          // [hidden] or undefined
  torch::Tensor post_attention_norm;  // [hidden]: the MLP's input norm, or with post norms the attention output's
  torch::Tensor post_mlp_norm;        // [hidden]: the MLP output's norm with post norms, else undefined
  // Dense layers:
  torch::Tensor gate_up_proj;         // [2 * intermediate, hidden]: gate rows then up rows, one GEMM
  torch::Tensor gate_up_bias;         // [2 * intermediate] or undefined
  torch::Tensor gate_proj, up_proj;   // or kept apart: [intermediate, hidden] each
  torch::Tensor gate_bias, up_bias;   // or undefined
  torch::Tensor down_proj;            // [hidden, intermediate]
  torch::Tensor down_bias;            // [hidden] or undefined
  // Routed (MoE) layers instead: E experts of inner size I (moe_intermediate_size).
  torch::Tensor router;               // [E, hidden]
  torch::Tensor expert_gate_up;       // [E, 2 I, hidden]: each expert's gate rows then up rows
  torch::Tensor expert_down;          // [E, hidden, I]
};

struct CausalLM::Weights {
  DecoderTraits traits;
  torch::Tensor embed_tokens;  // [V, hidden]
  torch::Tensor final_norm;    // [hidden]
  torch::Tensor lm_head;       // [V, hidden]; the same tensor as embed_tokens when tied
  std::vector<DecoderLayerWeights> layers;
  torch::Tensor inv_freq;      // [rotary_dim / 2] float32 RoPE inverse frequencies, scaling applied
  // LongRoPE's long-context frequencies, for a forward pass whose positions pass the pretraining context.
  torch::Tensor long_inv_freq;
  double rope_attention_factor = 1.0;  // cos and sin multiplied by it (YaRN, LongRoPE)
  // The sliding_attention layers' own rope (ModelConfig::sliding_attention_rope), or undefined.
  torch::Tensor sliding_inv_freq;
  double sliding_rope_attention_factor = 1.0;
};

namespace {

// One builder per architecture: which optional parts its layers have. The
// forward pass is shared; this is the whole difference between them.
DecoderTraits llama_traits(const ModelConfig& config) {
  // LlamaAttention: attention_bias on q, k, v *and* o; LlamaMLP: mlp_bias.
  return {.qkv_bias = config.attention_bias, .output_bias = config.attention_bias, .mlp_bias = config.mlp_bias};
}

DecoderTraits qwen2_traits(const ModelConfig&) {
  // Qwen2Attention: q, k, v always biased, o never; Qwen2MLP unbiased.
  return {.qkv_bias = true};
}

DecoderTraits mistral_traits(const ModelConfig&) {
  // MistralAttention and MistralMLP: no biases, no q/k norms (Llama's layout otherwise).
  return {};
}

DecoderTraits phi3_traits(const ModelConfig&) {
  // Phi3Attention / Phi3MLP: no biases; q, k, v rows stacked in one qkv_proj and gate, up rows in one
  // gate_up_proj -- the layout this library fuses the other families into.
  return {.fused_weights = true};
}

DecoderTraits qwen3_traits(const ModelConfig& config) {
  // Qwen3Attention: attention_bias on q, k, v, o; q_norm/k_norm per head; Qwen3MLP unbiased.
  return {.qkv_bias = config.attention_bias, .output_bias = config.attention_bias, .qk_norm = true};
}

DecoderTraits olmo3_traits(const ModelConfig& config) {
  // Olmo3Attention: attention_bias on q, k, v, o; q_norm / k_norm over all heads; Olmo3DecoderLayer norms
  // each sublayer's output (post_attention_layernorm, post_feedforward_layernorm), not its input.
  return {.qkv_bias = config.attention_bias,
          .output_bias = config.attention_bias,
          .qk_norm = true,
          .qk_norm_all_heads = true,
          .post_norms = true};
}

DecoderTraits traits_of(const ModelConfig& config, const std::string& source) {
  switch (config.architecture) {
    case Architecture::kLlama: return llama_traits(config);
    case Architecture::kQwen2: return qwen2_traits(config);
    case Architecture::kQwen3: return qwen3_traits(config);
    case Architecture::kMistral: return mistral_traits(config);
    // Qwen3MoeAttention is Qwen3Attention; its routed MLPs are config.moe_layers.
    case Architecture::kQwen3Moe: return qwen3_traits(config);
    // SmolLM3 is Llama's block; its layers without RoPE are config.rope_layers.
    case Architecture::kSmolLM3: return llama_traits(config);
    case Architecture::kPhi3: return phi3_traits(config);
    case Architecture::kOlmo3: return olmo3_traits(config);
    case Architecture::kBert: break;
  }
  throw Error(fmt::format("{}: {} is not a decoder language model (supported: LlamaForCausalLM, "
                          "Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM, Qwen3MoeForCausalLM, "
                          "SmolLM3ForCausalLM, Phi3ForCausalLM, Olmo3ForCausalLM)",
                          source, config.architecture_name));
}

// YaRN (transformers' _compute_yarn_parameters): the frequencies blend the
// interpolated (divided by the factor) and the original ones along a ramp
// over the dimensions whose wavelengths lie between beta_fast and beta_slow
// rotations of the pretraining context.
torch::Tensor yarn_inverse_frequencies(const torch::Tensor& pos_freqs, std::int64_t dim, double base,
                                       const RopeScaling& scaling) {
  const double context = static_cast<double>(scaling.original_max_position_embeddings);
  const auto correction_dim = [&](double rotations) {
    return (static_cast<double>(dim) * std::log(context / (rotations * 2 * std::numbers::pi))) / (2 * std::log(base));
  };
  double low = correction_dim(scaling.beta_fast), high = correction_dim(scaling.beta_slow);
  if (scaling.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // no singularity
  const torch::Tensor ramp =
      ((torch::arange(dim / 2, torch::dtype(torch::kFloat32)) - low) / (high - low)).clamp(0, 1);
  const torch::Tensor extrapolation_factor = 1 - ramp;
  const torch::Tensor extrapolation = pos_freqs.reciprocal();
  const torch::Tensor interpolation = (pos_freqs * scaling.factor).reciprocal();
  return interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
}

// RoPE inverse frequencies exactly as transformers' modeling_rope_utils computes
// them (float32 throughout, the same operations in the same order).
// `long_context` picks LongRoPE's long factors (ignored by the other types).
torch::Tensor rope_inverse_frequencies(const Rope& rope, std::int64_t dim, bool long_context = false) {
  const torch::Tensor exponents = torch::arange(0, dim, 2, torch::dtype(torch::kInt64)).to(torch::kFloat32) /
                                  static_cast<double>(dim);
  const RopeScaling& scaling = rope.scaling;
  if (scaling.type == RopeScaling::Type::kYarn)
    return yarn_inverse_frequencies(at::pow(rope.theta, exponents), dim, rope.theta, scaling);
  if (scaling.type == RopeScaling::Type::kLongRope) {  // 1 / (factors * base ** exponents)
    const torch::Tensor factors =
        torch::tensor(long_context ? scaling.long_factor : scaling.short_factor, torch::kFloat64).to(torch::kFloat32);
    return (factors * at::pow(rope.theta, exponents)).reciprocal();
  }
  // Python's `1.0 / t` and `c / t` are reciprocal(t) * c: written the same way here.
  torch::Tensor inv_freq = at::pow(rope.theta, exponents).reciprocal();
  switch (scaling.type) {
    case RopeScaling::Type::kYarn:
    case RopeScaling::Type::kLongRope:
    case RopeScaling::Type::kNone: return inv_freq;
    case RopeScaling::Type::kLinear: return inv_freq / scaling.factor;
    case RopeScaling::Type::kLlama3: {
      const double old_context = static_cast<double>(scaling.original_max_position_embeddings);
      const double low_freq_wavelen = old_context / scaling.low_freq_factor;
      const double high_freq_wavelen = old_context / scaling.high_freq_factor;
      const torch::Tensor wavelen = inv_freq.reciprocal() * (2 * std::numbers::pi);
      // Long wavelengths are divided by the factor, short ones kept...
      const torch::Tensor scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq);
      // ...and the band between them interpolated smoothly.
      const torch::Tensor smooth_factor =
          (wavelen.reciprocal() * old_context - scaling.low_freq_factor) /
          (scaling.high_freq_factor - scaling.low_freq_factor);
      const torch::Tensor smoothed = (1 - smooth_factor) * scaled / scaling.factor + smooth_factor * scaled;
      const torch::Tensor is_medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
      return torch::where(is_medium, smoothed, scaled);
    }
  }
  return inv_freq;
}

// Where the weights come from: a checkpoint (converted once, projections
// stacked for one GEMM) or tensors the caller holds (used as they are when
// dtype and device match, projections kept apart so nothing is copied).
class WeightLoader {
 public:
  WeightLoader(const Checkpoint& checkpoint, torch::Dtype dtype, torch::Device device)
      : checkpoint_(&checkpoint), source_(checkpoint.dir()), dtype_(dtype), device_(device) {}
  WeightLoader(const std::map<std::string, torch::Tensor>& tensors, std::string source, torch::Dtype dtype,
               torch::Device device)
      : tensors_(&tensors), source_(std::move(source)), dtype_(dtype), device_(device) {}

  // Whether projections are stacked into one tensor (a checkpoint's are converted anyway).
  bool stacks() const { return checkpoint_ != nullptr; }

  torch::Tensor operator()(const std::string& name, std::vector<std::int64_t> shape) const {
    if (checkpoint_ != nullptr) {
      if (!checkpoint_->contains(name))
        throw Error(fmt::format("{}: tensor \"{}\" is missing from the checkpoint", source_, name));
      return checkpoint_->load(name, dtype_, device_, shape);
    }
    const auto it = tensors_->find(name);
    if (it == tensors_->end() || !it->second.defined())
      throw Error(fmt::format("{}: tensor \"{}\" is missing", source_, name));
    const torch::Tensor& tensor = it->second;
    if (!tensor.sizes().equals(shape))
      throw Error(fmt::format("{}: tensor \"{}\" has shape [{}], expected [{}]", source_, name,
                              fmt::join(tensor.sizes(), ", "), fmt::join(shape, ", ")));
    if (!tensor.is_floating_point())
      throw Error(fmt::format("{}: tensor \"{}\" is {}, not floating point", source_, name,
                              c10::toString(tensor.scalar_type())));
    return tensor.to(device_, dtype_);  // the tensor itself when dtype and device match: shared
  }
  // Row-stacked [sum of rows, ...] copy of several tensors (fused projections).
  torch::Tensor stacked(const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& parts) const {
    std::vector<torch::Tensor> tensors;
    for (const auto& [name, shape] : parts) tensors.push_back((*this)(name, shape));
    return at::cat(tensors, 0);
  }
  bool contains(const std::string& name) const {
    return checkpoint_ != nullptr ? checkpoint_->contains(name) : tensors_->count(name) > 0;
  }

 private:
  const Checkpoint* checkpoint_ = nullptr;
  const std::map<std::string, torch::Tensor>* tensors_ = nullptr;
  std::string source_;
  torch::Dtype dtype_;
  torch::Device device_;
};

// A routed MLP: the router "gate" and the experts, either one tensor per
// expert and projection as released checkpoints (and transformers'
// save_pretrained) hold them, or already stacked as transformers 5 keeps them
// in memory ("experts.gate_up_proj" [E, 2 I, hidden], "experts.down_proj").
void load_experts(const WeightLoader& load, const ModelConfig& config, const std::string& prefix,
                  DecoderLayerWeights& w) {
  const std::int64_t experts = config.num_experts, hidden = config.hidden_size, inner = config.moe_intermediate_size;
  w.router = load(prefix + "gate.weight", {experts, hidden}).contiguous();
  if (load.contains(prefix + "experts.gate_up_proj")) {
    w.expert_gate_up = load(prefix + "experts.gate_up_proj", {experts, 2 * inner, hidden}).contiguous();
    w.expert_down = load(prefix + "experts.down_proj", {experts, hidden, inner}).contiguous();
    return;
  }
  std::vector<torch::Tensor> gate_up, down;
  for (std::int64_t e = 0; e < experts; ++e) {
    const std::string expert = fmt::format("{}experts.{}.", prefix, e);
    gate_up.push_back(load.stacked({{expert + "gate_proj.weight", {inner, hidden}},
                                    {expert + "up_proj.weight", {inner, hidden}}}));
    down.push_back(load(expert + "down_proj.weight", {hidden, inner}));
  }
  w.expert_gate_up = at::stack(gate_up);
  w.expert_down = at::stack(down);
}

DecoderLayerWeights load_layer(const WeightLoader& load, const ModelConfig& config, const DecoderTraits& traits,
                               std::int64_t index) {
  const std::int64_t hidden = config.hidden_size, inner = config.intermediate_size, head_dim = config.head_dim;
  const std::int64_t q_rows = config.num_attention_heads * head_dim, kv_rows = config.num_key_value_heads * head_dim;
  const std::string prefix = fmt::format("model.layers.{}.", index);
  const auto name = [&](const char* suffix) { return prefix + suffix; };

  DecoderLayerWeights w;
  if (!traits.post_norms) w.input_norm = load(name("input_layernorm.weight"), {hidden});
  if (traits.fused_weights) {
    w.qkv_proj = load(name("self_attn.qkv_proj.weight"), {q_rows + 2 * kv_rows, hidden}).contiguous();
  } else if (load.stacks()) {
    w.qkv_proj = load.stacked({{name("self_attn.q_proj.weight"), {q_rows, hidden}},
                               {name("self_attn.k_proj.weight"), {kv_rows, hidden}},
                               {name("self_attn.v_proj.weight"), {kv_rows, hidden}}});
  } else {
    w.q_proj = load(name("self_attn.q_proj.weight"), {q_rows, hidden});
    w.k_proj = load(name("self_attn.k_proj.weight"), {kv_rows, hidden});
    w.v_proj = load(name("self_attn.v_proj.weight"), {kv_rows, hidden});
  }
  if (traits.qkv_bias && w.qkv_proj.defined()) {
    w.qkv_bias = load.stacked({{name("self_attn.q_proj.bias"), {q_rows}},
                               {name("self_attn.k_proj.bias"), {kv_rows}},
                               {name("self_attn.v_proj.bias"), {kv_rows}}});
  } else if (traits.qkv_bias) {
    w.q_bias = load(name("self_attn.q_proj.bias"), {q_rows});
    w.k_bias = load(name("self_attn.k_proj.bias"), {kv_rows});
    w.v_bias = load(name("self_attn.v_proj.bias"), {kv_rows});
  }
  if (traits.qk_norm) {
    w.q_norm = load(name("self_attn.q_norm.weight"), {traits.qk_norm_all_heads ? q_rows : head_dim});
    w.k_norm = load(name("self_attn.k_norm.weight"), {traits.qk_norm_all_heads ? kv_rows : head_dim});
  }
  w.output_proj = load(name("self_attn.o_proj.weight"), {hidden, q_rows}).contiguous();
  if (traits.output_bias) w.output_bias = load(name("self_attn.o_proj.bias"), {hidden});
  w.post_attention_norm = load(name("post_attention_layernorm.weight"), {hidden});
  if (traits.post_norms) w.post_mlp_norm = load(name("post_feedforward_layernorm.weight"), {hidden});
  if (config.is_moe_layer(index)) {
    load_experts(load, config, prefix + "mlp.", w);
    return w;
  }
  if (traits.fused_weights) {
    w.gate_up_proj = load(name("mlp.gate_up_proj.weight"), {2 * inner, hidden}).contiguous();
  } else if (load.stacks()) {
    w.gate_up_proj = load.stacked({{name("mlp.gate_proj.weight"), {inner, hidden}},
                                   {name("mlp.up_proj.weight"), {inner, hidden}}});
  } else {
    w.gate_proj = load(name("mlp.gate_proj.weight"), {inner, hidden});
    w.up_proj = load(name("mlp.up_proj.weight"), {inner, hidden});
  }
  if (traits.mlp_bias && w.gate_up_proj.defined()) {
    w.gate_up_bias = load.stacked({{name("mlp.gate_proj.bias"), {inner}}, {name("mlp.up_proj.bias"), {inner}}});
  } else if (traits.mlp_bias) {
    w.gate_bias = load(name("mlp.gate_proj.bias"), {inner});
    w.up_bias = load(name("mlp.up_proj.bias"), {inner});
  }
  w.down_proj = load(name("mlp.down_proj.weight"), {hidden, inner}).contiguous();
  if (traits.mlp_bias) w.down_bias = load(name("mlp.down_proj.bias"), {hidden});
  return w;
}

void check_decoder_config(const ModelConfig& config, const std::string& source) {
  if (config.hidden_act != "silu")
    throw Error(fmt::format("{}: hidden_act \"{}\" is not supported (decoders: silu)", source, config.hidden_act));
  if (config.vocab_size <= 0 || config.hidden_size <= 0 || config.num_hidden_layers <= 0 ||
      config.num_attention_heads <= 0 || config.num_key_value_heads <= 0 || config.head_dim <= 0 ||
      config.intermediate_size <= 0 || config.max_position_embeddings <= 0)
    throw Error(fmt::format("{}: sizes must be positive", source));
  if (config.num_attention_heads % config.num_key_value_heads != 0)
    throw Error(fmt::format("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source,
                            config.num_attention_heads, config.num_key_value_heads));
  if (config.head_dim % 2 != 0) throw Error(fmt::format("{}: head_dim {} must be even for RoPE", source, config.head_dim));
}

// ---------------------------------------------------------------------------
// Building blocks of the forward pass
// ---------------------------------------------------------------------------

// cos/sin of position * inv_freq, float32 [B or 1, T, D/2], computed once per
// forward and shared by all layers (kernels::rotary rounds them to the model
// dtype as transformers does). transformers duplicates the D/2 frequencies to
// D; the halves are identical, so we keep one.
struct RotaryTables {
  torch::Tensor cos, sin;
};

// `attention_factor` scales both (YaRN's; 1 otherwise).
RotaryTables rotary_tables(const torch::Tensor& positions /*[B|1, T]*/, const torch::Tensor& inv_freq,
                           double attention_factor) {
  const torch::Tensor angles = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq;  // [B|1, T, D/2]
  if (attention_factor == 1.0) return {angles.cos(), angles.sin()};
  return {angles.cos().mul_(attention_factor), angles.sin().mul_(attention_factor)};
}

// hidden += x @ weight^T (+ bias). Without a bias the GEMM accumulates into
// the residual stream itself (beta = 1): no temporary, no extra pass over
// memory. (In bf16/fp16 the sum is rounded once, where transformers rounds the
// projection and then the sum: a hair more accurate than transformers.)
void add_projection_(torch::Tensor& hidden, const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias) {
  if (bias.defined() || !hidden.is_contiguous()) {
    hidden.add_(at::linear(x, weight, bias));
    return;
  }
  const std::int64_t rows = hidden.numel() / hidden.size(-1);
  hidden.view({rows, hidden.size(-1)}).addmm_(x.reshape({rows, x.size(-1)}), weight.t());
}

// Token rows per MLP block (see decoder_layer).
constexpr std::int64_t kMlpRows = 1024;
// (Token, expert) pairs per routed MLP block: every active expert's weights
// are read once per block, and they dwarf the activations (Qwen3-30B-A3B: 19 MB
// per expert, 8 of 128 per token), so routed blocks are wider; their largest
// temporary is the [pairs, hidden] expert outputs (128 MB there in float32).
constexpr std::int64_t kRoutedPairs = 16384;

// The sparse MoE MLP of Qwen3MoeSparseMoeBlock on x [N, hidden] (already
// normed): router softmax in float32, the top num_experts_per_tok experts per
// token (renormalised when norm_topk_prob), each expert's SwiGLU on just the
// rows routed to it -- one gather and two GEMMs per active expert, never a
// per-expert copy of the whole batch. As transformers' default ("grouped_mm")
// experts, each (token, expert) output is weighted in the model dtype and a
// token's k outputs are summed in float32 and rounded once (its "eager" loop
// rounds after every expert in bf16). Returns [N, hidden].
torch::Tensor routed_mlp(const torch::Tensor& x, const DecoderLayerWeights& w, const ModelConfig& config) {
  const std::int64_t rows = x.size(0), hidden = x.size(1);
  const std::int64_t top_k = config.num_experts_per_tok, inner = config.moe_intermediate_size;
  const torch::Tensor probabilities = at::softmax(at::linear(x, w.router), -1, torch::kFloat32);  // [N, E]
  auto [top_weights, top_experts] = probabilities.topk(top_k, -1);                                // [N, k]
  if (config.norm_topk_prob) top_weights = top_weights / top_weights.sum(-1, true);
  top_weights = top_weights.to(x.scalar_type());

  // The N k (token, slot) pairs grouped by expert (a stable sort keeps tokens in order within an expert).
  const torch::Tensor flat_experts = top_experts.reshape({-1});
  const torch::Tensor order = std::get<1>(flat_experts.sort(/*stable=*/true, 0, false));
  const torch::Tensor tokens_by_expert = order.div(top_k, "floor");
  const torch::Tensor weights_by_expert = top_weights.reshape({-1}).index_select(0, order);
  const torch::Tensor counts = at::bincount(flat_experts, {}, config.num_experts).to(torch::kCPU);
  const std::int64_t* count = counts.data_ptr<std::int64_t>();

  torch::Tensor by_expert = at::empty({rows * top_k, hidden}, x.options());  // pair outputs, sorted by expert
  std::int64_t first = 0;
  for (std::int64_t e = 0; e < config.num_experts; ++e) {
    if (count[e] == 0) continue;
    const torch::Tensor gate_up =
        at::linear(x.index_select(0, tokens_by_expert.narrow(0, first, count[e])), w.expert_gate_up[e]);
    const torch::Tensor activated = at::silu(gate_up.narrow(-1, 0, inner)).mul_(gate_up.narrow(-1, inner, inner));
    torch::Tensor out = by_expert.narrow(0, first, count[e]);  // contiguous rows: the GEMM writes in place
    at::mm_out(out, activated, w.expert_down[e].t());
    out.mul_(weights_by_expert.narrow(0, first, count[e]).unsqueeze(-1));
    first += count[e];
  }
  // Each token's k outputs summed in float32, rounded once.
  torch::Tensor sum = at::zeros({rows, hidden}, x.options().dtype(torch::kFloat32));
  sum.index_add_(0, tokens_by_expert, by_expert.to(torch::kFloat32));
  return sum.to(x.scalar_type());
}

struct LayerContext {
  const ModelConfig& config;
  const DecoderTraits& traits;
  const RotaryTables& rope;
  const RotaryTables& sliding_rope;  // the sliding_attention layers' when they have their own, else empty
  KVCache* cache;
  const AttentionControl* control;
  const AttentionInputsCallback& on_attention;
};

// One pre-norm decoder block, updating `hidden` [B, T, hidden] in place.
void decoder_layer(torch::Tensor& hidden, const DecoderLayerWeights& w, std::int64_t layer, const LayerContext& ctx) {
  const ModelConfig& config = ctx.config;
  const double eps = config.rms_norm_eps;
  const std::int64_t batch = hidden.size(0), tokens = hidden.size(1), head_dim = config.head_dim;
  const std::int64_t query_heads = config.num_attention_heads, kv_heads = config.num_key_value_heads;

  // --- attention ---
  const bool post_norms = ctx.traits.post_norms;
  const torch::Tensor attn_input = post_norms ? hidden : kernels::rms_norm(hidden, w.input_norm, eps);
  torch::Tensor queries, keys, values;  // [B, T, H D]
  if (w.qkv_proj.defined()) {
    const torch::Tensor qkv = at::linear(attn_input, w.qkv_proj, w.qkv_bias);  // [B, T, (Hq + 2 Hkv) D]
    queries = qkv.narrow(-1, 0, query_heads * head_dim);
    keys = qkv.narrow(-1, query_heads * head_dim, kv_heads * head_dim);
    values = qkv.narrow(-1, (query_heads + kv_heads) * head_dim, kv_heads * head_dim);
  } else {
    queries = at::linear(attn_input, w.q_proj, w.q_bias);
    keys = at::linear(attn_input, w.k_proj, w.k_bias);
    values = at::linear(attn_input, w.v_proj, w.v_bias);
  }
  if (ctx.traits.qk_norm_all_heads) {  // one norm over every head's q (and k) of a token
    queries = kernels::rms_norm(queries, w.q_norm, eps);
    keys = kernels::rms_norm(keys, w.k_norm, eps);
  }
  queries = queries.view({batch, tokens, query_heads, head_dim});
  keys = keys.view({batch, tokens, kv_heads, head_dim});
  values = values.view({batch, tokens, kv_heads, head_dim});
  if (ctx.traits.qk_norm && !ctx.traits.qk_norm_all_heads) {
    queries = kernels::rms_norm(queries, w.q_norm, eps);
    keys = kernels::rms_norm(keys, w.k_norm, eps);
  }
  // A layer without RoPE (SmolLM3's NoPE layers) attends by content alone;
  // its q and k are laid out as the rotary kernel's output is.
  const bool rope = config.uses_rope(layer);
  const RotaryTables& tables =
      ctx.sliding_rope.cos.defined() && config.is_sliding_attention_layer(layer) ? ctx.sliding_rope : ctx.rope;
  // Partial rotary (Phi-4-mini): the first rotary_dim dimensions rotate, the rest pass through.
  const auto rotate = [&](const torch::Tensor& x) {
    if (!rope) return x.contiguous();
    if (config.rotary_dim == head_dim) return kernels::rotary(x, tables.cos, tables.sin);
    return at::cat({kernels::rotary(x.narrow(-1, 0, config.rotary_dim), tables.cos, tables.sin),
                    x.narrow(-1, config.rotary_dim, head_dim - config.rotary_dim)},
                   -1);
  };
  const torch::Tensor rotated_queries = rotate(queries).transpose(1, 2);
  torch::Tensor all_keys = rotate(keys).transpose(1, 2);  // [B, Hkv, T, D]
  torch::Tensor all_values = values.transpose(1, 2);
  AttentionParams params;
  params.layer = layer;
  params.control = ctx.control;
  params.sliding_window = config.sliding_window(layer);
  if (ctx.cache != nullptr) {
    std::tie(all_keys, all_values) = ctx.cache->extend(layer, all_keys, all_values);
    // A prefix shared by every lane stays apart: attention reads it once for all lanes.
    if (ctx.cache->shared_length() > 0)
      std::tie(params.shared_keys, params.shared_values) = ctx.cache->shared_layer(layer);
  }
  if (ctx.on_attention) {
    if (params.shared_keys.defined()) {  // the callback sees every slot, as without sharing
      ctx.on_attention(layer, rotated_queries, at::cat({params.shared_keys.expand({batch, -1, -1, -1}), all_keys}, 2),
                       at::cat({params.shared_values.expand({batch, -1, -1, -1}), all_values}, 2));
    } else {
      ctx.on_attention(layer, rotated_queries, all_keys, all_values);
    }
  }

  const torch::Tensor attended = attention(rotated_queries, all_keys, all_values, params);  // [B, Hq, T, D]
  const torch::Tensor merged_heads = attended.transpose(1, 2).reshape({batch, tokens, query_heads * head_dim});
  if (post_norms)
    hidden.add_(kernels::rms_norm(at::linear(merged_heads, w.output_proj, w.output_bias), w.post_attention_norm, eps));
  else
    add_projection_(hidden, merged_heads, w.output_proj, w.output_bias);

  // --- SwiGLU MLP, at most kMlpRows token rows at a time ---
  // The [rows, 2 * intermediate] activations are the largest temporaries of a
  // long pass (240 MB for 4096 tokens of Qwen2-0.5B with the SiLU product);
  // every row's MLP is independent, so row blocks bound them and compute the
  // same function (tests/python/test_causal_lm_vs_hf.py checks a long pass).
  const std::int64_t inner = config.intermediate_size;
  const bool routed = config.is_moe_layer(layer);
  const auto mlp_rows = [&](torch::Tensor rows) {  // rows [N, hidden], updated in place
    const torch::Tensor mlp_input = post_norms ? rows : kernels::rms_norm(rows, w.post_attention_norm, eps);
    if (routed) {
      rows.add_(routed_mlp(mlp_input.reshape({-1, mlp_input.size(-1)}), w, config).view_as(rows));
      return;
    }
    torch::Tensor activated;  // [N, I]
    if (w.gate_up_proj.defined()) {
      const torch::Tensor gate_up = at::linear(mlp_input, w.gate_up_proj, w.gate_up_bias);  // [N, 2 I]
      activated = at::silu(gate_up.narrow(-1, 0, inner)).mul_(gate_up.narrow(-1, inner, inner));
    } else {
      activated = at::silu(at::linear(mlp_input, w.gate_proj, w.gate_bias)).mul_(at::linear(mlp_input, w.up_proj, w.up_bias));
    }
    if (post_norms)
      rows.add_(kernels::rms_norm(at::linear(activated, w.down_proj, w.down_bias), w.post_mlp_norm, eps));
    else
      add_projection_(rows, activated, w.down_proj, w.down_bias);
  };
  const std::int64_t total_rows = batch * tokens;
  const std::int64_t block_rows =
      routed ? std::max<std::int64_t>(kRoutedPairs / config.num_experts_per_tok, 1) : kMlpRows;
  if (total_rows <= block_rows || !hidden.is_contiguous()) {
    mlp_rows(hidden);
    return;
  }
  const torch::Tensor flat = hidden.view({total_rows, hidden.size(-1)});
  for (std::int64_t first = 0; first < total_rows; first += block_rows) {
    torch::Tensor block = flat.narrow(0, first, std::min(block_rows, total_rows - first));  // contiguous rows
    mlp_rows(block);
  }
}

using detail::describe;

}  // namespace

// ---------------------------------------------------------------------------
// CausalLM
// ---------------------------------------------------------------------------

CausalLM::CausalLM(ModelConfig config, std::string dir, torch::Dtype dtype, torch::Device device,
                   std::shared_ptr<const Weights> weights, std::shared_ptr<const Tokenizer> tokenizer)
    : config_(std::move(config)),
      dir_(std::move(dir)),
      dtype_(dtype),
      device_(device),
      weights_(std::move(weights)),
      tokenizer_(std::move(tokenizer)) {}

namespace {

void check_load_options(const LoadOptions& options, const std::string& what) {
  if (options.dtype != torch::kFloat32 && options.dtype != torch::kBFloat16 && options.dtype != torch::kFloat16)
    throw Error(fmt::format("{}: dtype must be float32, bfloat16 or float16, got {}", what,
                            c10::toString(options.dtype)));
  check_device(options.device, what);
}

// Every tensor of the model from `load`, and the rope tables.
void load_weights(const WeightLoader& load, const ModelConfig& config, const std::string& source, torch::Device device,
                  CausalLM::Weights& weights) {
  weights.traits = traits_of(config, source);
  check_decoder_config(config, source);
  const std::int64_t vocab = config.vocab_size, hidden = config.hidden_size;
  weights.embed_tokens = load("model.embed_tokens.weight", {vocab, hidden}).contiguous();
  weights.final_norm = load("model.norm.weight", {hidden});
  // transformers ties lm_head to the embedding whenever tie_word_embeddings is
  // set, whatever the file holds; otherwise the head must be there.
  weights.lm_head = config.tie_word_embeddings ? weights.embed_tokens
                                               : load("lm_head.weight", {vocab, hidden}).contiguous();
  for (std::int64_t i = 0; i < config.num_hidden_layers; ++i)
    weights.layers.push_back(load_layer(load, config, weights.traits, i));
  weights.inv_freq = rope_inverse_frequencies({config.rope_theta, config.rope_scaling}, config.rotary_dim).to(device);
  if (config.rope_scaling.type == RopeScaling::Type::kLongRope)
    weights.long_inv_freq =
        rope_inverse_frequencies({config.rope_theta, config.rope_scaling}, config.rotary_dim, /*long_context=*/true)
            .to(device);
  weights.rope_attention_factor = config.rope_scaling.attention_factor;
  if (config.sliding_attention_rope) {
    weights.sliding_inv_freq = rope_inverse_frequencies(*config.sliding_attention_rope, config.rotary_dim).to(device);
    weights.sliding_rope_attention_factor = config.sliding_attention_rope->scaling.attention_factor;
  }
}

}  // namespace

std::shared_ptr<CausalLM> CausalLM::load(const std::string& dir, const LoadOptions& options) {
  check_load_options(options, fmt::format("CausalLM::load({})", dir));
  ModelConfig config = read_model_config(dir);
  auto weights = std::make_shared<Weights>();
  const Checkpoint checkpoint = Checkpoint::open(dir);
  load_weights(WeightLoader(checkpoint, options.dtype, options.device), config, dir + "/config.json", options.device,
               *weights);
  const std::filesystem::path tokenizer_file = std::filesystem::path(dir) / "tokenizer.json";
  std::shared_ptr<const Tokenizer> tokenizer;
  if (std::filesystem::exists(tokenizer_file)) tokenizer = Tokenizer::load(tokenizer_file.string());
  return std::make_shared<CausalLM>(std::move(config), dir, options.dtype, options.device, std::move(weights),
                                    std::move(tokenizer));
}

std::shared_ptr<CausalLM> CausalLM::from_tensors(ModelConfig config, const std::map<std::string, torch::Tensor>& tensors,
                                                 const LoadOptions& options, std::shared_ptr<const Tokenizer> tokenizer,
                                                 const std::string& source) {
  check_load_options(options, fmt::format("CausalLM::from_tensors({})", source));
  auto weights = std::make_shared<Weights>();
  load_weights(WeightLoader(tensors, source, options.dtype, options.device), config, source, options.device, *weights);
  return std::make_shared<CausalLM>(std::move(config), std::string(), options.dtype, options.device,
                                    std::move(weights), std::move(tokenizer));
}

std::vector<std::pair<std::string, torch::Tensor>> CausalLM::named_weights() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  const auto add = [&](std::string name, const torch::Tensor& t) {
    if (t.defined()) out.emplace_back(std::move(name), t);
  };
  add("model.embed_tokens.weight", weights_->embed_tokens);
  add("model.norm.weight", weights_->final_norm);
  if (!config_.tie_word_embeddings) add("lm_head.weight", weights_->lm_head);
  for (std::size_t i = 0; i < weights_->layers.size(); ++i) {
    const DecoderLayerWeights& w = weights_->layers[i];
    const std::string p = fmt::format("model.layers.{}.", i);
    add(p + "input_layernorm.weight", w.input_norm);
    add(p + "self_attn.qkv_proj.weight", w.qkv_proj);
    add(p + "self_attn.qkv_proj.bias", w.qkv_bias);
    for (const auto& [part, weight, bias] : {std::tuple{"q", &w.q_proj, &w.q_bias}, std::tuple{"k", &w.k_proj, &w.k_bias},
                                             std::tuple{"v", &w.v_proj, &w.v_bias}}) {
      add(fmt::format("{}self_attn.{}_proj.weight", p, part), *weight);
      add(fmt::format("{}self_attn.{}_proj.bias", p, part), *bias);
    }
    add(p + "self_attn.q_norm.weight", w.q_norm);
    add(p + "self_attn.k_norm.weight", w.k_norm);
    add(p + "self_attn.o_proj.weight", w.output_proj);
    add(p + "self_attn.o_proj.bias", w.output_bias);
    add(p + "post_attention_layernorm.weight", w.post_attention_norm);
    add(p + "post_feedforward_layernorm.weight", w.post_mlp_norm);
    add(p + "mlp.gate_up_proj.weight", w.gate_up_proj);
    add(p + "mlp.gate_up_proj.bias", w.gate_up_bias);
    add(p + "mlp.gate_proj.weight", w.gate_proj);
    add(p + "mlp.gate_proj.bias", w.gate_bias);
    add(p + "mlp.up_proj.weight", w.up_proj);
    add(p + "mlp.up_proj.bias", w.up_bias);
    add(p + "mlp.down_proj.weight", w.down_proj);
    add(p + "mlp.down_proj.bias", w.down_bias);
    add(p + "mlp.gate.weight", w.router);
    add(p + "mlp.experts.gate_up_proj", w.expert_gate_up);
    add(p + "mlp.experts.down_proj", w.expert_down);
  }
  return out;
}

std::int64_t CausalLM::num_parameters() const {
  // named_weights() lists every tensor once (a tied head with the embedding).
  std::int64_t count = 0;
  for (const auto& [name, tensor] : named_weights()) count += tensor.numel();
  return count;
}

torch::Tensor CausalLM::checked_ids(const torch::Tensor& ids) const {
  if (!ids.defined()) throw Error("CausalLM: ids is undefined");
  if (ids.scalar_type() != torch::kInt64 && ids.scalar_type() != torch::kInt32)
    throw Error("CausalLM: ids must be an int64 tensor [B, T], got a " + describe(ids));
  if (ids.dim() != 2 || ids.size(0) == 0 || ids.size(1) == 0)
    throw Error("CausalLM: ids must be a non-empty 2-D tensor [B, T], got a " + describe(ids));
  const auto [lowest, highest] = at::aminmax(ids);
  const std::int64_t lowest_id = lowest.item<std::int64_t>(), highest_id = highest.item<std::int64_t>();
  if (lowest_id < 0 || highest_id >= config_.vocab_size)
    throw Error(fmt::format("CausalLM: token id {} outside the vocabulary [0, {})",
                            lowest_id < 0 ? lowest_id : highest_id, config_.vocab_size));
  return ids.to(device_, torch::kInt64);
}

torch::Tensor CausalLM::checked_positions(const torch::Tensor& positions, std::int64_t batch,
                                          std::int64_t tokens) const {
  if (!positions.defined()) throw Error("CausalLM: positions is undefined");
  if (positions.scalar_type() != torch::kInt64 && positions.scalar_type() != torch::kInt32)
    throw Error("CausalLM: positions must be an int64 tensor [B, T] or [T], got a " + describe(positions));
  const bool shared = positions.dim() == 1 && positions.size(0) == tokens;
  const bool per_lane = positions.dim() == 2 && positions.size(0) == batch && positions.size(1) == tokens;
  if (!shared && !per_lane)
    throw Error(fmt::format("CausalLM: positions must have shape [{}, {}] or [{}], got a {}", batch, tokens, tokens,
                            describe(positions)));
  const auto [lowest, highest] = at::aminmax(positions);
  const std::int64_t lowest_position = lowest.item<std::int64_t>(), highest_position = highest.item<std::int64_t>();
  if (lowest_position < 0 || highest_position >= config_.max_position_embeddings)
    throw Error(fmt::format("CausalLM: position {} outside [0, max_position_embeddings = {})",
                            lowest_position < 0 ? lowest_position : highest_position,
                            config_.max_position_embeddings));
  return (shared ? positions.unsqueeze(0) : positions).to(device_, torch::kInt64);
}

torch::Tensor CausalLM::hidden_states(const torch::Tensor& ids, const torch::Tensor& positions, KVCache* cache,
                                      const AttentionControl* control,
                                      const AttentionInputsCallback& on_attention) const {
  // Inference only: no autograd graph even if a caller's tensor requires grad.
  const at::NoGradGuard no_grad;
  const torch::Tensor token_ids = checked_ids(ids);
  const std::int64_t batch = token_ids.size(0), tokens = token_ids.size(1);
  const torch::Tensor token_positions = checked_positions(positions, batch, tokens);
  if (cache != nullptr && !cache->empty()) {
    if (cache->batch() != batch)
      throw Error(fmt::format("CausalLM: the KV cache holds {} lanes but ids has {}", cache->batch(), batch));
    if (cache->num_layers() != config_.num_hidden_layers)
      throw Error(fmt::format("CausalLM: the KV cache holds {} layers, the model has {}", cache->num_layers(),
                              config_.num_hidden_layers));
  }
  if (control != nullptr) control->validate(batch, config_.num_attention_heads, config_.num_hidden_layers);

  // LongRoPE switches to its long factors when this call's positions pass the pretraining context, as
  // transformers' longrope_frequency_update does per forward (cached keys keep the rotation they had).
  const bool long_context = weights_->long_inv_freq.defined() &&
                            token_positions.max().item<std::int64_t>() + 1 >
                                config_.rope_scaling.original_max_position_embeddings;
  const RotaryTables rope = rotary_tables(token_positions, long_context ? weights_->long_inv_freq : weights_->inv_freq,
                                         weights_->rope_attention_factor);
  const RotaryTables sliding_rope =
      weights_->sliding_inv_freq.defined()
          ? rotary_tables(token_positions, weights_->sliding_inv_freq, weights_->sliding_rope_attention_factor)
          : RotaryTables{};
  torch::Tensor hidden = at::embedding(weights_->embed_tokens, token_ids);  // [B, T, hidden], a fresh tensor
  const LayerContext context{config_, weights_->traits, rope, sliding_rope, cache, control, on_attention};
  for (std::int64_t i = 0; i < config_.num_hidden_layers; ++i) decoder_layer(hidden, weights_->layers[i], i, context);
  if (cache != nullptr) cache->commit(tokens);
  return kernels::rms_norm(hidden, weights_->final_norm, config_.rms_norm_eps);
}

torch::Tensor CausalLM::project_to_vocab(const torch::Tensor& hidden) const {
  if (!hidden.defined() || hidden.size(-1) != config_.hidden_size)
    throw Error(fmt::format("CausalLM::project_to_vocab: expected [..., {}] hidden states, got a {}",
                            config_.hidden_size, hidden.defined() ? describe(hidden) : "undefined tensor"));
  const at::NoGradGuard no_grad;
  return at::linear(hidden.to(device_, dtype_), weights_->lm_head).to(torch::kFloat32);
}

torch::Tensor CausalLM::forward(const torch::Tensor& ids, const torch::Tensor& positions, KVCache* cache,
                                const AttentionControl* control) const {
  return project_to_vocab(hidden_states(ids, positions, cache, control));
}

std::vector<std::int64_t> CausalLM::generate_greedy(const std::vector<std::int64_t>& prompt,
                                                    std::int64_t max_new_tokens,
                                                    std::optional<std::int64_t> eos_id) const {
  if (prompt.empty()) throw Error("CausalLM::generate_greedy: empty prompt");
  if (max_new_tokens < 0) throw Error(fmt::format("CausalLM::generate_greedy: max_new_tokens {} < 0", max_new_tokens));
  const auto prompt_length = static_cast<std::int64_t>(prompt.size());
  // The last generated token is never fed back, hence the - 1.
  if (prompt_length + max_new_tokens - 1 > config_.max_position_embeddings)
    throw Error(fmt::format("CausalLM::generate_greedy: prompt ({}) + max_new_tokens ({}) exceeds "
                            "max_position_embeddings ({})",
                            prompt_length, max_new_tokens, config_.max_position_embeddings));
  std::vector<std::int64_t> generated;
  if (max_new_tokens == 0) return generated;

  KVCache cache;
  cache.reserve(prompt_length + max_new_tokens);
  const auto long_options = torch::dtype(torch::kInt64);
  torch::Tensor step_ids = torch::tensor(prompt, long_options).unsqueeze(0);  // [1, P]
  torch::Tensor step_positions = torch::arange(prompt_length, long_options);
  while (true) {
    const torch::Tensor hidden = hidden_states(step_ids, step_positions, &cache);
    // Only the last position's distribution matters: project just that row.
    const torch::Tensor next_logits = project_to_vocab(hidden.select(1, hidden.size(1) - 1));  // [1, V]
    const std::int64_t next = next_logits.argmax(-1).item<std::int64_t>();
    generated.push_back(next);
    if (static_cast<std::int64_t>(generated.size()) == max_new_tokens || (eos_id && next == *eos_id)) break;
    step_ids = torch::full({1, 1}, next, long_options);
    step_positions = torch::full({1}, cache.length(), long_options);
  }
  return generated;
}

}  // namespace anchors::model
