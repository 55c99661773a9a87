#include <pybind11/stl.h>

#include <cmath>
#include <map>

#include "anchors/core/attention_control.h"
#include "anchors/core/error.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/padded_batch.h"
#include "anchors/model/sampler.h"
#include "anchors/model/sentence_attention.h"
#include "anchors/model/tokenizer.h"
#include "bindings.h"
#include "token_ids.h"

namespace anchors::python {
namespace {

// dtype= accepts torch.float32 / torch.bfloat16 / torch.float16 or their names.
torch::Dtype dtype_from_python(const py::object& obj) {
  std::string name = py::str(obj).cast<std::string>();
  if (name.rfind("torch.", 0) == 0) name = name.substr(6);
  if (name == "float32" || name == "float" || name == "fp32") return torch::kFloat32;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float16" || name == "half" || name == "fp16") return torch::kFloat16;
  throw Error("dtype must be torch.float32, torch.bfloat16 or torch.float16, got " + name);
}

// device= accepts "cpu", "cuda", "cuda:1" or a torch.device.
torch::Device device_from_python(const py::object& obj) {
  const std::string name = py::str(obj).cast<std::string>();
  try {
    return torch::Device(name);
  } catch (const std::exception&) {
    throw Error("device must be like \"cpu\" or \"cuda:0\", got \"" + name + "\"");
  }
}

// ids= of Model.logits / hidden_states: an integer tensor (any integer dtype,
// any device), a NumPy array or a (nested) list of ints, as int64.
torch::Tensor as_tensor(const py::object& given, const char* what);

torch::Tensor ids_tensor(const py::object& given) {
  const torch::Tensor ids = as_tensor(given, "ids");
  if (!at::isIntegralType(ids.scalar_type(), /*includeBool=*/false))
    throw Error("ids must be integer token ids, got a " + std::string(c10::toString(ids.scalar_type())) + " tensor");
  return ids.to(torch::kLong);
}

// A tensor, or torch.as_tensor of an array / (nested) list; ta.Error naming `what` otherwise.
torch::Tensor as_tensor(const py::object& given, const char* what) {
  torch::Tensor ids;
  if (THPVariable_Check(given.ptr())) {
    ids = THPVariable_Unpack(given.ptr());
  } else {
    try {
      ids = THPVariable_Unpack(py::module_::import("torch").attr("as_tensor")(given).ptr());
    } catch (py::error_already_set& e) {
      throw Error(std::string(what) + " must be a list, a tensor or an array; could not read " +
                  py::repr(given).cast<std::string>().substr(0, 80) + ": " + e.what());
    }
  }
  return ids;
}

// A pass over ids [T] or [B, T] without cache, without the GIL: at positions
// 0..T-1, or for a padded batch (mask [B, T]) each row at its own positions
// with its left padding hidden (padded_batch.h) and zeros at padding. The
// control's slots are the batch's, padding included. The result loses the
// batch dimension again for 1-D ids.
template <typename Pass>
torch::Tensor run_on_ids(const model::CausalLM& lm, const py::object& given, const py::object& mask,
                         const std::optional<AttentionControl>& control, const Pass& pass) {
  const torch::Tensor ids = ids_tensor(given);
  if (ids.dim() != 1 && ids.dim() != 2) throw Error("ids must be a 1-D [T] or 2-D [B, T] tensor");
  const torch::Tensor batch = ids.dim() == 1 ? ids.unsqueeze(0) : ids;
  AttentionControl applied = control.value_or(AttentionControl{});
  torch::Tensor positions = torch::arange(batch.size(1), torch::dtype(torch::kInt64).device(lm.device()));
  torch::Tensor real;
  if (!mask.is_none()) {
    if (ids.dim() != 2) throw Error("mask= goes with a 2-D [B, T] batch of ids");
    const torch::Tensor m = as_tensor(mask, "mask");
    if (!at::isIntegralType(m.scalar_type(), /*includeBool=*/true))
      throw Error("mask must hold 0 / 1 (or booleans), got a " + std::string(c10::toString(m.scalar_type())) + " tensor");
    if (m.sizes() != batch.sizes())
      throw Error("mask has shape " + std::to_string(m.size(0)) + "x" + std::to_string(m.dim() > 1 ? m.size(1) : 0) +
                  ", the ids " + std::to_string(batch.size(0)) + "x" + std::to_string(batch.size(1)));
    model::PaddedBatch padded = model::padded_batch(m);
    positions = padded.positions.to(lm.device());
    real = padded.real;
    applied.regions.insert(applied.regions.end(), padded.control.regions.begin(), padded.control.regions.end());
  }
  torch::Tensor out;
  {
    py::gil_scoped_release release;
    torch::NoGradGuard no_grad;
    out = pass(batch.to(lm.device()), positions, applied.empty() ? nullptr : &applied);
    if (real.defined()) out.masked_fill_(real.logical_not().unsqueeze(-1).to(out.device()), 0);
  }
  return ids.dim() == 1 ? out.squeeze(0) : out;
}

}  // namespace

void bind_model(py::module_& m) {
  using model::ModelConfig;
  py::class_<ModelConfig>(m, "ModelConfig", "config.json of a supported checkpoint.")
      .def_property_readonly("architecture", [](const ModelConfig& c) { return model::architecture_label(c.architecture); })
      .def_readonly("architecture_name", &ModelConfig::architecture_name)
      .def_readonly("model_type", &ModelConfig::model_type)
      .def_readonly("vocab_size", &ModelConfig::vocab_size)
      .def_readonly("hidden_size", &ModelConfig::hidden_size)
      .def_readonly("intermediate_size", &ModelConfig::intermediate_size)
      .def_readonly("num_hidden_layers", &ModelConfig::num_hidden_layers)
      .def_readonly("num_attention_heads", &ModelConfig::num_attention_heads)
      .def_readonly("num_key_value_heads", &ModelConfig::num_key_value_heads)
      .def_readonly("head_dim", &ModelConfig::head_dim)
      .def_readonly("rotary_dim", &ModelConfig::rotary_dim, "leading dims of each head that RoPE rotates")
      .def_readonly("max_position_embeddings", &ModelConfig::max_position_embeddings)
      .def_readonly("rope_theta", &ModelConfig::rope_theta)
      .def_readonly("rms_norm_eps", &ModelConfig::rms_norm_eps)
      .def_readonly("tie_word_embeddings", &ModelConfig::tie_word_embeddings)
      .def_readonly("attention_bias", &ModelConfig::attention_bias)
      .def_readonly("qk_norm", &ModelConfig::qk_norm)
      .def_readonly("num_experts", &ModelConfig::num_experts, "routed experts per MoE layer (0: dense)")
      .def_readonly("num_experts_per_tok", &ModelConfig::num_experts_per_tok)
      .def_readonly("moe_intermediate_size", &ModelConfig::moe_intermediate_size)
      .def_readonly("norm_topk_prob", &ModelConfig::norm_topk_prob)
      .def_property_readonly(
          "moe_layers",
          [](const ModelConfig& c) { return c.layers_where([&](std::int64_t i) { return c.is_moe_layer(i); }); },
          "indices of the layers whose MLP is routed through experts")
      .def_property_readonly(
          "nope_layers",
          [](const ModelConfig& c) { return c.layers_where([&](std::int64_t i) { return !c.uses_rope(i); }); },
          "indices of the layers without rotary position embeddings (SmolLM3)")
      .def_property_readonly(
          "sliding_windows",
          [](const ModelConfig& c) {
            std::map<std::int64_t, std::int64_t> windows;
            for (const std::int64_t i : c.layers_where([&](std::int64_t l) { return c.sliding_window(l) > 0; }))
              windows[i] = c.sliding_window(i);
            return windows;
          },
          "{layer: window} of the layers whose attention slides (query t sees keys t-window+1..t); others full")
      .def_readonly("torch_dtype", &ModelConfig::torch_dtype)
      .def_readonly("bos_token_id", &ModelConfig::bos_token_id)
      .def_readonly("eos_token_id", &ModelConfig::eos_token_id)
      .def("__repr__", [](const ModelConfig& c) {
        return "ModelConfig(" + c.architecture_name + ", layers=" + std::to_string(c.num_hidden_layers) +
               ", hidden=" + std::to_string(c.hidden_size) + ", heads=" + std::to_string(c.num_attention_heads) + "/" +
               std::to_string(c.num_key_value_heads) + ", vocab=" + std::to_string(c.vocab_size) + ")";
      });
  m.def("read_model_config", &model::read_model_config, py::arg("path"));
  m.def(
      "sentence_attention",
      [](const model::CausalLM& lm, const TokenIds& token_ids,
         const std::vector<std::pair<std::int64_t, std::int64_t>>& sentence_spans,
         std::optional<std::vector<std::int64_t>> layers, std::optional<py::function> progress) {
        std::vector<TokenSpan> spans;
        spans.reserve(sentence_spans.size());
        for (const auto& [begin, end] : sentence_spans) spans.push_back(TokenSpan{begin, end});
        const RunControl control = control_from_python(progress);
        py::gil_scoped_release release;
        torch::NoGradGuard no_grad;
        return model::sentence_attention(lm, token_ids.ids, spans, layers, {}, control);
      },
      py::arg("model"), py::arg("token_ids"), py::arg("sentence_spans"), py::arg("layers") = py::none(),
      py::kw_only(), py::arg("progress") = py::none(),
      "Per layer and head, the S x S block means of attention between sentences (token spans "
      "[begin, end)), from one forward pass, without materialising T x T attention: Tensor[L, H, S, S].");

  py::class_<model::Sample>(m, "Sample", "One sampled continuation: token ids, text and token byte spans.")
      .def_readonly("ids", &model::Sample::ids)
      .def_readonly("text", &model::Sample::text)
      .def_readonly("finish_reason", &model::Sample::finish_reason)
      .def("__repr__", [](const model::Sample& s) {
        return "Sample(" + std::to_string(s.ids.size()) + " tokens, " + s.finish_reason + ")";
      });

  m.def(
      "next_token_distribution",
      [](const torch::Tensor& logits, std::vector<std::int64_t> history, double temperature, double top_p,
         std::int64_t top_k, double min_p, double repetition_penalty) {
        if (logits.dim() != 1) throw Error("next_token_distribution: logits must be a 1-D tensor [V]");
        if (!std::isfinite(temperature) || temperature < 0)
          throw Error("next_token_distribution: temperature must be finite and >= 0");
        if (!(top_p > 0.0 && top_p <= 1.0)) throw Error("next_token_distribution: top_p outside (0, 1]");
        if (top_k < 0) throw Error("next_token_distribution: top_k < 0");
        if (!(min_p >= 0.0 && min_p <= 1.0)) throw Error("next_token_distribution: min_p outside [0, 1]");
        const torch::Tensor penalized =
            model::sampler_detail::apply_repetition_penalty(logits.detach().cpu(), history, repetition_penalty);
        return model::sampler_detail::truncated_distribution(penalized, temperature, top_p, top_k, min_p);
      },
      py::arg("logits"), py::arg("history") = std::vector<std::int64_t>{}, py::kw_only(),
      py::arg("temperature") = 0.6, py::arg("top_p") = 0.95, py::arg("top_k") = 0, py::arg("min_p") = 0.0,
      py::arg("repetition_penalty") = 1.0,
      "The float64 distribution [V] that Model.sample / LocalProvider draw the next token from, given the "
      "logits [V] and the ids so far (prompt + generated, for the repetition penalty).");

  py::class_<model::CausalLM, std::shared_ptr<model::CausalLM>>(
      m, "Model",
      "A decoder LM (Llama, Qwen2, Qwen3, Mistral, Qwen3-MoE, SmolLM3, Phi-3, OLMo-3) loaded from a Hugging Face "
      "checkpoint folder (Model.load) or wrapped around a transformers model (Model.from_transformers), run in "
      "LibTorch.")
      .def_static(
          "load",
          [](const std::string& path, const py::object& dtype, const py::object& device) {
            model::LoadOptions options;
            options.dtype = dtype_from_python(dtype);
            options.device = device_from_python(device);
            py::gil_scoped_release release;
            return model::CausalLM::load(path, options);
          },
          py::arg("path"), py::arg("dtype") = py::str("float32"), py::arg("device") = py::str("cpu"))
      .def_static(
          "from_tensors",
          [](const std::string& config_json, const std::map<std::string, torch::Tensor>& tensors,
             const std::optional<std::string>& tokenizer_json, const std::string& source) {
            model::ModelConfig config = model::parse_model_config(config_json, source + " config");
            // The model runs in the embedding's dtype on its device: tensors that match are shared.
            const auto embedding = tensors.find("model.embed_tokens.weight");
            if (embedding == tensors.end() || !embedding->second.defined())
              throw Error(source + ": tensor \"model.embed_tokens.weight\" is missing");
            model::LoadOptions options;
            options.dtype = embedding->second.scalar_type();
            options.device = embedding->second.device();
            std::shared_ptr<const model::Tokenizer> tokenizer;
            if (tokenizer_json) tokenizer = model::Tokenizer::from_json(*tokenizer_json, source + " tokenizer");
            py::gil_scoped_release release;
            return model::CausalLM::from_tensors(std::move(config), tensors, options, std::move(tokenizer), source);
          },
          py::arg("config_json"), py::arg("tensors"), py::arg("tokenizer_json") = py::none(),
          py::arg("source") = "tensors",
          "A model over tensors named as in a checkpoint (a state_dict), in the dtype and on the device of "
          "model.embed_tokens.weight: tensors in that dtype and device are shared, not copied. "
          "Model.from_transformers builds the arguments from a transformers model.")
      .def("named_weights", &model::CausalLM::named_weights,
           "[(name, tensor)] of the weights the model holds, by checkpoint name (stacked projections under their "
           "stacked name; a tied lm_head not listed apart).")
      .def_property_readonly("config", &model::CausalLM::config, py::return_value_policy::reference_internal)
      .def_property_readonly("path", &model::CausalLM::dir)
      .def_property_readonly(
          "tokenizer",
          [](const model::CausalLM& lm) { return std::const_pointer_cast<model::Tokenizer>(lm.tokenizer()); },
          "The checkpoint's tokenizer.json, or None when the folder has none.")
      .def_property_readonly("num_parameters", &model::CausalLM::num_parameters)
      .def_property_readonly("dtype", [](const model::CausalLM& lm) {
        return py::module_::import("torch").attr(lm.dtype() == torch::kFloat32    ? "float32"
                                                 : lm.dtype() == torch::kBFloat16 ? "bfloat16"
                                                                                  : "float16");
      })
      .def_property_readonly("device", [](const model::CausalLM& lm) { return lm.device().str(); })
      .def(
          "logits",
          [](const model::CausalLM& lm, const py::object& ids, const py::object& mask,
             const std::optional<AttentionControl>& control) {
            return run_on_ids(lm, ids, mask, control,
                              [&lm](const torch::Tensor& batch, const torch::Tensor& positions,
                                    const AttentionControl* applied) {
                                return lm.forward(batch, positions, /*cache=*/nullptr, applied);
                              });
          },
          py::arg("ids"), py::kw_only(), py::arg("mask") = py::none(), py::arg("control") = py::none(),
          "Logits [T, V] or [B, T, V] (float32) of token ids [T] or [B, T] (a list, an integer tensor or array). "
          "mask [B, T] (1 at real tokens; left or right padding): each row as its real tokens alone, zeros at "
          "padding. control: a ta.AttentionControl (slots of the batch as given, padding included).")
      .def(
          "hidden_states",
          [](const model::CausalLM& lm, const py::object& ids, const py::object& mask,
             const std::optional<AttentionControl>& control) {
            // The forward pass without the vocabulary projection (what the white-box methods run).
            return run_on_ids(lm, ids, mask, control,
                              [&lm](const torch::Tensor& batch, const torch::Tensor& positions,
                                    const AttentionControl* applied) {
                                return lm.hidden_states(batch, positions, /*cache=*/nullptr, applied);
                              });
          },
          py::arg("ids"), py::kw_only(), py::arg("mask") = py::none(), py::arg("control") = py::none(), "Final normed hidden states [T, hidden] or [B, T, hidden] (model dtype): logits() without lm_head.")
      .def(
          "generate_greedy",
          [](const model::CausalLM& lm, const TokenIds& prompt, std::int64_t max_new_tokens,
             std::optional<std::int64_t> eos_id) {
            py::gil_scoped_release release;
            torch::NoGradGuard no_grad;
            return lm.generate_greedy(prompt.ids, max_new_tokens, eos_id);
          },
          py::arg("prompt_ids"), py::arg("max_new_tokens"), py::arg("eos_id") = py::none(),
          "Greedy decoding with the KV cache; returns the new token ids.")
      .def(
          "sample",
          [](const model::CausalLM& lm, const TokenIds& prompt, std::int64_t n, double temperature,
             double top_p, std::int64_t top_k, std::int64_t max_new_tokens, std::vector<std::int64_t> stop_ids,
             std::vector<std::string> stop_strings, Seed seed, double min_p, double repetition_penalty,
             std::int64_t max_batch_bytes, const std::optional<AttentionControl>& control) {
            model::SamplingOptions options;
            if (control) options.control = *control;
            options.max_batch_bytes = max_batch_bytes;
            options.temperature = temperature;
            options.top_p = top_p;
            options.top_k = top_k;
            options.min_p = min_p;
            options.repetition_penalty = repetition_penalty;
            options.max_new_tokens = max_new_tokens;
            options.stop_ids = std::move(stop_ids);
            options.stop_strings = std::move(stop_strings);
            options.seed = seed.value;
            py::gil_scoped_release release;
            torch::NoGradGuard no_grad;
            return model::sample(lm, prompt.ids, n, options, lm.tokenizer().get());
          },
          py::arg("prompt_ids"), py::arg("n") = 1, py::kw_only(), py::arg("temperature") = 0.6,
          py::arg("top_p") = 0.95, py::arg("top_k") = 0, py::arg("max_new_tokens") = 256,
          py::arg("stop_ids") = std::vector<std::int64_t>{}, py::arg("stop_strings") = std::vector<std::string>{},
          py::arg("seed") = 0, py::arg("min_p") = 0.0, py::arg("repetition_penalty") = 1.0,
          py::arg("max_batch_bytes") = 0, py::arg("control") = py::none(),
          "n continuations of one prompt, batched with a shared prefilled prefix; reproducible per (seed, lane). "
          "control: a ta.AttentionControl applied while generating (heads ablated, keys suppressed or boosted "
          "from a position on). "
          "Per token: repetition penalty on the raw logits (prompt + lane's tokens), temperature, top-k, top-p, "
          "min-p (docs/sampler.md). The lanes run in batches that fit max_batch_bytes (0: half the memory "
          "available now); a request whose single lane or results do not fit is a ta.Error before anything "
          "is allocated.")
      .def("__repr__", [](const model::CausalLM& lm) {
        return "Model(" + lm.config().architecture_name + ", " + std::to_string(lm.num_parameters()) +
               " parameters, " + lm.device().str() + ")";
      });
}

}  // namespace anchors::python
