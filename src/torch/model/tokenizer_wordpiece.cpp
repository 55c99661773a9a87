// WordPiece (BERT): greedy longest-match-first, "##" on continuing pieces, the
// whole word becomes [UNK] if any part of it cannot be matched.
#include <fmt/format.h>

#include "anchors/core/error.h"
#include "tokenizer_models.h"
#include "tokenizer_unicode.h"

namespace anchors::model::tokenizer_detail {

WordPieceModel::WordPieceModel(Vocabulary vocab, WordPieceOptions options, const std::string& source)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  const auto unk = vocab_.find(options_.unk_token);
  if (!unk) {
    throw Error(fmt::format("tokenizer {}: WordPiece unk_token \"{}\" is not in the vocabulary", source,
                            options_.unk_token));
  }
  unk_id_ = *unk;
}

void WordPieceModel::tokenize(std::string_view word, std::vector<ModelToken>& out) const {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < word.size(); i += utf8_width_from_lead(static_cast<unsigned char>(word[i]))) ++chars;
  if (chars > options_.max_input_chars_per_word) {
    out.push_back({unk_id_, 0, word.size()});
    return;
  }
  const std::size_t first_new = out.size();
  std::string candidate;
  std::size_t start = 0;
  while (start < word.size()) {
    std::size_t end = word.size();
    std::optional<std::int64_t> found;
    while (start < end) {
      candidate.clear();
      if (start > 0) candidate = options_.continuing_subword_prefix;
      candidate.append(word.substr(start, end - start));
      if ((found = vocab_.find(candidate))) break;
      // Drop the last character.
      do {
        --end;
      } while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80);
    }
    if (!found) {
      out.resize(first_new);
      out.push_back({unk_id_, 0, word.size()});
      return;
    }
    out.push_back({*found, start, end});
    start = end;
  }
}

}  // namespace anchors::model::tokenizer_detail
