#include "anchors/model/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/json_depth.h"

namespace anchors::model {
namespace {
using nlohmann::json;

// Typed access to one JSON object with errors that name the file and the key.
// A key holding null counts as absent, as it does for transformers' defaults.
class FieldReader {
 public:
  FieldReader(const json& object, const std::string& source, std::string where = "")
      : object_(object), source_(source), where_(std::move(where)) {}

  const json* find(const char* key) const {
    const auto it = object_.find(key);
    return (it == object_.end() || it->is_null()) ? nullptr : &*it;
  }
  bool has(const char* key) const { return find(key) != nullptr; }
  // Present at all, null included (where null and absent differ in transformers).
  bool object_has_key(const char* key) const { return object_.contains(key); }

  std::int64_t integer(const char* key, std::int64_t fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_number_integer()) throw type_error(key, "an integer", *v);
    return v->get<std::int64_t>();
  }
  std::int64_t positive_integer(const char* key, std::int64_t fallback) const {
    const std::int64_t value = integer(key, fallback);
    if (value <= 0) throw Error(fmt::format("{}: \"{}\"{} must be positive, got {}", source_, key, where_, value));
    return value;
  }
  // num_hidden_layers: positive and at most kMaxLayers, so that a corrupt
  // value is an error naming the field rather than a failed allocation of
  // per-layer tables (the checkpoint's tensors are checked layer by layer later).
  std::int64_t layer_count(std::int64_t fallback) const {
    constexpr std::int64_t kMaxLayers = 100000;  // the deepest released LMs have ~200
    const std::int64_t value = positive_integer("num_hidden_layers", fallback);
    if (value > kMaxLayers)
      throw Error(fmt::format("{}: \"num_hidden_layers\"{} is {}, more than any model has (at most {})", source_,
                              where_, value, kMaxLayers));
    return value;
  }
  std::optional<std::int64_t> optional_integer(const char* key) const {
    if (!has(key)) return std::nullopt;
    return integer(key, 0);
  }
  double number(const char* key, double fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_number()) throw type_error(key, "a number", *v);
    return v->get<double>();
  }
  double required_number(const char* key) const {
    if (!has(key)) throw Error(fmt::format("{}: \"{}\"{} is required", source_, key, where_));
    return number(key, 0.0);
  }
  double positive_number(const char* key, double fallback) const {
    const double value = number(key, fallback);
    if (!(value > 0)) throw Error(fmt::format("{}: \"{}\"{} must be positive, got {}", source_, key, where_, value));
    return value;
  }
  bool boolean(const char* key, bool fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) throw type_error(key, "true or false", *v);
    return v->get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    const json* v = find(key);
    if (v == nullptr) return fallback;
    if (!v->is_string()) throw type_error(key, "a string", *v);
    return v->get<std::string>();
  }

 private:
  Error type_error(const char* key, const char* expected, const json& value) const {
    std::string shown = value.dump();
    if (shown.size() > 60) shown = shown.substr(0, 57) + "...";
    return Error(fmt::format("{}: \"{}\"{} must be {}, got {}", source_, key, where_, expected, shown));
  }
  const json& object_;
  const std::string& source_;
  std::string where_;
};

struct KnownArchitecture {
  const char* class_name;
  const char* model_type;
  Architecture architecture;
};
constexpr KnownArchitecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama", Architecture::kLlama},
    {"Qwen2ForCausalLM", "qwen2", Architecture::kQwen2},
    {"Qwen3ForCausalLM", "qwen3", Architecture::kQwen3},
    {"MistralForCausalLM", "mistral", Architecture::kMistral},
    {"Qwen3MoeForCausalLM", "qwen3_moe", Architecture::kQwen3Moe},
    {"SmolLM3ForCausalLM", "smollm3", Architecture::kSmolLM3},
    {"Phi3ForCausalLM", "phi3", Architecture::kPhi3},
    {"Olmo3ForCausalLM", "olmo3", Architecture::kOlmo3},
    {"BertModel", "bert", Architecture::kBert},
};
constexpr const char* kSupportedArchitectures =
    "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM, Qwen3MoeForCausalLM, "
    "SmolLM3ForCausalLM, Phi3ForCausalLM, Olmo3ForCausalLM, BertModel";

// What an unsupported checkpoint is closest to among the supported ones, and
// what stands between them -- for the families reasoning researchers ask for
// (docs/models.md); other names get the supported class nearest by spelling.
std::string nearest_supported(const std::string& name) {
  static const std::pair<const char*, const char*> kKnown[] = {
      {"Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM (the same routed experts; Qwen2-MoE's shared expert is not "
                              "implemented yet)"},
      {"MixtralForCausalLM", "MistralForCausalLM and Qwen3MoeForCausalLM (Mistral's attention, routed experts; "
                             "Mixtral's expert weight names are not read yet)"},
      {"Ministral3ForCausalLM", "MistralForCausalLM (Ministral 3's own config and rope are not read yet)"},
      {"GptOssForCausalLM", "none close: attention sinks, its MoE and YaRN are not implemented yet"},
      {"Olmo2ForCausalLM", "Olmo3ForCausalLM (the same norm placement without sliding windows; not read yet)"},
      {"Qwen3_5ForCausalLM", "Qwen3ForCausalLM (its linear-attention layers are not implemented yet)"},
      {"Qwen3_5MoeForCausalLM", "Qwen3MoeForCausalLM (its linear-attention layers are not implemented yet)"},
  };
  for (const auto& [known, hint] : kKnown)
    if (name == known) return hint;
  // Levenshtein distance between lowercased names.
  const auto lower = [](std::string t) {
    for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return t;
  };
  const auto distance = [](const std::string& a, const std::string& b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
      std::size_t diagonal = row[0];
      row[0] = i;
      for (std::size_t j = 1; j <= b.size(); ++j) {
        const std::size_t above = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diagonal = above;
      }
    }
    return row[b.size()];
  };
  const KnownArchitecture* best = nullptr;
  std::size_t best_distance = 0;
  for (const auto& a : kArchitectures) {
    const std::size_t d = distance(lower(name), lower(a.class_name));
    if (best == nullptr || d < best_distance) {
      best = &a;
      best_distance = d;
    }
  }
  return fmt::format("{} by name", best->class_name);
}

const KnownArchitecture& resolve_architecture(const FieldReader& fields, const std::string& source) {
  const std::string model_type = fields.string("model_type", "");
  const KnownArchitecture* known = nullptr;
  if (const json* list = fields.find("architectures")) {
    if (!list->is_array() || list->empty() || !(*list)[0].is_string())
      throw Error(fmt::format("{}: \"architectures\" must be a non-empty list of class names", source));
    if (list->size() > 1)
      throw Error(fmt::format("{}: \"architectures\" lists {} classes; exactly one is supported", source,
                              list->size()));
    const std::string name = (*list)[0].get<std::string>();
    for (const auto& a : kArchitectures)
      if (name == a.class_name) known = &a;
    if (known == nullptr)
      throw Error(fmt::format("{}: unsupported architecture \"{}\" (supported: {}; nearest: {})", source, name,
                              kSupportedArchitectures, nearest_supported(name)));
  } else if (!model_type.empty()) {
    for (const auto& a : kArchitectures)
      if (model_type == a.model_type) known = &a;
    if (known == nullptr)
      throw Error(fmt::format("{}: unsupported model_type \"{}\" (supported: llama, qwen2, qwen3, mistral, qwen3_moe, "
                              "smollm3, phi3, bert)",
                              source, model_type));
  } else {
    throw Error(fmt::format("{}: neither \"architectures\" nor \"model_type\" says which model this is", source));
  }
  if (!model_type.empty() && model_type != known->model_type)
    throw Error(fmt::format("{}: \"model_type\" is \"{}\" but architecture {} needs \"{}\"", source, model_type,
                            known->class_name, known->model_type));
  return *known;
}

// One rope object: "rope_scaling" / "rope_parameters", or one layer type's
// entry of it (`key` names it in errors). Its "rope_theta" wins over the
// top-level one.
Rope read_rope_object(const FieldReader& fields, const json& rope, const std::string& key, double top_level_theta,
                      const std::string& source, const ModelConfig& config) {
  if (!rope.is_object()) throw Error(fmt::format("{}: \"{}\" must be an object", source, key));
  const FieldReader rope_fields(rope, source, fmt::format(" in \"{}\"", key));
  std::string type = rope_fields.has("rope_type") ? rope_fields.string("rope_type", "default")
                                                  : rope_fields.string("type", "default");
  // Phi3Config reads its older names "su" and "yarn" as longrope.
  if (config.architecture == Architecture::kPhi3 && (type == "su" || type == "yarn")) type = "longrope";
  Rope out;
  out.theta = rope_fields.positive_number("rope_theta", top_level_theta);
  RopeScaling& scaling = out.scaling;
  // The pretraining context: a top-level field wins (Phi-3 keeps it there, class default 4096), as in
  // transformers.
  const std::int64_t original_context =
      fields.has("original_max_position_embeddings")
          ? fields.positive_integer("original_max_position_embeddings", config.max_position_embeddings)
      : config.architecture == Architecture::kPhi3 ? 4096
          : rope_fields.positive_integer("original_max_position_embeddings", config.max_position_embeddings);
  scaling.original_max_position_embeddings = config.max_position_embeddings;
  // yarn and longrope: "factor", or (absent or null) the ratio of the context to the pretraining one.
  const auto factor_or_context_ratio = [&] {
    return rope_fields.has("factor") ? rope_fields.required_number("factor")
                                     : static_cast<double>(config.max_position_embeddings) /
                                           static_cast<double>(original_context);
  };
  if (type == "default") {
    scaling.type = RopeScaling::Type::kNone;
  } else if (type == "linear") {
    scaling.type = RopeScaling::Type::kLinear;
    scaling.factor = rope_fields.required_number("factor");
  } else if (type == "llama3") {
    scaling.type = RopeScaling::Type::kLlama3;
    scaling.factor = rope_fields.required_number("factor");
    scaling.low_freq_factor = rope_fields.required_number("low_freq_factor");
    scaling.high_freq_factor = rope_fields.required_number("high_freq_factor");
    scaling.original_max_position_embeddings =
        rope_fields.positive_integer("original_max_position_embeddings", config.max_position_embeddings);
    if (!(scaling.low_freq_factor > 0) || !(scaling.high_freq_factor > scaling.low_freq_factor))
      throw Error(fmt::format("{}: llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor, got {} and {}",
                              source, scaling.low_freq_factor, scaling.high_freq_factor));
  } else if (type == "yarn") {
    // transformers' _compute_yarn_parameters: a null factor is the context ratio; the attention factor, absent,
    // follows from the factor (and mscale / mscale_all_dim when both are set).
    scaling.type = RopeScaling::Type::kYarn;
    scaling.original_max_position_embeddings = original_context;
    scaling.factor = factor_or_context_ratio();
    const auto mscale_of = [](double factor, double mscale) {
      return factor <= 1 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
    };
    const double mscale = rope_fields.number("mscale", 0.0), mscale_all_dim = rope_fields.number("mscale_all_dim", 0.0);
    if (rope_fields.has("attention_factor"))
      scaling.attention_factor = rope_fields.required_number("attention_factor");
    else if (mscale != 0 && mscale_all_dim != 0)
      scaling.attention_factor = mscale_of(scaling.factor, mscale) / mscale_of(scaling.factor, mscale_all_dim);
    else
      scaling.attention_factor = mscale_of(scaling.factor, 1.0);
    // `get(...) or default`: a null or zero beta takes the default.
    scaling.beta_fast = rope_fields.number("beta_fast", 0.0) != 0 ? rope_fields.number("beta_fast", 32.0) : 32.0;
    scaling.beta_slow = rope_fields.number("beta_slow", 0.0) != 0 ? rope_fields.number("beta_slow", 1.0) : 1.0;
    scaling.truncate = rope_fields.boolean("truncate", true);
  } else if (type == "longrope") {
    // transformers' _compute_longrope_parameters: a null factor is the context ratio; the attention factor,
    // absent, is sqrt(1 + ln(factor) / ln(original context)) (1 when factor <= 1).
    scaling.type = RopeScaling::Type::kLongRope;
    scaling.original_max_position_embeddings = original_context;
    scaling.factor = factor_or_context_ratio();
    if (rope_fields.has("attention_factor"))
      scaling.attention_factor = rope_fields.required_number("attention_factor");
    else
      scaling.attention_factor =
          scaling.factor <= 1.0
              ? 1.0
              : std::sqrt(1 + std::log(scaling.factor) / std::log(static_cast<double>(original_context)));
    const std::size_t frequencies = static_cast<std::size_t>(config.rotary_dim / 2);
    for (const auto& [name, factors] : {std::pair<const char*, std::vector<double>*>{"short_factor", &scaling.short_factor},
                                        {"long_factor", &scaling.long_factor}}) {
      const json* list = rope_fields.find(name);
      if (list == nullptr || !list->is_array())
        throw Error(fmt::format("{}: longrope \"{}\" in \"{}\" must be a list of numbers", source, name, key));
      for (const json& value : *list) {
        if (!value.is_number() || !(value.get<double>() > 0))
          throw Error(fmt::format("{}: longrope \"{}\" in \"{}\" must hold positive numbers, got {}", source, name,
                                  key, value.dump()));
        factors->push_back(value.get<double>());
      }
      if (factors->size() != frequencies)
        throw Error(fmt::format("{}: longrope \"{}\" in \"{}\" has {} entries; the {} rotated dimensions need {}",
                                source, name, key, factors->size(), config.rotary_dim, frequencies));
    }
  } else {
    throw Error(fmt::format("{}: rope type \"{}\" in \"{}\" is not supported (supported: default, linear, llama3, "
                            "yarn, longrope)",
                            source, type, key));
  }
  if (!std::isfinite(scaling.attention_factor) || !(scaling.attention_factor > 0))
    throw Error(fmt::format("{}: rope \"attention_factor\" in \"{}\" must be positive, got {}", source, key,
                            scaling.attention_factor));
  if (!(scaling.factor > 0))
    throw Error(fmt::format("{}: rope scaling \"factor\" in \"{}\" must be positive, got {}", source, key,
                            scaling.factor));
  return out;
}

// rope_theta and rope scaling. transformers 4 writes "rope_scaling" (and a
// top-level "rope_theta"); transformers 5 writes "rope_parameters" holding
// both, or one such object per layer type ("full_attention",
// "sliding_attention"). A non-empty rope_scaling wins, as in transformers.
void read_rope(const FieldReader& fields, const std::string& source, double default_theta, ModelConfig& config) {
  const char* key = "rope_scaling";
  const json* rope = fields.find(key);
  if (rope == nullptr || (rope->is_object() && rope->empty())) {
    key = "rope_parameters";
    rope = fields.find(key);
  }
  const double top_level_theta = fields.positive_number("rope_theta", default_theta);
  // The fraction of each head that rotates: inside the rope object, else at the top level (transformers'
  // standardize_rope_params). Only Phi-3's attention slices q and k for it.
  double partial = fields.number("partial_rotary_factor", 1.0);
  if (rope != nullptr && rope->is_object() && rope->contains("partial_rotary_factor") &&
      !rope->at("partial_rotary_factor").is_null()) {
    const FieldReader rope_fields(*rope, source, fmt::format(" in \"{}\"", key));
    partial = rope_fields.number("partial_rotary_factor", 1.0);
  }
  if (partial != 1.0 && config.architecture != Architecture::kPhi3)
    throw Error(fmt::format("{}: \"partial_rotary_factor\" other than 1 is not supported for {} (Phi3ForCausalLM "
                            "rotates part of each head)",
                            source, config.architecture_name));
  // int(head_dim * factor), as transformers.
  const double rotated = static_cast<double>(config.head_dim) * partial;
  if (!(partial > 0 && partial <= 1) || static_cast<std::int64_t>(rotated) % 2 != 0 || rotated < 2)
    throw Error(fmt::format("{}: \"partial_rotary_factor\" {} must be in (0, 1] and leave an even number of rotated "
                            "dimensions of head_dim {}",
                            source, partial, config.head_dim));
  config.rotary_dim = static_cast<std::int64_t>(rotated);
  config.rope_theta = top_level_theta;
  config.rope_scaling = RopeScaling{};
  config.rope_scaling.original_max_position_embeddings = config.max_position_embeddings;
  config.sliding_attention_rope.reset();
  if (rope == nullptr) return;
  if (!rope->is_object()) throw Error(fmt::format("{}: \"{}\" must be an object", source, key));
  if (rope->contains("full_attention") || rope->contains("sliding_attention")) {
    // Per layer type: an absent or null entry is the default rope.
    const auto layer_rope = [&](const char* type) {
      if (!rope->contains(type) || rope->at(type).is_null()) return Rope{top_level_theta, config.rope_scaling};
      const json& entry = rope->at(type);
      if (entry.is_object() && entry.contains("partial_rotary_factor") && entry.at("partial_rotary_factor") != 1.0)
        throw Error(fmt::format("{}: \"partial_rotary_factor\" in \"{}.{}\" is not supported", source, key, type));
      return read_rope_object(fields, rope->at(type), fmt::format("{}.{}", key, type), top_level_theta, source,
                              config);
    };
    const Rope full = layer_rope("full_attention"), sliding = layer_rope("sliding_attention");
    config.rope_theta = full.theta;
    config.rope_scaling = full.scaling;
    if (!rope->contains("sliding_attention") || !rope->contains("full_attention") ||
        rope->at("sliding_attention") != rope->at("full_attention"))
      config.sliding_attention_rope = sliding;
    return;
  }
  const Rope read = read_rope_object(fields, *rope, key, top_level_theta, source, config);
  config.rope_theta = read.theta;
  config.rope_scaling = read.scaling;
}

// The sliding layers that "layer_types" names ("sliding_attention" /
// "full_attention", one per layer); none when the key is absent.
std::optional<std::vector<bool>> sliding_layer_types(const FieldReader& fields, const std::string& source,
                                                     std::int64_t layers) {
  const json* layer_types = fields.find("layer_types");
  if (layer_types == nullptr) return std::nullopt;
  if (!layer_types->is_array())
    throw Error(fmt::format("{}: \"layer_types\" must be a list of strings", source));
  if (static_cast<std::int64_t>(layer_types->size()) != layers)
    throw Error(fmt::format("{}: \"layer_types\" has {} entries for {} layers", source, layer_types->size(), layers));
  std::vector<bool> sliding;
  for (std::size_t i = 0; i < layer_types->size(); ++i) {
    const json& t = (*layer_types)[i];
    const std::string type = t.is_string() ? t.get<std::string>() : t.dump();
    if (type != "sliding_attention" && type != "full_attention")
      throw Error(fmt::format("{}: layer type \"{}\" (layer {}) is not supported (supported: full_attention, "
                              "sliding_attention)",
                              source, type, i));
    sliding.push_back(type == "sliding_attention");
  }
  return sliding;
}

// The window of a config that gives every sliding layer the same one:
// "sliding_window" (absent: `absent_default`; null: none).
std::optional<std::int64_t> sliding_window_of(const FieldReader& fields, std::optional<std::int64_t> absent_default) {
  if (!fields.object_has_key("sliding_window")) return absent_default;
  if (!fields.has("sliding_window")) return std::nullopt;
  return fields.positive_integer("sliding_window", 0);
}

// Gives the layers flagged in `sliding` the window (none: they stay full, as
// transformers builds no window mask without a "sliding_window").
void set_windows(ModelConfig& config, const std::optional<std::int64_t>& window, const std::vector<bool>& sliding) {
  config.sliding_attention_layers = sliding;
  config.sliding_windows.assign(static_cast<std::size_t>(config.num_hidden_layers), 0);
  if (!window) return;
  for (std::size_t i = 0; i < sliding.size() && i < config.sliding_windows.size(); ++i)
    if (sliding[i]) config.sliding_windows[i] = *window;
}

// Qwen2Config / Qwen3Config: sliding_window = sliding_window if
// use_sliding_window else None (class default 4096; an explicit null means no
// window); "layer_types", or absent, the layers i >= max_window_layers slide.
void read_qwen_windows(const FieldReader& fields, const std::string& source, ModelConfig& config) {
  const std::optional<std::int64_t> window =
      fields.boolean("use_sliding_window", false) ? sliding_window_of(fields, 4096) : std::nullopt;
  std::vector<bool> sliding(static_cast<std::size_t>(config.num_hidden_layers), false);
  if (auto types = sliding_layer_types(fields, source, config.num_hidden_layers)) {
    sliding = *types;
    for (std::size_t i = 0; i < sliding.size(); ++i)
      if (sliding[i] && !window)
        throw Error(fmt::format("{}: \"layer_types\" marks layer {} sliding_attention but \"use_sliding_window\" "
                                "is false (no window is defined)",
                                source, i));
  } else {
    // A negative max_window_layers means every layer (and must not index before the first).
    for (std::int64_t i = std::max<std::int64_t>(fields.integer("max_window_layers", 28), 0);
         i < config.num_hidden_layers; ++i)
      sliding[static_cast<std::size_t>(i)] = true;
  }
  set_windows(config, window, sliding);
}

// Every layer within one "sliding_window" (Mistral, Phi-3, Qwen3-MoE).
void slide_every_layer(ModelConfig& config, const std::optional<std::int64_t>& window) {
  set_windows(config, window, std::vector<bool>(static_cast<std::size_t>(config.num_hidden_layers), true));
}

// Per-layer list `key` of 0/1 flags (or booleans), `layers` long.
std::vector<bool> layer_flags(const FieldReader& fields, const char* key, const std::string& source,
                              std::int64_t layers) {
  const json* list = fields.find(key);
  if (!list->is_array() || static_cast<std::int64_t>(list->size()) != layers)
    throw Error(fmt::format("{}: \"{}\" must be a list of {} flags (one per layer)", source, key, layers));
  std::vector<bool> flags;
  for (const json& flag : *list) {
    if (flag.is_boolean())
      flags.push_back(flag.get<bool>());
    else if (flag.is_number_integer() && (flag.get<std::int64_t>() == 0 || flag.get<std::int64_t>() == 1))
      flags.push_back(flag.get<std::int64_t>() == 1);
    else
      throw Error(fmt::format("{}: \"{}\" must hold 0/1 flags, got {}", source, key, flag.dump()));
  }
  return flags;
}

// Qwen3MoeConfig: which layers route their MLP through experts, and how.
void read_moe(const FieldReader& fields, const std::string& source, ModelConfig& config) {
  // transformers 5 saves "num_local_experts" (its attribute_map), released checkpoints "num_experts".
  const char* experts_key = fields.has("num_experts") ? "num_experts" : "num_local_experts";
  config.num_experts = fields.integer(experts_key, 128);
  if (config.num_experts < 0)
    throw Error(fmt::format("{}: \"{}\" must not be negative, got {}", source, experts_key, config.num_experts));
  config.num_experts_per_tok = fields.positive_integer("num_experts_per_tok", 8);
  config.moe_intermediate_size = fields.positive_integer("moe_intermediate_size", 768);
  config.norm_topk_prob = fields.boolean("norm_topk_prob", false);
  const std::int64_t step = fields.positive_integer("decoder_sparse_step", 1);
  std::vector<std::int64_t> dense_layers;
  if (const json* list = fields.find("mlp_only_layers")) {
    if (!list->is_array()) throw Error(fmt::format("{}: \"mlp_only_layers\" must be a list of layer indices", source));
    for (const json& layer : *list) {
      if (!layer.is_number_integer())
        throw Error(fmt::format("{}: \"mlp_only_layers\" must hold layer indices, got {}", source, layer.dump()));
      dense_layers.push_back(layer.get<std::int64_t>());
    }
  }
  config.moe_layers.assign(static_cast<std::size_t>(config.num_hidden_layers), false);
  if (config.num_experts == 0) return;  // as transformers: every layer dense
  if (config.num_experts_per_tok > config.num_experts)
    throw Error(fmt::format("{}: \"num_experts_per_tok\" {} exceeds the {} experts", source,
                            config.num_experts_per_tok, config.num_experts));
  for (std::int64_t i = 0; i < config.num_hidden_layers; ++i)
    config.moe_layers[static_cast<std::size_t>(i)] =
        (i + 1) % step == 0 && std::find(dense_layers.begin(), dense_layers.end(), i) == dense_layers.end();
}

// SmolLM3Config: "no_rope_layers" (1 = RoPE, 0 = none) or, absent, every
// "no_rope_layer_interval"-th layer without RoPE; with use_sliding_window,
// the layers listed "sliding_attention" (absent: the NoPE layers) slide.
void read_smollm3_layers(const FieldReader& fields, const std::string& source, ModelConfig& config) {
  const std::int64_t layers = config.num_hidden_layers;
  if (fields.has("no_rope_layers")) {
    config.rope_layers = layer_flags(fields, "no_rope_layers", source, layers);
  } else {
    const std::int64_t interval = fields.positive_integer("no_rope_layer_interval", 4);
    for (std::int64_t i = 0; i < layers; ++i) config.rope_layers.push_back((i + 1) % interval != 0);
  }
  const std::optional<std::int64_t> window =
      fields.boolean("use_sliding_window", false) ? sliding_window_of(fields, std::nullopt) : std::nullopt;
  std::vector<bool> sliding;
  for (const bool rope : config.rope_layers) sliding.push_back(!rope);
  if (auto types = sliding_layer_types(fields, source, layers)) sliding = *types;
  set_windows(config, window, sliding);
}

// The transformers class defaults of one decoder family.
struct DecoderDefaults {
  std::int64_t vocab, hidden, intermediate, layers, heads;
  std::optional<std::int64_t> kv_heads;  // none: one per attention head
  std::int64_t max_positions;
  double rope_theta = 10000.0;
  bool tie = false;
  std::optional<std::int64_t> head_dim;  // none: hidden / heads
  std::optional<std::int64_t> bos, eos;
  double rms_norm_eps = 1e-6;
};

DecoderDefaults defaults_of(Architecture arch) {
  switch (arch) {
    case Architecture::kLlama:
      return {.vocab = 32000, .hidden = 4096, .intermediate = 11008, .layers = 32, .heads = 32, .kv_heads = {},
              .max_positions = 2048, .bos = 1, .eos = 2};
    case Architecture::kMistral:
      return {.vocab = 32000, .hidden = 4096, .intermediate = 14336, .layers = 32, .heads = 32, .kv_heads = 8,
              .max_positions = 4096 * 32, .bos = 1, .eos = 2};
    case Architecture::kQwen3:
      return {.vocab = 151936, .hidden = 4096, .intermediate = 22016, .layers = 32, .heads = 32, .kv_heads = 32,
              .max_positions = 32768, .head_dim = 128};
    case Architecture::kQwen3Moe:
      return {.vocab = 151936, .hidden = 2048, .intermediate = 6144, .layers = 24, .heads = 32, .kv_heads = 4,
              .max_positions = 32768};
    case Architecture::kSmolLM3:
      return {.vocab = 128256, .hidden = 2048, .intermediate = 11008, .layers = 36, .heads = 16, .kv_heads = 4,
              .max_positions = 32768, .rope_theta = 2000000.0, .tie = true, .bos = 128000, .eos = 128001};
    case Architecture::kPhi3:
      return {.vocab = 32064, .hidden = 3072, .intermediate = 8192, .layers = 32, .heads = 32, .kv_heads = {},
              .max_positions = 4096, .bos = 1, .eos = 32000, .rms_norm_eps = 1e-5};
    case Architecture::kOlmo3:
      return {.vocab = 50304, .hidden = 4096, .intermediate = 11008, .layers = 32, .heads = 32, .kv_heads = {},
              .max_positions = 2048, .rope_theta = 500000.0, .eos = 50279, .rms_norm_eps = 1e-5};
    case Architecture::kQwen2:
    case Architecture::kBert:
      break;
  }
  return {.vocab = 151936, .hidden = 4096, .intermediate = 22016, .layers = 32, .heads = 32, .kv_heads = 32,
          .max_positions = 32768};
}

// Olmo3Config: "sliding_window" (class default 4096, null: none) on the
// "layer_types" layers marked sliding_attention; absent, every layer but each
// fourth slides.
void read_olmo3_layers(const FieldReader& fields, const std::string& source, ModelConfig& config) {
  std::vector<bool> sliding;
  for (std::int64_t i = 0; i < config.num_hidden_layers; ++i) sliding.push_back((i + 1) % 4 != 0);
  if (auto types = sliding_layer_types(fields, source, config.num_hidden_layers)) sliding = *types;
  set_windows(config, sliding_window_of(fields, 4096), sliding);
  // A flat rope (transformers 4's "rope_scaling" and "rope_theta") is the full-attention layers'; transformers 5's
  // Olmo3Config gives the sliding ones the default rope with the class's theta (500000), not "rope_theta".
  const json* parameters = fields.find("rope_parameters");
  const bool per_layer_type = parameters != nullptr && parameters->is_object() &&
                              (parameters->contains("full_attention") || parameters->contains("sliding_attention"));
  const json* scaling = fields.find("rope_scaling");
  const bool flat_scaling = scaling != nullptr && scaling->is_object() && !scaling->empty();
  if (!per_layer_type || flat_scaling) {
    const Rope sliding_rope{defaults_of(Architecture::kOlmo3).rope_theta, {}};
    if (sliding_rope.theta != config.rope_theta || config.rope_scaling.type != RopeScaling::Type::kNone)
      config.sliding_attention_rope = sliding_rope;
  }
}

void read_decoder(const FieldReader& fields, const std::string& source, ModelConfig& config) {
  const Architecture arch = config.architecture;
  const DecoderDefaults defaults = defaults_of(arch);
  config.vocab_size = fields.positive_integer("vocab_size", defaults.vocab);
  config.hidden_size = fields.positive_integer("hidden_size", defaults.hidden);
  config.intermediate_size = fields.positive_integer("intermediate_size", defaults.intermediate);
  config.num_hidden_layers = fields.layer_count(defaults.layers);
  config.num_attention_heads = fields.positive_integer("num_attention_heads", defaults.heads);
  config.max_position_embeddings = fields.positive_integer("max_position_embeddings", defaults.max_positions);
  config.rms_norm_eps = fields.positive_number("rms_norm_eps", defaults.rms_norm_eps);
  config.tie_word_embeddings = fields.boolean("tie_word_embeddings", defaults.tie);

  // An explicit null means one kv head per attention head, as an absent one
  // does for Llama (LlamaConfig declares None).
  const bool kv_null = fields.object_has_key("num_key_value_heads") && !fields.has("num_key_value_heads");
  config.num_key_value_heads = fields.positive_integer(
      "num_key_value_heads", defaults.kv_heads && !kv_null ? *defaults.kv_heads : config.num_attention_heads);
  if (config.num_attention_heads % config.num_key_value_heads != 0)
    throw Error(fmt::format("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source,
                            config.num_attention_heads, config.num_key_value_heads));

  const bool divisible = config.hidden_size % config.num_attention_heads == 0;
  if (arch == Architecture::kLlama && !divisible)
    throw Error(fmt::format("{}: hidden_size {} is not a multiple of num_attention_heads {}", source,
                            config.hidden_size, config.num_attention_heads));
  if (fields.has("head_dim")) {
    config.head_dim = fields.positive_integer("head_dim", 0);
  } else if (defaults.head_dim && !fields.object_has_key("head_dim")) {
    config.head_dim = *defaults.head_dim;  // Qwen3Config's 128, independent of hidden_size
  } else {
    if (!divisible)
      throw Error(fmt::format("{}: no \"head_dim\" and hidden_size {} is not a multiple of num_attention_heads {}",
                              source, config.hidden_size, config.num_attention_heads));
    config.head_dim = config.hidden_size / config.num_attention_heads;
  }
  if (config.head_dim % 2 != 0)
    throw Error(fmt::format("{}: head_dim {} is odd; rotary embeddings need an even head dimension", source,
                            config.head_dim));

  std::string act = fields.string("hidden_act", "silu");
  if (act == "swish") act = "silu";  // transformers maps both to SiLU
  if (act != "silu")
    throw Error(fmt::format("{}: hidden_act \"{}\" is not supported for {} (supported: silu)", source, act,
                            config.architecture_name));
  config.hidden_act = act;

  switch (arch) {
    case Architecture::kQwen2:
      // Qwen2Attention always has q/k/v biases and never an o_proj bias.
      config.attention_bias = true;
      config.attention_output_bias = false;
      break;
    case Architecture::kQwen3:
    case Architecture::kQwen3Moe:  // Qwen3MoeAttention is Qwen3Attention
      config.attention_bias = config.attention_output_bias = fields.boolean("attention_bias", false);
      config.qk_norm = true;
      break;
    case Architecture::kLlama:
    case Architecture::kSmolLM3:  // SmolLM3Attention / SmolLM3MLP take Llama's two bias flags
      config.attention_bias = config.attention_output_bias = fields.boolean("attention_bias", false);
      config.mlp_bias = fields.boolean("mlp_bias", false);
      break;
    case Architecture::kOlmo3:  // Olmo3Attention: attention_bias on q, k, v and o; q_norm / k_norm over all heads
      config.attention_bias = config.attention_output_bias = fields.boolean("attention_bias", false);
      config.qk_norm = true;
      break;
    case Architecture::kMistral:  // MistralAttention and MistralMLP have no biases
    case Architecture::kPhi3:     // nor do Phi3Attention and Phi3MLP (their projections are fused)
    case Architecture::kBert:
      break;
  }

  read_rope(fields, source, defaults.rope_theta, config);
  switch (arch) {
    case Architecture::kLlama:
    case Architecture::kBert:
      break;
    case Architecture::kMistral:  // every layer attends within the window (class default 4096)
      slide_every_layer(config, sliding_window_of(fields, 4096));
      break;
    case Architecture::kQwen3Moe:  // every layer slides when use_sliding_window (class default 4096)
      read_moe(fields, source, config);
      slide_every_layer(config, fields.boolean("use_sliding_window", false) ? sliding_window_of(fields, 4096)
                                                                            : std::nullopt);
      break;
    case Architecture::kSmolLM3:
      read_smollm3_layers(fields, source, config);
      break;
    case Architecture::kPhi3:  // every layer attends within "sliding_window" when set (class default: none)
      slide_every_layer(config, sliding_window_of(fields, std::nullopt));
      break;
    case Architecture::kOlmo3:
      read_olmo3_layers(fields, source, config);
      break;
    case Architecture::kQwen2:
    case Architecture::kQwen3:
      read_qwen_windows(fields, source, config);
      break;
  }
  if (config.sliding_attention_rope && config.sliding_attention_layers.empty())
    throw Error(fmt::format("{}: \"rope_parameters\" differ per layer type but no \"layer_types\" says which layers "
                            "are sliding_attention",
                            source));
  if (defaults.bos && !fields.object_has_key("bos_token_id")) config.bos_token_id = defaults.bos;
  if (defaults.eos && !fields.object_has_key("eos_token_id")) config.eos_token_ids.push_back(*defaults.eos);
}

void read_bert(const FieldReader& fields, const std::string& source, ModelConfig& config) {
  // Defaults of BertConfig.
  config.vocab_size = fields.positive_integer("vocab_size", 30522);
  config.hidden_size = fields.positive_integer("hidden_size", 768);
  config.num_hidden_layers = fields.layer_count( 12);
  config.num_attention_heads = fields.positive_integer("num_attention_heads", 12);
  config.intermediate_size = fields.positive_integer("intermediate_size", 3072);
  config.max_position_embeddings = fields.positive_integer("max_position_embeddings", 512);
  config.type_vocab_size = fields.positive_integer("type_vocab_size", 2);
  config.layer_norm_eps = fields.positive_number("layer_norm_eps", 1e-12);
  config.tie_word_embeddings = fields.boolean("tie_word_embeddings", true);
  config.pad_token_id = fields.integer("pad_token_id", 0);
  if (config.hidden_size % config.num_attention_heads != 0)
    throw Error(fmt::format("{}: hidden_size {} is not a multiple of num_attention_heads {}", source,
                            config.hidden_size, config.num_attention_heads));
  config.num_key_value_heads = config.num_attention_heads;
  config.head_dim = config.hidden_size / config.num_attention_heads;
  config.attention_bias = config.attention_output_bias = config.mlp_bias = true;
  config.rope_scaling = RopeScaling{};

  std::string act = fields.string("hidden_act", "gelu");
  if (act == "gelu_python") act = "gelu";  // the same erf GELU, written in Python
  if (act != "gelu")
    throw Error(fmt::format("{}: hidden_act \"{}\" is not supported for BertModel (supported: gelu)", source, act));
  config.hidden_act = act;
  const std::string position_type = fields.string("position_embedding_type", "absolute");
  if (position_type != "absolute")
    throw Error(fmt::format("{}: position_embedding_type \"{}\" is not supported (supported: absolute)", source,
                            position_type));
  if (fields.boolean("is_decoder", false))
    throw Error(fmt::format("{}: \"is_decoder\": true (causal BERT) is not supported", source));
  if (fields.boolean("add_cross_attention", false))
    throw Error(fmt::format("{}: \"add_cross_attention\": true is not supported", source));
}

}  // namespace

ModelConfig parse_model_config(const std::string& json_text, const std::string& source) {
  check_json_depth(json_text, source);
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON ({})", source, e.what()));
  }
  if (!root.is_object()) throw Error(fmt::format("{}: not a JSON object", source));
  const FieldReader fields(root, source);

  ModelConfig config;
  const KnownArchitecture& known = resolve_architecture(fields, source);
  config.architecture = known.architecture;
  config.architecture_name = known.class_name;
  config.model_type = known.model_type;

  if (fields.has("quantization_config"))
    throw Error(fmt::format("{}: \"quantization_config\" is present; quantized checkpoints are not supported", source));

  if (config.is_decoder())
    read_decoder(fields, source, config);
  else
    read_bert(fields, source, config);

  // transformers 5 saves "dtype", earlier versions "torch_dtype".
  config.torch_dtype = fields.has("dtype") ? fields.string("dtype", "") : fields.string("torch_dtype", "");

  // Absent ids took their family's defaults in read_decoder (LlamaConfig's bos 1 / eos 2, ...).
  if (fields.object_has_key("bos_token_id")) config.bos_token_id = fields.optional_integer("bos_token_id");
  if (const json* eos = fields.find("eos_token_id")) {
    if (eos->is_array()) {
      for (const auto& id : *eos) {
        if (!id.is_number_integer())
          throw Error(fmt::format("{}: \"eos_token_id\" must be an integer or a list of integers", source));
        config.eos_token_ids.push_back(id.get<std::int64_t>());
      }
    } else {
      config.eos_token_ids.push_back(fields.integer("eos_token_id", 0));
    }
  }
  // An end-of-sequence id the model cannot produce would never stop a rollout.
  for (const std::int64_t id : config.eos_token_ids)
    if (id < 0 || id >= config.vocab_size)
      throw Error(fmt::format("{}: \"eos_token_id\" {} is outside the vocabulary [0, {})", source, id,
                              config.vocab_size));
  if (!config.eos_token_ids.empty()) config.eos_token_id = config.eos_token_ids.front();
  if (config.is_decoder()) {
    if (const auto pad = fields.optional_integer("pad_token_id")) config.pad_token_id = *pad;
  }
  return config;
}

ModelConfig read_model_config(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw Error(fmt::format("{}: no such file or folder (expected a config.json or a folder holding one)", path));
  const std::string file = fs::is_directory(path, ec) ? (fs::path(path) / "config.json").string() : path;
  return parse_model_config(read_text_file(file, kConfigFileLimit), file);
}

const char* architecture_label(Architecture architecture) {
  switch (architecture) {
    case Architecture::kLlama: return "llama";
    case Architecture::kQwen2: return "qwen2";
    case Architecture::kQwen3: return "qwen3";
    case Architecture::kMistral: return "mistral";
    case Architecture::kQwen3Moe: return "qwen3_moe";
    case Architecture::kSmolLM3: return "smollm3";
    case Architecture::kPhi3: return "phi3";
    case Architecture::kOlmo3: return "olmo3";
    case Architecture::kBert: return "bert";
  }
  return "unknown";
}

}  // namespace anchors::model
