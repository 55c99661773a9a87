// BERT encoder + sentence-transformers pooling. The forward pass mirrors
// transformers' BertModel (post-LN layers, erf GELU, padding keys masked out
// of attention) and sentence-transformers' Pooling(mean) and Normalize.
#include "anchors/model/embedder.h"

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <utility>

#include <ATen/ATen.h>
#include <torch/utils.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/model/device.h"
#include "anchors/core/file_io.h"
#include "anchors/model/safetensors.h"
#include "anchors/model/tokenizer.h"

namespace anchors::model {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Linear {
  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out]
  torch::Tensor operator()(const torch::Tensor& x) const { return at::linear(x, weight, bias); }
};

struct LayerNorm {
  torch::Tensor weight;
  torch::Tensor bias;
  double eps = 1e-12;
  torch::Tensor operator()(const torch::Tensor& x) const {
    return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
  }
};

struct EncoderLayer {
  Linear query, key, value;
  Linear attention_output;
  LayerNorm attention_norm;
  Linear intermediate;
  Linear output;
  LayerNorm output_norm;
};

// What the sentence-transformers files of the folder ask for.
struct PipelineSpec {
  std::int64_t max_seq_length = 0;
  bool normalize = false;
};

json read_json(const std::string& path) {
  try {
    return json::parse(read_text_file(path, kConfigFileLimit));
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON ({})", path, e.what()));
  }
}

void check_pooling(const std::string& path) {
  const json pooling = read_json(path);
  if (!pooling.is_object()) throw Error(fmt::format("{}: not a JSON object", path));
  bool mean = false;
  for (const auto& [key, value] : pooling.items()) {
    if (key.rfind("pooling_mode_", 0) != 0) continue;
    if (!value.is_boolean()) throw Error(fmt::format("{}: \"{}\" must be true or false", path, key));
    if (key == "pooling_mode_mean_tokens")
      mean = value.get<bool>();
    else if (value.get<bool>())
      throw Error(fmt::format("{}: \"{}\" is not supported (only pooling_mode_mean_tokens)", path, key));
  }
  if (!mean) throw Error(fmt::format("{}: \"pooling_mode_mean_tokens\" must be true (the one supported pooling)", path));
}

PipelineSpec read_pipeline(const fs::path& dir, const ModelConfig& config) {
  PipelineSpec spec;
  spec.max_seq_length = config.max_position_embeddings;

  const fs::path st_config = dir / "sentence_bert_config.json";
  if (fs::exists(st_config)) {
    const std::string path = st_config.string();
    const json j = read_json(path);
    if (!j.is_object()) throw Error(fmt::format("{}: not a JSON object", path));
    if (const auto it = j.find("max_seq_length"); it != j.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<std::int64_t>() < 2)
        throw Error(fmt::format("{}: \"max_seq_length\" must be an integer >= 2", path));
      spec.max_seq_length = std::min(it->get<std::int64_t>(), config.max_position_embeddings);
    }
    if (const auto it = j.find("do_lower_case"); it != j.end() && it->is_boolean() && it->get<bool>())
      throw Error(fmt::format("{}: \"do_lower_case\": true is not supported (the tokenizer's own normalizer "
                              "must do the lowercasing)",
                              path));
  }

  const fs::path modules_path = dir / "modules.json";
  if (!fs::exists(modules_path)) return spec;  // plain HF folder: mean pooling, as sentence-transformers does

  const std::string path = modules_path.string();
  const json modules = read_json(path);
  if (!modules.is_array()) throw Error(fmt::format("{}: not a JSON list of modules", path));
  bool transformer = false, pooling = false;
  for (const auto& module : modules) {
    if (!module.is_object() || !module.contains("type") || !module["type"].is_string())
      throw Error(fmt::format("{}: every module needs a \"type\" string", path));
    const std::string type = module["type"].get<std::string>();
    const std::string module_dir =
        module.contains("path") && module["path"].is_string() ? module["path"].get<std::string>() : "";
    const std::string name = type.substr(type.rfind('.') + 1);
    if (name == "Transformer" && !transformer && !pooling) {
      transformer = true;
    } else if (name == "Pooling" && transformer && !pooling) {
      pooling = true;
      check_pooling((dir / module_dir / "config.json").string());
    } else if (name == "Normalize" && pooling && !spec.normalize) {
      spec.normalize = true;
    } else {
      throw Error(fmt::format("{}: module \"{}\" is not supported here (supported: Transformer, then Pooling, then "
                              "an optional Normalize)",
                              path, type));
    }
  }
  if (!transformer || !pooling)
    throw Error(fmt::format("{}: needs a Transformer module followed by a Pooling module", path));
  return spec;
}

}  // namespace

struct BertEmbedder::State {
  std::string dir;
  ModelConfig config;
  std::shared_ptr<Tokenizer> tokenizer;
  torch::Device device = torch::kCPU;
  PipelineSpec pipeline;
  std::size_t batch_size = 32;

  torch::Tensor word_embeddings;      // [vocab, hidden]
  torch::Tensor position_embeddings;  // [max_positions, hidden]
  torch::Tensor token_type_row;       // [hidden]: type 0, the only type a single sentence has
  LayerNorm embedding_norm;
  std::vector<EncoderLayer> layers;

  // ids [B, T] (padded), mask [B, T] (true = real token) -> pooled [B, hidden].
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask) const {
    const std::int64_t batch = ids.size(0), length = ids.size(1);
    const std::int64_t heads = config.num_attention_heads, head_dim = config.head_dim;
    const auto positions = torch::arange(length, torch::TensorOptions().dtype(torch::kInt64).device(device));
    torch::Tensor hidden = at::embedding(word_embeddings, ids) + at::embedding(position_embeddings, positions) +
                           token_type_row;
    hidden = embedding_norm(hidden);

    // Padding keys take no part in attention (every row keeps its [CLS]).
    const auto key_mask = mask.view({batch, 1, 1, length});
    const auto split_heads = [&](const torch::Tensor& x) {
      return x.view({batch, length, heads, head_dim}).transpose(1, 2);
    };
    for (const auto& layer : layers) {
      const auto context = at::scaled_dot_product_attention(split_heads(layer.query(hidden)),
                                                            split_heads(layer.key(hidden)),
                                                            split_heads(layer.value(hidden)), key_mask);
      const auto attended = context.transpose(1, 2).reshape({batch, length, heads * head_dim});
      hidden = layer.attention_norm(layer.attention_output(attended) + hidden);
      const auto activated = at::gelu(layer.intermediate(hidden));  // erf form, as "gelu" in transformers
      hidden = layer.output_norm(layer.output(activated) + hidden);
    }

    // Mean over real tokens (sentence-transformers Pooling, mean mode).
    const auto weights = mask.unsqueeze(-1).to(hidden.scalar_type());
    auto pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9);
    if (pipeline.normalize) pooled = pooled / pooled.norm(2, 1, true).clamp_min(1e-12);  // F.normalize
    return pooled;
  }
};

BertEmbedder::BertEmbedder(std::unique_ptr<State> state) : state_(std::move(state)) {}
BertEmbedder::~BertEmbedder() = default;

std::shared_ptr<BertEmbedder> BertEmbedder::load(const std::string& dir, torch::Device device) {
  check_device(device, fmt::format("BertEmbedder::load({})", dir));
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(fmt::format("{}: not a model folder", dir));
  auto state = std::make_unique<State>();
  state->dir = dir;
  state->device = device;
  state->config = read_model_config(dir);
  const ModelConfig& config = state->config;
  if (config.architecture != Architecture::kBert)
    throw Error(fmt::format("{}: BertEmbedder needs a BertModel checkpoint, this is {}",
                            (fs::path(dir) / "config.json").string(), config.architecture_name));
  state->pipeline = read_pipeline(dir, config);
  state->tokenizer = Tokenizer::load(dir);

  const Checkpoint checkpoint = Checkpoint::open(dir);
  // sentence-transformers saves BertModel's own names; BertFor* heads prefix them with "bert.".
  const std::string prefix = checkpoint.contains("embeddings.word_embeddings.weight") ? "" : "bert.";
  const std::int64_t hidden = config.hidden_size, inner = config.intermediate_size;
  const auto tensor = [&](const std::string& name, std::vector<std::int64_t> shape) {
    const std::string full = prefix + name;
    if (!checkpoint.contains(full))
      throw Error(fmt::format("{}: checkpoint has no tensor \"{}\" (nor \"{}\")", dir, full,
                              prefix.empty() ? "bert." + name : name));
    return checkpoint.load(full, torch::kFloat32, device, shape);
  };
  const auto linear = [&](const std::string& name, std::int64_t out, std::int64_t in) {
    return Linear{tensor(name + ".weight", {out, in}), tensor(name + ".bias", {out})};
  };
  const auto layer_norm = [&](const std::string& name) {
    return LayerNorm{tensor(name + ".weight", {hidden}), tensor(name + ".bias", {hidden}), config.layer_norm_eps};
  };

  state->word_embeddings = tensor("embeddings.word_embeddings.weight", {config.vocab_size, hidden});
  state->position_embeddings =
      tensor("embeddings.position_embeddings.weight", {config.max_position_embeddings, hidden});
  state->token_type_row = tensor("embeddings.token_type_embeddings.weight", {config.type_vocab_size, hidden})[0];
  state->embedding_norm = layer_norm("embeddings.LayerNorm");
  for (std::int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = fmt::format("encoder.layer.{}.", i);
    EncoderLayer layer;
    layer.query = linear(p + "attention.self.query", hidden, hidden);
    layer.key = linear(p + "attention.self.key", hidden, hidden);
    layer.value = linear(p + "attention.self.value", hidden, hidden);
    layer.attention_output = linear(p + "attention.output.dense", hidden, hidden);
    layer.attention_norm = layer_norm(p + "attention.output.LayerNorm");
    layer.intermediate = linear(p + "intermediate.dense", inner, hidden);
    layer.output = linear(p + "output.dense", hidden, inner);
    layer.output_norm = layer_norm(p + "output.LayerNorm");
    state->layers.push_back(std::move(layer));
  }
  return std::shared_ptr<BertEmbedder>(new BertEmbedder(std::move(state)));
}

std::vector<std::int64_t> BertEmbedder::token_ids(const std::string& text) const {
  const Tokenizer& tokenizer = *state_->tokenizer;
  const auto max_length = static_cast<std::size_t>(state_->pipeline.max_seq_length);
  std::vector<std::int64_t> ids = tokenizer.encode(text, /*add_special_tokens=*/true).ids;
  if (ids.size() <= max_length) return ids;
  // Truncate the text's tokens from the right and keep the special tokens
  // around them, as HF truncation of a single sequence does.
  const std::vector<std::int64_t> body = tokenizer.encode(text, /*add_special_tokens=*/false).ids;
  const std::size_t specials = ids.size() - body.size();
  if (specials >= max_length)
    throw Error(fmt::format("{}: max_seq_length {} leaves no room for text", state_->dir, max_length));
  std::size_t prefix = 0;
  while (prefix <= specials && !std::equal(body.begin(), body.end(), ids.begin() + static_cast<std::ptrdiff_t>(prefix)))
    ++prefix;
  if (prefix > specials)
    throw Error(fmt::format("{}: cannot locate the text's tokens among the special tokens", tokenizer.source()));
  std::vector<std::int64_t> truncated(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(prefix));
  truncated.insert(truncated.end(), body.begin(), body.begin() + static_cast<std::ptrdiff_t>(max_length - specials));
  truncated.insert(truncated.end(), ids.begin() + static_cast<std::ptrdiff_t>(prefix + body.size()), ids.end());
  return truncated;
}

torch::Tensor BertEmbedder::embed_tensor(const std::vector<std::string>& texts) {
  const State& s = *state_;
  const auto n = static_cast<std::int64_t>(texts.size());
  const auto float_options = torch::TensorOptions().dtype(torch::kFloat32).device(s.device);
  if (n == 0) return torch::empty({0, s.config.hidden_size}, float_options);

  std::vector<std::vector<std::int64_t>> ids(texts.size());
  for (std::size_t k = 0; k < texts.size(); ++k) ids[k] = token_ids(texts[k]);
  // Longest first, so each batch pads little (as sentence-transformers sorts).
  std::vector<std::size_t> order(texts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return ids[a].size() > ids[b].size(); });

  // NoGrad rather than InferenceMode: the result stays an ordinary tensor
  // that callers may modify in place.
  torch::NoGradGuard no_grad;
  auto result = torch::empty({n, s.config.hidden_size}, float_options);
  for (std::size_t start = 0; start < order.size(); start += s.batch_size) {
    const std::size_t stop = std::min(order.size(), start + s.batch_size);
    const auto batch = static_cast<std::int64_t>(stop - start);
    const auto length = static_cast<std::int64_t>(ids[order[start]].size());
    auto batch_ids = torch::full({batch, length}, s.config.pad_token_id, torch::kInt64);
    auto batch_mask = torch::zeros({batch, length}, torch::kBool);
    std::vector<std::int64_t> rows;
    for (std::size_t k = start; k < stop; ++k) {
      const auto& sentence = ids[order[k]];
      const auto row = static_cast<std::int64_t>(k - start);
      const auto len = static_cast<std::int64_t>(sentence.size());
      batch_ids[row].narrow(0, 0, len).copy_(torch::from_blob(const_cast<std::int64_t*>(sentence.data()), {len}, torch::kInt64));
      batch_mask[row].narrow(0, 0, len).fill_(true);
      rows.push_back(static_cast<std::int64_t>(order[k]));
    }
    const auto pooled = s.forward(batch_ids.to(s.device), batch_mask.to(s.device));
    result.index_copy_(0, torch::tensor(rows, torch::kInt64).to(s.device), pooled);
  }
  return result;
}

std::vector<std::vector<float>> BertEmbedder::embed(const std::vector<std::string>& texts) {
  const auto tensor = embed_tensor(texts).to(torch::kCPU).contiguous();
  const auto dim = static_cast<std::size_t>(tensor.size(1));
  const float* data = tensor.data_ptr<float>();
  std::vector<std::vector<float>> out(texts.size());
  for (std::size_t k = 0; k < texts.size(); ++k) out[k].assign(data + k * dim, data + (k + 1) * dim);
  return out;
}

std::string BertEmbedder::name() const { return fmt::format("BertEmbedder({})", state_->dir); }
const ModelConfig& BertEmbedder::config() const { return state_->config; }
const Tokenizer& BertEmbedder::tokenizer() const { return *state_->tokenizer; }
torch::Device BertEmbedder::device() const { return state_->device; }
std::int64_t BertEmbedder::dimension() const { return state_->config.hidden_size; }
std::int64_t BertEmbedder::max_seq_length() const { return state_->pipeline.max_seq_length; }
bool BertEmbedder::normalizes() const { return state_->pipeline.normalize; }
std::size_t BertEmbedder::batch_size() const { return state_->batch_size; }

void BertEmbedder::set_batch_size(std::size_t batch_size) {
  if (batch_size == 0) throw Error("BertEmbedder::set_batch_size: batch size must be positive");
  state_->batch_size = batch_size;
}

}  // namespace anchors::model
