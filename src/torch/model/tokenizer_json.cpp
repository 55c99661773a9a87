// Reading tokenizer.json into a Pipeline. Every component is checked against
// what we implement; anything else is an Error naming the file and the
// component, so a tokenizer either loads and matches HF or does not load.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/json_depth.h"
#include "tokenizer_json.h"

namespace anchors::model::tokenizer_detail {
namespace {

using nlohmann::json;

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(fmt::format("tokenizer {}: {}", source_, what));
  }

  const json& field(const json& object, const char* key, const std::string& where) const {
    if (!object.is_object()) fail(fmt::format("{} must be a JSON object", where));
    const auto it = object.find(key);
    if (it == object.end()) fail(fmt::format("{} has no \"{}\"", where, key));
    return *it;
  }

  std::string string_field(const json& object, const char* key, const std::string& where) const {
    const json& v = field(object, key, where);
    if (!v.is_string()) fail(fmt::format("{}.{} must be a string", where, key));
    return v.get<std::string>();
  }

  bool bool_field(const json& object, const char* key, const std::string& where, bool fallback) const {
    if (!object.is_object()) fail(fmt::format("{} must be a JSON object", where));
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) fail(fmt::format("{}.{} must be true or false", where, key));
    return it->get<bool>();
  }

  std::optional<std::string> optional_string(const json& object, const char* key, const std::string& where) const {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) fail(fmt::format("{}.{} must be a string or null", where, key));
    return it->get<std::string>();
  }

  std::int64_t id_value(const json& v, const std::string& where) const {
    if (!v.is_number_integer()) fail(fmt::format("{} must be an integer id", where));
    return v.get<std::int64_t>();
  }

  std::string type_of(const json& component, const std::string& where) const {
    return string_field(component, "type", where);
  }

  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

// ---- normalizer ----
void read_normalizer(const Reader& r, const json& n, std::vector<NormalizerStep>& steps) {
  const std::string type = r.type_of(n, "normalizer");
  if (type == "Sequence") {
    const json& list = r.field(n, "normalizers", "normalizer Sequence");
    if (!list.is_array()) r.fail("normalizer Sequence.normalizers must be an array");
    for (const json& item : list) read_normalizer(r, item, steps);
  } else if (type == "NFC") {
    steps.push_back(NormalizerStep::kNfc);
  } else if (type == "NFD") {
    steps.push_back(NormalizerStep::kNfd);
  } else if (type == "Lowercase") {
    steps.push_back(NormalizerStep::kLowercase);
  } else if (type == "BertNormalizer") {
    const bool lowercase = r.bool_field(n, "lowercase", "BertNormalizer", true);
    if (r.bool_field(n, "clean_text", "BertNormalizer", true)) steps.push_back(NormalizerStep::kBertCleanText);
    if (r.bool_field(n, "handle_chinese_chars", "BertNormalizer", true)) steps.push_back(NormalizerStep::kBertPadCjk);
    // strip_accents: null means "same as lowercase".
    if (r.bool_field(n, "strip_accents", "BertNormalizer", lowercase)) {
      steps.push_back(NormalizerStep::kBertStripAccents);
    }
    if (lowercase) steps.push_back(NormalizerStep::kLowercase);
  } else {
    r.fail(fmt::format("normalizer \"{}\" is not supported (supported: NFC, NFD, Lowercase, BertNormalizer, Sequence)",
                       type));
  }
}

// ---- pre-tokenizer ----
void read_pre_tokenizer(const Reader& r, const json& p, std::vector<PreTokenizerStep>& steps) {
  const std::string type = r.type_of(p, "pre_tokenizer");
  PreTokenizerStep step;
  if (type == "Sequence") {
    const json& list = r.field(p, "pretokenizers", "pre_tokenizer Sequence");
    if (!list.is_array()) r.fail("pre_tokenizer Sequence.pretokenizers must be an array");
    for (const json& item : list) read_pre_tokenizer(r, item, steps);
    return;
  }
  if (type == "Split") {
    const json& pattern = r.field(p, "pattern", "pre_tokenizer Split");
    const std::string behavior = r.string_field(p, "behavior", "pre_tokenizer Split");
    if (behavior == "Isolated") {
      step.behavior = SplitBehavior::kIsolated;
    } else if (behavior == "Removed") {
      step.behavior = SplitBehavior::kRemoved;
    } else {
      r.fail(fmt::format("pre_tokenizer Split behavior \"{}\" is not supported (supported: Isolated, Removed)",
                         behavior));
    }
    if (r.bool_field(p, "invert", "pre_tokenizer Split", false)) {
      r.fail("pre_tokenizer Split with invert=true is not supported");
    }
    if (pattern.is_object() && pattern.contains("Regex")) {
      const std::string regex = r.string_field(pattern, "Regex", "pre_tokenizer Split.pattern");
      const auto known = recognize_split_regex(regex);
      if (!known) {
        r.fail(fmt::format("pre_tokenizer Split regex {} is not supported (supported: the GPT-2, Qwen2 and Llama-3 "
                           "pre-tokenizer patterns)",
                           json(regex).dump()));
      }
      step.kind = PreTokenizerStep::Kind::kSplitRegex;
      step.regex = *known;
    } else if (pattern.is_object() && pattern.contains("String")) {
      step.kind = PreTokenizerStep::Kind::kSplitLiteral;
      step.literal = r.string_field(pattern, "String", "pre_tokenizer Split.pattern");
    } else {
      r.fail("pre_tokenizer Split.pattern must be {\"Regex\": ...} or {\"String\": ...}");
    }
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    step.add_prefix_space = r.bool_field(p, "add_prefix_space", "pre_tokenizer ByteLevel", true);
    step.use_regex = r.bool_field(p, "use_regex", "pre_tokenizer ByteLevel", true);
  } else if (type == "BertPreTokenizer") {
    step.kind = PreTokenizerStep::Kind::kBert;
  } else if (type == "WhitespaceSplit") {
    step.kind = PreTokenizerStep::Kind::kWhitespaceSplit;
  } else {
    r.fail(fmt::format("pre_tokenizer \"{}\" is not supported (supported: ByteLevel, Split, BertPreTokenizer, "
                       "WhitespaceSplit, Sequence)",
                       type));
  }
  steps.push_back(std::move(step));
}

// ---- model ----
Vocabulary read_vocabulary(const Reader& r, const json& model, const std::string& where) {
  const json& vocab = r.field(model, "vocab", where);
  if (!vocab.is_object()) r.fail(fmt::format("{}.vocab must be an object of token: id", where));
  Vocabulary out;
  for (const auto& [token, id] : vocab.items()) {
    out.add(token, r.id_value(id, fmt::format("{}.vocab[\"{}\"]", where, token)), r.source());
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> read_merges(const Reader& r, const json& model) {
  std::vector<std::pair<std::string, std::string>> merges;
  const auto it = model.find("merges");
  if (it == model.end() || it->is_null()) return merges;
  if (!it->is_array()) r.fail("model.merges must be an array");
  merges.reserve(it->size());
  std::size_t rank = 0;
  for (const json& m : *it) {
    if (m.is_string()) {
      // "a b": exactly one space (HF's legacy serialisation); #version lines are skipped.
      const std::string line = m.get<std::string>();
      if (line.rfind("#version", 0) == 0) continue;
      const std::size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        r.fail(fmt::format("model.merges[{}] \"{}\" is not two tokens separated by one space", rank, line));
      }
      merges.emplace_back(line.substr(0, space), line.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      r.fail(fmt::format("model.merges[{}] must be \"a b\" or [\"a\", \"b\"]", rank));
    }
    ++rank;
  }
  return merges;
}

void read_model(const Reader& r, const json& model, Pipeline& pipeline) {
  if (!model.is_object()) r.fail("\"model\" must be a JSON object");
  const auto type_it = model.find("type");
  const std::string type = type_it != model.end() && type_it->is_string() ? type_it->get<std::string>() : "";
  if (type == "BPE") {
    if (model.contains("dropout") && !model["dropout"].is_null()) {
      if (!model["dropout"].is_number() || model["dropout"].get<double>() != 0.0) {
        r.fail("BPE dropout is not supported (encoding would be random)");
      }
    }
    if (r.bool_field(model, "byte_fallback", "model", false)) {
      r.fail("BPE byte_fallback is not supported (only byte-level BPE is)");
    }
    BpeOptions options;
    options.unk_token = r.optional_string(model, "unk_token", "model");
    options.continuing_subword_prefix = r.optional_string(model, "continuing_subword_prefix", "model").value_or("");
    options.end_of_word_suffix = r.optional_string(model, "end_of_word_suffix", "model").value_or("");
    options.fuse_unk = r.bool_field(model, "fuse_unk", "model", false);
    options.ignore_merges = r.bool_field(model, "ignore_merges", "model", false);
    pipeline.model.emplace<BytePairModel>(read_vocabulary(r, model, "model"), read_merges(r, model), std::move(options),
                                          r.source());
  } else if (type == "WordPiece") {
    WordPieceOptions options;
    options.unk_token = r.optional_string(model, "unk_token", "model").value_or("[UNK]");
    options.continuing_subword_prefix = r.optional_string(model, "continuing_subword_prefix", "model").value_or("##");
    if (const auto it = model.find("max_input_chars_per_word"); it != model.end() && !it->is_null()) {
      if (!it->is_number_unsigned()) r.fail("model.max_input_chars_per_word must be a non-negative integer");
      options.max_input_chars_per_word = it->get<std::size_t>();
    }
    pipeline.model.emplace<WordPieceModel>(read_vocabulary(r, model, "model"), std::move(options), r.source());
  } else {
    r.fail(fmt::format("model type \"{}\" is not supported (supported: BPE with a ByteLevel pre-tokenizer, WordPiece)",
                       type.empty() ? std::string("<missing>") : type));
  }
}

// ---- post-processor ----
std::pair<std::string, std::int64_t> read_token_pair(const Reader& r, const json& v, const std::string& where) {
  if (!v.is_array() || v.size() != 2 || !v[0].is_string()) r.fail(fmt::format("{} must be [\"token\", id]", where));
  return {v[0].get<std::string>(), r.id_value(v[1], where)};
}

void read_post_processor(const Reader& r, const json& p, std::vector<PostStep>& steps) {
  const std::string type = r.type_of(p, "post_processor");
  if (type == "Sequence") {
    const json& list = r.field(p, "processors", "post_processor Sequence");
    if (!list.is_array()) r.fail("post_processor Sequence.processors must be an array");
    for (const json& item : list) read_post_processor(r, item, steps);
  } else if (type == "ByteLevel") {
    if (r.bool_field(p, "trim_offsets", "post_processor ByteLevel", true)) {
      PostStep step;
      step.kind = PostStep::Kind::kTrimOffsets;
      step.add_prefix_space = r.bool_field(p, "add_prefix_space", "post_processor ByteLevel", true);
      steps.push_back(step);
    }
  } else if (type == "TemplateProcessing") {
    const json& single = r.field(p, "single", "post_processor TemplateProcessing");
    const json& specials = r.field(p, "special_tokens", "post_processor TemplateProcessing");
    if (!single.is_array()) r.fail("post_processor TemplateProcessing.single must be an array");
    PostStep step;
    bool seen_sequence = false;
    for (const json& piece : single) {
      if (piece.is_object() && piece.contains("Sequence")) {
        const std::string id = r.string_field(piece["Sequence"], "id", "TemplateProcessing.single Sequence");
        if (id != "A" || seen_sequence) r.fail("post_processor TemplateProcessing.single must contain sequence A once");
        seen_sequence = true;
      } else if (piece.is_object() && piece.contains("SpecialToken")) {
        const std::string name = r.string_field(piece["SpecialToken"], "id", "TemplateProcessing.single SpecialToken");
        const json& special = r.field(specials, name.c_str(), "post_processor TemplateProcessing.special_tokens");
        const json& ids = r.field(special, "ids", fmt::format("special token \"{}\"", name));
        const json& tokens = r.field(special, "tokens", fmt::format("special token \"{}\"", name));
        if (!ids.is_array() || !tokens.is_array() || ids.size() != tokens.size()) {
          r.fail(fmt::format("special token \"{}\" must have as many ids as tokens", name));
        }
        for (std::size_t k = 0; k < ids.size(); ++k) {
          if (!tokens[k].is_string()) r.fail(fmt::format("special token \"{}\".tokens must be strings", name));
          (seen_sequence ? step.suffix_ids : step.prefix_ids).push_back(r.id_value(ids[k], "special token id"));
          (seen_sequence ? step.suffix_tokens : step.prefix_tokens).push_back(tokens[k].get<std::string>());
        }
      } else {
        r.fail("post_processor TemplateProcessing.single has an entry that is neither Sequence nor SpecialToken");
      }
    }
    if (!seen_sequence) r.fail("post_processor TemplateProcessing.single has no sequence A");
    steps.push_back(std::move(step));
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    const auto cls = read_token_pair(r, r.field(p, "cls", type), type + ".cls");
    const auto sep = read_token_pair(r, r.field(p, "sep", type), type + ".sep");
    if (type == "RobertaProcessing" && r.bool_field(p, "trim_offsets", type, true)) {
      PostStep trim;
      trim.kind = PostStep::Kind::kTrimOffsets;
      trim.add_prefix_space = r.bool_field(p, "add_prefix_space", type, true);
      steps.push_back(trim);
    }
    PostStep step;
    step.prefix_ids = {cls.second};
    step.prefix_tokens = {cls.first};
    step.suffix_ids = {sep.second};
    step.suffix_tokens = {sep.first};
    steps.push_back(std::move(step));
  } else {
    r.fail(fmt::format("post_processor \"{}\" is not supported (supported: ByteLevel, TemplateProcessing, "
                       "BertProcessing, RobertaProcessing, Sequence)",
                       type));
  }
}

// ---- decoder ----
void read_decoder(const Reader& r, const json& d, std::vector<DecoderStep>& steps) {
  const std::string type = r.type_of(d, "decoder");
  if (type == "Sequence") {
    const json& list = r.field(d, "decoders", "decoder Sequence");
    if (!list.is_array()) r.fail("decoder Sequence.decoders must be an array");
    for (const json& item : list) read_decoder(r, item, steps);
  } else if (type == "ByteLevel") {
    steps.push_back({DecoderStep::Kind::kByteLevel, {}, false});
  } else if (type == "WordPiece") {
    DecoderStep step;
    step.kind = DecoderStep::Kind::kWordPiece;
    step.prefix = r.optional_string(d, "prefix", "decoder WordPiece").value_or("##");
    step.cleanup = r.bool_field(d, "cleanup", "decoder WordPiece", true);
    steps.push_back(step);
  } else {
    r.fail(fmt::format("decoder \"{}\" is not supported (supported: ByteLevel, WordPiece, Sequence)", type));
  }
}

std::vector<AddedToken> read_added_tokens(const Reader& r, const json& root) {
  std::vector<AddedToken> out;
  const auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return out;
  if (!it->is_array()) r.fail("\"added_tokens\" must be an array");
  for (const json& t : *it) {
    AddedToken token;
    token.id = r.id_value(r.field(t, "id", "added token"), "added token id");
    token.content = r.string_field(t, "content", "added token");
    token.special = r.bool_field(t, "special", "added token", false);
    token.single_word = r.bool_field(t, "single_word", "added token", false);
    token.lstrip = r.bool_field(t, "lstrip", "added token", false);
    token.rstrip = r.bool_field(t, "rstrip", "added token", false);
    token.normalized = r.bool_field(t, "normalized", "added token", !token.special);
    if (token.id < 0) r.fail(fmt::format("added token \"{}\" has a negative id", token.content));
    if (token.content.empty()) continue;  // HF ignores empty added tokens
    out.push_back(std::move(token));
  }
  return out;
}

// bos_token / eos_token of a tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> config_token(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

std::unique_ptr<Pipeline> read_pipeline(std::string_view text, const std::string& source,
                                        const std::optional<std::string>& config_text,
                                        const std::string& config_source) {
  const Reader r(source);
  // Sequence normalizers, pre-tokenizers and decoders are read recursively.
  check_json_depth(text, "tokenizer " + source);
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e309
    r.fail(fmt::format("not valid JSON ({})", e.what()));
  }
  if (!root.is_object()) r.fail("the top level must be a JSON object");

  auto pipeline = std::make_unique<Pipeline>();
  pipeline->source = source;
  if (const auto it = root.find("normalizer"); it != root.end() && !it->is_null()) {
    pipeline->normalizer.emplace();
    read_normalizer(r, *it, *pipeline->normalizer);
  }
  if (const auto it = root.find("pre_tokenizer"); it != root.end() && !it->is_null()) {
    read_pre_tokenizer(r, *it, pipeline->pre_tokenizer);
  }
  read_model(r, r.field(root, "model", "the file"), *pipeline);
  pipeline->added_tokens = read_added_tokens(r, root);
  if (const auto it = root.find("post_processor"); it != root.end() && !it->is_null()) {
    read_post_processor(r, *it, pipeline->post_processor);
  }
  if (const auto it = root.find("decoder"); it != root.end() && !it->is_null()) {
    pipeline->decoder.emplace();
    read_decoder(r, *it, *pipeline->decoder);
  }
  if (const auto it = root.find("truncation"); it != root.end() && it->is_object() && it->contains("max_length")) {
    if ((*it)["max_length"].is_number_unsigned()) pipeline->max_length = (*it)["max_length"].get<std::size_t>();
  }

  // Model and pre-tokenizer must fit together: our BPE is byte-level only.
  const auto& steps = pipeline->pre_tokenizer;
  std::size_t byte_level_steps = 0;
  for (const PreTokenizerStep& s : steps) byte_level_steps += s.kind == PreTokenizerStep::Kind::kByteLevel;
  const bool byte_level_last = !steps.empty() && steps.back().kind == PreTokenizerStep::Kind::kByteLevel;
  if (std::holds_alternative<BytePairModel>(pipeline->model)) {
    if (byte_level_steps != 1 || !byte_level_last) {
      r.fail("BPE is supported only as byte-level BPE: the pre_tokenizer must end with one ByteLevel step");
    }
  } else if (byte_level_steps != 0) {
    r.fail("a ByteLevel pre_tokenizer is supported only with a BPE model");
  }

  pipeline->finish();

  // The special tokens the post-processor adds must be ids of this vocabulary:
  // encode() would hand any other id to the model's embedding.
  const std::int64_t vocab_size = pipeline->vocab_size();
  for (const PostStep& step : pipeline->post_processor) {
    for (const auto& [ids, tokens] : {std::pair{&step.prefix_ids, &step.prefix_tokens},
                                      std::pair{&step.suffix_ids, &step.suffix_tokens}}) {
      for (std::size_t k = 0; k < ids->size(); ++k) {
        if ((*ids)[k] < 0 || (*ids)[k] >= vocab_size)
          r.fail(fmt::format("post_processor special token \"{}\" has id {}, outside the vocabulary (ids 0 to {})",
                             (*tokens)[k], (*ids)[k], vocab_size - 1));
      }
    }
  }

  if (config_text) {
    json config;
    check_json_depth(*config_text, "tokenizer config " + config_source);
    try {
      config = json::parse(*config_text);
    } catch (const json::exception& e) {  // as above
      throw Error(fmt::format("tokenizer config {}: not valid JSON ({})", config_source, e.what()));
    }
    if (config.is_object()) {
      if (const auto bos = config_token(config, "bos_token")) pipeline->bos_id = pipeline->token_to_id(*bos);
      if (const auto eos = config_token(config, "eos_token")) pipeline->eos_id = pipeline->token_to_id(*eos);
    }
  }
  if (!pipeline->bos_id) {
    for (const PostStep& step : pipeline->post_processor) {
      if (step.kind == PostStep::Kind::kWrap && step.prefix_ids.size() == 1) pipeline->bos_id = step.prefix_ids[0];
    }
  }
  return pipeline;
}

}  // namespace anchors::model::tokenizer_detail
