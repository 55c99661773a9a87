#include "model_commands.h"

#include <filesystem>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "anchors/cli.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/utf8.h"
#include "anchors/model/allocation_failure.h"
#include "anchors/model/config.h"
#include "anchors/model/safetensors.h"
#include "anchors/model/tokenizer.h"
#include "analyze_command.h"
#include "cli_args.h"
#include "serve_command.h"
#include "white_box_commands.h"

namespace anchors::cli {
namespace {
using json = nlohmann::ordered_json;
namespace fs = std::filesystem;

std::string human_count(std::int64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.2f}B", n / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.1f}M", n / 1e6);
  if (n >= 1'000) return fmt::format("{:.1f}K", n / 1e3);
  return std::to_string(n);
}

// ---------------------------------------------------------------- inspect
const char* kInspectUsage =
    "usage: anchors inspect MODEL_DIR [--json]\n\n"
    "Describe a Hugging Face checkpoint folder: architecture and shape from config.json,\n"
    "parameters and dtypes from the safetensors files, and the tokenizer.\n";

int run_inspect(const std::vector<std::string>& raw, std::istream&, std::ostream& out, std::ostream&) {
  Args args(raw, {"json"}, {});
  args.expect_positionals(1, "one MODEL_DIR");
  const std::string dir = args.positionals()[0];
  if (!directory_exists(dir)) throw Error(fmt::format("{}: no such directory", dir));
  const model::ModelConfig config = model::read_model_config(dir);
  const model::Checkpoint checkpoint = model::Checkpoint::open(dir);

  std::int64_t parameters = 0;
  std::map<std::string, std::int64_t> by_dtype;
  const auto names = checkpoint.names();
  for (const auto& name : names) {
    const auto& info = checkpoint.info(name);
    std::int64_t count = 1;
    for (auto d : info.shape) count *= d;
    parameters += count;
    by_dtype[std::string(c10::toString(info.dtype))] += count;
  }

  json doc;
  doc["path"] = dir;
  doc["architecture"] = config.architecture_name;
  doc["model_type"] = config.model_type;
  doc["layers"] = config.num_hidden_layers;
  doc["hidden_size"] = config.hidden_size;
  doc["intermediate_size"] = config.intermediate_size;
  doc["attention_heads"] = config.num_attention_heads;
  doc["key_value_heads"] = config.num_key_value_heads;
  doc["head_dim"] = config.head_dim;
  doc["vocab_size"] = config.vocab_size;
  doc["max_position_embeddings"] = config.max_position_embeddings;
  doc["rope_theta"] = config.rope_theta;
  doc["tie_word_embeddings"] = config.tie_word_embeddings;
  const std::vector<std::int64_t> moe_layers = config.layers_where([&](std::int64_t i) { return config.is_moe_layer(i); });
  const std::vector<std::int64_t> nope_layers =
      config.layers_where([&](std::int64_t i) { return config.is_decoder() && !config.uses_rope(i); });
  const std::vector<std::int64_t> sliding_layers =
      config.layers_where([&](std::int64_t i) { return config.sliding_window(i) > 0; });
  if (!moe_layers.empty())
    doc["experts"] = {{"experts", config.num_experts}, {"per_token", config.num_experts_per_tok},
                      {"intermediate_size", config.moe_intermediate_size}, {"layers", moe_layers}};
  if (!nope_layers.empty()) doc["nope_layers"] = nope_layers;
  if (!sliding_layers.empty()) {
    json windows = json::object();
    for (const std::int64_t i : sliding_layers) windows[std::to_string(i)] = config.sliding_window(i);
    doc["sliding_windows"] = windows;  // layer -> window; layers not listed attend in full
  }
  doc["tensors"] = names.size();
  doc["parameters"] = parameters;
  doc["dtypes"] = by_dtype;
  const std::string tokenizer_path = (fs::path(dir) / "tokenizer.json").string();
  if (file_exists(tokenizer_path)) {
    const auto tokenizer = model::Tokenizer::load(tokenizer_path);
    doc["tokenizer"] = {{"kind", tokenizer->kind()},
                        {"vocab_size", tokenizer->vocab_size()},
                        {"added_tokens", tokenizer->added_tokens().size()}};
    if (auto bos = tokenizer->bos_id()) doc["tokenizer"]["bos"] = tokenizer->id_to_token(*bos);
    if (auto eos = tokenizer->eos_id()) doc["tokenizer"]["eos"] = tokenizer->id_to_token(*eos);
  } else {
    doc["tokenizer"] = nullptr;
  }
  if (args.flag("json")) {
    out << doc.dump(1) << "\n";
    return 0;
  }
  out << fmt::format("{} ({})\n", dir, config.architecture_name);
  out << fmt::format("  architecture   {}: {} layers, hidden {}, MLP {}, heads {} (kv {}, head_dim {})\n",
                     model::architecture_label(config.architecture), config.num_hidden_layers, config.hidden_size,
                     config.intermediate_size, config.num_attention_heads, config.num_key_value_heads,
                     config.head_dim);
  if (config.is_decoder()) {
    out << fmt::format("  vocabulary     {} (output embeddings {})\n", config.vocab_size,
                       config.tie_word_embeddings ? "tied" : "untied");
    out << fmt::format("  positions      {} (rope_theta {})\n", config.max_position_embeddings, config.rope_theta);
    if (!moe_layers.empty())
      out << fmt::format("  experts        {} per MoE layer, {} per token, MLP {} ({} of {} layers routed)\n",
                         config.num_experts, config.num_experts_per_tok, config.moe_intermediate_size,
                         moe_layers.size(), config.num_hidden_layers);
    if (!nope_layers.empty())
      out << fmt::format("  no RoPE        layers {}\n", fmt::join(nope_layers, ", "));
    if (!sliding_layers.empty()) {
      std::vector<std::string> windows;
      for (const std::int64_t i : sliding_layers) windows.push_back(fmt::format("{}", config.sliding_window(i)));
      out << fmt::format("  sliding window layers {} (windows {}; the other layers attend in full)\n",
                         fmt::join(sliding_layers, ", "), fmt::join(windows, ", "));
    }
  } else {
    out << fmt::format("  vocabulary     {}\n", config.vocab_size);
    out << fmt::format("  positions      {} (learned)\n", config.max_position_embeddings);
  }
  std::string dtypes;
  for (const auto& [d, n] : by_dtype) dtypes += fmt::format("{}{} {}", dtypes.empty() ? "" : ", ", d, human_count(n));
  out << fmt::format("  parameters     {} in {} tensors ({})\n", human_count(parameters), names.size(), dtypes);
  if (doc["tokenizer"].is_null()) {
    out << "  tokenizer      none (no tokenizer.json)\n";
  } else {
    out << fmt::format("  tokenizer      {}, vocabulary {}, {} added tokens\n", doc["tokenizer"]["kind"].get<std::string>(),
                       doc["tokenizer"]["vocab_size"].get<std::int64_t>(),
                       doc["tokenizer"]["added_tokens"].get<std::size_t>());
  }
  return 0;
}

// ---------------------------------------------------------------- tokenize
const char* kTokenizeUsage =
    "usage: anchors tokenize MODEL_DIR|TOKENIZER_JSON TEXT|- [--special] [--json]\n\n"
    "Tokenize TEXT (or stdin with -) and print each token id, its piece and its character\n"
    "span (code point offsets into TEXT). --special adds the tokenizer's special tokens.\n";

int run_tokenize(const std::vector<std::string>& raw, std::istream& in, std::ostream& out, std::ostream&) {
  Args args(raw, {"special", "json"}, {});
  args.expect_positionals(2, "MODEL_DIR and TEXT");
  const auto tokenizer = model::Tokenizer::load(args.positionals()[0]);
  std::string text = args.positionals()[1];
  if (text == "-") text = read_stream(in, "<stdin>", kDataFileLimit);
  if (!utf8::is_valid(text)) throw Error("TEXT is not valid UTF-8");
  const auto encoding = tokenizer->encode(text, args.flag("special"));
  json tokens = json::array();
  utf8::Cursor offsets(text);  // token spans come in order: one pass over the text
  for (std::size_t i = 0; i < encoding.ids.size(); ++i) {
    const auto& span = encoding.offsets[i];
    tokens.push_back({{"id", encoding.ids[i]},
                      {"token", tokenizer->id_to_token(encoding.ids[i])},
                      {"char_start", offsets.codepoint_offset(span.begin)},
                      {"char_end", offsets.codepoint_offset(span.end)}});
  }
  if (args.flag("json")) {
    out << tokens.dump(1, ' ', false, json::error_handler_t::replace) << "\n";
    return 0;
  }
  out << fmt::format("{} tokens\n", encoding.ids.size());
  for (std::size_t i = 0; i < encoding.ids.size(); ++i) {
    const auto& span = encoding.offsets[i];
    out << fmt::format("{:>6} {:>8}  [{}, {})  {}\n", i, encoding.ids[i], tokens[i]["char_start"].get<std::size_t>(),
                       tokens[i]["char_end"].get<std::size_t>(),
                       json(text.substr(span.begin, span.end - span.begin)).dump(-1, ' ', false, json::error_handler_t::replace));
  }
  return 0;
}

}  // namespace

void register_model_command(CliCommand command) {
  command.run = [run = std::move(command.run)](const std::vector<std::string>& args, std::istream& in,
                                               std::ostream& out, std::ostream& err) {
    try {
      return run(args, in, out, err);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      if (const auto message = model::allocation_failure(e)) throw Error(*message);
      throw;
    }
  };
  register_cli_command(std::move(command));
}

void register_model_commands() {
  register_model_command({"inspect", "describe a checkpoint folder (architecture, parameters, tokenizer)", kInspectUsage,
                        run_inspect});
  register_model_command({"tokenize", "tokenize text with a checkpoint's tokenizer.json", kTokenizeUsage, run_tokenize});
  register_white_box_commands();
  register_serve_command();
  register_analyze_command();
}

}  // namespace anchors::cli
