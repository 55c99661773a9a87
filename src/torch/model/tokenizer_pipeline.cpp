// Encoding and decoding through the loaded components, in HF's order:
// non-normalized added tokens on the raw input, then per remaining piece the
// normalizer, the normalized added tokens, the pre-tokenizer and the model;
// then the post-processor. Offsets follow every step's alignments.
#include "tokenizer_pipeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

#include "anchors/core/error.h"
#include "tokenizer_unicode.h"

namespace anchors::model::tokenizer_detail {

void apply_normalizer(const std::vector<NormalizerStep>& steps, NormalizedText& text) {
  for (NormalizerStep step : steps) {
    switch (step) {
      case NormalizerStep::kNfc:
        text.nfc();
        break;
      case NormalizerStep::kNfd:
        text.nfd();
        break;
      case NormalizerStep::kLowercase:
        text.lowercase();
        break;
      case NormalizerStep::kBertCleanText:
        text.bert_clean_text();
        break;
      case NormalizerStep::kBertPadCjk:
        text.bert_pad_cjk();
        break;
      case NormalizerStep::kBertStripAccents:
        text.bert_strip_accents();
        break;
    }
  }
}

// ---------------------------------------------------------------------------- added tokens

void AddedTokenMatcher::add(std::string pattern, std::size_t token) {
  if (pattern.empty()) return;
  auto& bucket = by_first_byte_[static_cast<unsigned char>(pattern[0])];
  bucket.emplace_back(std::move(pattern), token);
  std::stable_sort(bucket.begin(), bucket.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  ++count_;
}

std::vector<AddedTokenMatcher::Match> AddedTokenMatcher::find(std::string_view text) const {
  std::vector<Match> matches;
  if (count_ == 0) return matches;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[i])];
    bool matched = false;
    for (const auto& [pattern, token] : bucket) {  // longest first
      if (text.compare(i, pattern.size(), pattern) == 0) {
        matches.push_back({i, i + pattern.size(), token});
        i += pattern.size();
        matched = true;
        break;
      }
    }
    if (!matched) ++i;
  }
  return matches;
}

namespace {

// The code point ending at byte `end` of text (end > 0).
char32_t code_point_before(std::string_view text, std::size_t end) {
  std::size_t begin = end - 1;
  while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
  return next_code_point(text, begin);
}

// Byte offset reached from `at` after `n` code points forward, at most `limit`.
std::size_t advance_code_points(std::string_view text, std::size_t at, std::size_t n, std::size_t limit) {
  for (std::size_t k = 0; k < n && at < limit; ++k) at += utf8_width_from_lead(static_cast<unsigned char>(text[at]));
  return std::min(at, limit);
}

std::size_t leading_trim_chars(std::string_view value) {
  std::size_t n = 0, i = 0;
  while (i < value.size()) {
    const char32_t c = next_code_point(value, i);
    if (c != 0x120 && !is_white_space(c)) break;
    ++n;
  }
  return n;
}

std::size_t trailing_trim_chars(std::string_view value) {
  std::size_t n = 0, end = value.size();
  while (end > 0) {
    std::size_t begin = end - 1;
    while (begin > 0 && (static_cast<unsigned char>(value[begin]) & 0xC0) == 0x80) --begin;
    std::size_t i = begin;
    const char32_t c = next_code_point(value, i);
    if (c != 0x120 && !is_white_space(c)) break;
    ++n;
    end = begin;
  }
  return n;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  std::size_t at = 0;
  while (true) {
    const std::size_t found = s.find(from, at);
    if (found == std::string::npos) break;
    out.append(s, at, found - at);
    out.append(to);
    at = found + from.size();
  }
  if (at == 0) return;
  out.append(s, at, std::string::npos);
  s = std::move(out);
}

// HF's WordPiece decoder cleanup of tokenization artifacts.
void wordpiece_cleanup(std::string& s) {
  replace_all(s, " .", ".");
  replace_all(s, " ?", "?");
  replace_all(s, " !", "!");
  replace_all(s, " ,", ",");
  replace_all(s, " ' ", "'");
  replace_all(s, " n't", "n't");
  replace_all(s, " 'm", "'m");
  replace_all(s, " do not", " don't");
  replace_all(s, " 's", "'s");
  replace_all(s, " 've", "'ve");
  replace_all(s, " 're", "'re");
}

}  // namespace

void Pipeline::finish() {
  for (std::size_t i = 0; i < added_tokens.size(); ++i) {
    const AddedToken& token = added_tokens[i];
    added_by_id_[token.id] = i;
    added_by_content_[token.content] = i;
    std::string form = token.content;
    if (token.normalized && normalizer) {
      NormalizedText text(token.content, 0);
      apply_normalizer(*normalizer, text);
      form = text.text();
    }
    added_decode_form_.push_back(form);
    if (token.normalized) {
      normalized_matcher_.add(form, i);
    } else {
      raw_matcher_.add(token.content, i);
    }
  }
  needs_token_values_ = std::any_of(post_processor.begin(), post_processor.end(),
                                    [](const PostStep& s) { return s.kind == PostStep::Kind::kTrimOffsets; });
}

void Pipeline::split_added(const NormalizedText& piece, const AddedTokenMatcher& matcher,
                           std::vector<std::pair<NormalizedText, std::optional<std::size_t>>>& out) const {
  const std::string& text = piece.text();
  if (text.empty()) return;
  std::size_t start_offset = 0;
  for (const AddedTokenMatcher::Match& m : matcher.find(text)) {
    const AddedToken& token = added_tokens[m.token];
    std::size_t start = m.begin, stop = m.end;
    if (token.single_word) {
      const bool space_before = start == 0 || !is_word_char(code_point_before(text, start));
      std::size_t after = stop;
      const bool space_after = stop == text.size() || !is_word_char(next_code_point(text, after));
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) {
      std::size_t new_start = start;
      while (new_start > 0 && is_white_space(code_point_before(text, new_start))) {
        do {
          --new_start;
        } while (new_start > 0 && (static_cast<unsigned char>(text[new_start]) & 0xC0) == 0x80);
      }
      start = std::max(new_start, start_offset);
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        std::size_t next = stop;
        if (!is_white_space(next_code_point(text, next))) break;
        stop = next;
      }
    }
    if (start_offset < start) out.emplace_back(piece.slice(start_offset, start), std::nullopt);
    out.emplace_back(piece.slice(start, stop), m.token);
    start_offset = stop;
  }
  if (start_offset < text.size()) out.emplace_back(piece.slice(start_offset, text.size()), std::nullopt);
}

void Pipeline::model_tokenize(std::string_view word, std::vector<ModelToken>& out) const {
  if (const auto* bpe = std::get_if<BytePairModel>(&model)) {
    bpe->tokenize(word, out);
  } else if (const auto* wordpiece = std::get_if<WordPieceModel>(&model)) {
    wordpiece->tokenize(word, out);
  }
}

void Pipeline::trim_offsets(std::vector<Token>& tokens, bool add_prefix_space, std::string_view text) const {
  // HF ByteLevel::process_offsets, in code points of the input (what HF's
  // Python offsets count) but on byte offsets.
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    Token& token = tokens[i];
    std::size_t leading = leading_trim_chars(token.value);
    const std::size_t trailing = trailing_trim_chars(token.value);
    if (leading == 0 && trailing == 0) continue;
    Alignment& off = token.offsets;
    if (leading > 0) {
      const bool is_first = i == 0 || off.begin == 0;
      if (is_first && add_prefix_space && leading == 1) leading = 0;
      off.begin = advance_code_points(text, off.begin, leading, off.end);
    }
    if (trailing > 0) {
      std::size_t end = off.end, stepped = 0;
      while (stepped < trailing && end > 0) {
        do {
          --end;
        } while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80);
        ++stepped;
      }
      if (stepped == trailing) off.end = std::max(end, off.begin);
    }
  }
}

Tokenizer::Encoding Pipeline::encode(std::string_view text, bool add_special_tokens) const {
  if (const std::size_t bad = first_invalid_utf8(text); bad != text.size()) {
    throw Error(fmt::format("tokenizer {}: encode: the text is not valid UTF-8 (byte {})", source, bad));
  }
  std::vector<Token> tokens;
  tokens.reserve(text.size() / 3 + 8);
  auto emit_added = [&](const NormalizedText& piece, std::size_t index) {
    Token token{added_tokens[index].id, piece.original_range(0, piece.size()), {}};
    if (needs_token_values_) token.value = piece.text();
    tokens.push_back(std::move(token));
  };

  std::vector<std::pair<NormalizedText, std::optional<std::size_t>>> pieces, normalized_pieces;
  if (raw_matcher_.empty()) {
    if (!text.empty()) pieces.emplace_back(NormalizedText(text, 0), std::nullopt);
  } else {
    split_added(NormalizedText(text, 0), raw_matcher_, pieces);
  }
  std::deque<NormalizedText> owned_words;
  std::vector<Word> words;
  std::vector<ModelToken> model_tokens;
  for (auto& [piece, added] : pieces) {
    if (added) {
      emit_added(piece, *added);
      continue;
    }
    if (normalizer) apply_normalizer(*normalizer, piece);
    normalized_pieces.clear();
    if (normalized_matcher_.empty()) {
      if (!piece.empty()) normalized_pieces.emplace_back(std::move(piece), std::nullopt);
    } else {
      split_added(piece, normalized_matcher_, normalized_pieces);
    }
    for (auto& [part, part_added] : normalized_pieces) {
      if (part_added) {
        emit_added(part, *part_added);
        continue;
      }
      if (part.empty()) continue;
      words.clear();
      owned_words.clear();
      pre_tokenize(pre_tokenizer, part, owned_words, words);
      for (const Word& word : words) {
        model_tokens.clear();
        model_tokenize(word.bytes(), model_tokens);
        for (const ModelToken& mt : model_tokens) {
          Token token{mt.id, word.text->original_range(word.begin + mt.begin, word.begin + mt.end), {}};
          if (needs_token_values_) {
            const std::string* value = vocabulary().token(mt.id);
            if (value != nullptr) token.value = *value;
          }
          tokens.push_back(std::move(token));
        }
      }
    }
  }

  for (const PostStep& step : post_processor) {
    if (step.kind == PostStep::Kind::kTrimOffsets) {
      trim_offsets(tokens, step.add_prefix_space, text);
    } else if (add_special_tokens) {
      std::vector<Token> wrapped;
      wrapped.reserve(tokens.size() + step.prefix_ids.size() + step.suffix_ids.size());
      for (std::size_t k = 0; k < step.prefix_ids.size(); ++k) {
        wrapped.push_back({step.prefix_ids[k], {0, 0}, step.prefix_tokens[k]});
      }
      for (Token& t : tokens) wrapped.push_back(std::move(t));
      for (std::size_t k = 0; k < step.suffix_ids.size(); ++k) {
        wrapped.push_back({step.suffix_ids[k], {0, 0}, step.suffix_tokens[k]});
      }
      tokens = std::move(wrapped);
    }
  }

  Tokenizer::Encoding encoding;
  encoding.ids.reserve(tokens.size());
  encoding.offsets.reserve(tokens.size());
  for (const Token& t : tokens) {
    encoding.ids.push_back(t.id);
    encoding.offsets.push_back({t.offsets.begin, t.offsets.end});
  }
  return encoding;
}

std::string Pipeline::decode(const std::vector<std::int64_t>& ids, bool skip_special_tokens) const {
  std::unordered_set<std::string_view> special_contents;
  if (skip_special_tokens) {
    for (const AddedToken& t : added_tokens) {
      if (t.special) special_contents.insert(t.content);
    }
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (std::int64_t id : ids) {
    const std::string* token = nullptr;
    if (const auto it = added_by_id_.find(id); it != added_by_id_.end()) {
      token = &added_decode_form_[it->second];
    } else {
      token = vocabulary().token(id);
    }
    if (token == nullptr) continue;  // unknown ids are skipped, as HF does
    if (skip_special_tokens && special_contents.count(*token)) continue;
    tokens.push_back(*token);
  }
  if (!decoder) {
    std::string joined;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (i) joined += ' ';
      joined += tokens[i];
    }
    return joined;
  }
  for (const DecoderStep& step : *decoder) {
    if (step.kind == DecoderStep::Kind::kByteLevel) {
      std::string bytes;
      for (const std::string& t : tokens) {
        if (auto decoded = byte_level_decode(t)) {
          bytes += *decoded;
        } else {
          bytes += t;  // a token outside the byte alphabet is its own UTF-8
        }
      }
      tokens.assign(1, utf8_lossy(bytes));
    } else {
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        std::string& t = tokens[i];
        if (i != 0) {
          if (t.compare(0, step.prefix.size(), step.prefix) == 0) {
            t.erase(0, step.prefix.size());
          } else {
            t.insert(t.begin(), ' ');
          }
        }
        if (step.cleanup) wordpiece_cleanup(t);
      }
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

std::optional<std::int64_t> Pipeline::token_to_id(std::string_view token) const {
  if (const auto it = added_by_content_.find(std::string(token)); it != added_by_content_.end()) {
    return added_tokens[it->second].id;
  }
  return vocabulary().find(token);
}

const std::string* Pipeline::id_to_token(std::int64_t id) const {
  if (const auto it = added_by_id_.find(id); it != added_by_id_.end()) return &added_decode_form_[it->second];
  return vocabulary().token(id);
}

const AddedToken* Pipeline::added_token(std::int64_t id) const {
  const auto it = added_by_id_.find(id);
  return it == added_by_id_.end() ? nullptr : &added_tokens[it->second];
}

const Vocabulary& Pipeline::vocabulary() const {
  if (const auto* bpe = std::get_if<BytePairModel>(&model)) return bpe->vocabulary();
  return std::get<WordPieceModel>(model).vocabulary();
}

std::int64_t Pipeline::vocab_size() const {
  std::int64_t max_id = vocabulary().max_id();
  for (const AddedToken& t : added_tokens) max_id = std::max(max_id, t.id);
  return max_id + 1;
}

std::string Pipeline::kind() const {
  return std::holds_alternative<BytePairModel>(model) ? "byte_level_bpe" : "wordpiece";
}

}  // namespace anchors::model::tokenizer_detail
