#include "anchors/model/tokenizer.h"

#include <fmt/format.h>

#include <filesystem>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "tokenizer_json.h"
#include "tokenizer_pipeline.h"

namespace anchors::model {

std::vector<std::pair<std::size_t, std::size_t>> code_point_offsets(std::string_view text,
                                                                    const std::vector<CharSpan>& byte_offsets) {
  // index[b] = code points before byte b, for b on a character boundary.
  constexpr std::size_t kInside = static_cast<std::size_t>(-1);
  std::vector<std::size_t> index(text.size() + 1, kInside);
  std::size_t count = 0;
  for (std::size_t b = 0; b < text.size(); ++b) {
    if ((static_cast<unsigned char>(text[b]) & 0xC0) != 0x80) index[b] = count++;
  }
  index[text.size()] = count;
  auto convert = [&](std::size_t b) {
    if (b > text.size() || index[b] == kInside) {
      throw Error(fmt::format("code_point_offsets: byte offset {} is not a character boundary of the {}-byte text", b,
                              text.size()));
    }
    return index[b];
  };
  std::vector<std::pair<std::size_t, std::size_t>> out;
  out.reserve(byte_offsets.size());
  for (const CharSpan& span : byte_offsets) out.emplace_back(convert(span.begin), convert(span.end));
  return out;
}

Tokenizer::Tokenizer(std::unique_ptr<tokenizer_detail::Pipeline> pipeline) : pipeline_(std::move(pipeline)) {}
Tokenizer::~Tokenizer() = default;

std::shared_ptr<Tokenizer> Tokenizer::load(const std::string& tokenizer_json_or_dir) {
  std::filesystem::path path(tokenizer_json_or_dir);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) path /= "tokenizer.json";
  // A path that exists but is no regular file (a FIFO, a device) reaches
  // read_text_file, which refuses it by name instead of blocking on it.
  if (!std::filesystem::exists(path, ec)) {
    throw Error(fmt::format("tokenizer {}: no such file", path.string()));
  }
  const std::string text = read_text_file(path.string(), kModelFileLimit);
  const std::filesystem::path config_path = path.parent_path() / "tokenizer_config.json";
  std::optional<std::string> config;
  if (std::filesystem::exists(config_path, ec)) config = read_text_file(config_path.string(), kConfigFileLimit);
  return std::shared_ptr<Tokenizer>(
      new Tokenizer(tokenizer_detail::read_pipeline(text, path.string(), config, config_path.string())));
}

std::shared_ptr<Tokenizer> Tokenizer::from_json(std::string_view json, const std::string& source) {
  return std::shared_ptr<Tokenizer>(new Tokenizer(tokenizer_detail::read_pipeline(json, source)));
}

Tokenizer::Encoding Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return pipeline_->encode(text, add_special_tokens);
}

std::size_t Tokenizer::count_tokens(std::string_view text) const { return pipeline_->encode(text, false).ids.size(); }

std::string Tokenizer::decode(const std::vector<std::int64_t>& ids, bool skip_special_tokens) const {
  // Ids past the vocabulary are skipped (a model's padded embedding rows can
  // be sampled); a negative id comes from no model and is a caller's bug, an
  // error in HF too (OverflowError).
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0)
      throw Error(fmt::format("decode: token id {} at position {} is negative (ids run from 0 to {})", ids[i], i,
                              vocab_size() - 1));
  }
  return pipeline_->decode(ids, skip_special_tokens);
}

std::int64_t Tokenizer::vocab_size() const { return pipeline_->vocab_size(); }

std::optional<std::int64_t> Tokenizer::token_to_id(std::string_view token) const {
  return pipeline_->token_to_id(token);
}

std::string Tokenizer::id_to_token(std::int64_t id) const {
  const std::string* token = pipeline_->id_to_token(id);
  if (token == nullptr) throw Error(fmt::format("tokenizer {}: id {} is not in the vocabulary", pipeline_->source, id));
  return *token;
}

std::string Tokenizer::kind() const { return pipeline_->kind(); }

const std::vector<AddedToken>& Tokenizer::added_tokens() const { return pipeline_->added_tokens; }

bool Tokenizer::is_special(std::int64_t id) const {
  const AddedToken* token = pipeline_->added_token(id);
  return token != nullptr && token->special;
}

std::optional<std::int64_t> Tokenizer::bos_id() const { return pipeline_->bos_id; }
std::optional<std::int64_t> Tokenizer::eos_id() const { return pipeline_->eos_id; }

std::vector<std::int64_t> Tokenizer::special_prefix_ids() const {
  // Wrap steps apply in order, each around the previous result.
  std::vector<std::int64_t> ids;
  for (const auto& step : pipeline_->post_processor) {
    ids.insert(ids.begin(), step.prefix_ids.begin(), step.prefix_ids.end());
  }
  return ids;
}

std::vector<std::int64_t> Tokenizer::special_suffix_ids() const {
  std::vector<std::int64_t> ids;
  for (const auto& step : pipeline_->post_processor) {
    ids.insert(ids.end(), step.suffix_ids.begin(), step.suffix_ids.end());
  }
  return ids;
}

std::size_t Tokenizer::num_special_tokens_to_add() const {
  return special_prefix_ids().size() + special_suffix_ids().size();
}

std::optional<std::size_t> Tokenizer::max_length() const { return pipeline_->max_length; }

const std::string& Tokenizer::source() const { return pipeline_->source; }

}  // namespace anchors::model
