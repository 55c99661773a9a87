#pragma once
// A piece of the input after normalization, with HF's byte alignment back to
// the input (internal). Mirrors tokenizers' NormalizedString: every
// transformation is a stream of (code point, change) pairs, change 0 replacing
// the next old character, +1 inserting one, -N replacing the next old
// character and removing the N after it; alignments follow positionally. That
// convention is what makes our offsets equal to HF's, quirks included (an NFC
// composite maps to its first original character only).
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace anchors::model::tokenizer_detail {

// Absolute byte range [begin, end) of the original input.
struct Alignment {
  std::size_t begin = 0;
  std::size_t end = 0;
};

using ChangeStream = std::vector<std::pair<char32_t, int>>;

class NormalizedText {
 public:
  NormalizedText() = default;
  // The input bytes [offset, offset + text.size()) unchanged.
  NormalizedText(std::string_view text, std::size_t offset);

  const std::string& text() const { return text_; }
  bool empty() const { return text_.empty(); }
  std::size_t size() const { return text_.size(); }
  const std::vector<Alignment>& alignments() const { return alignments_; }
  // The input range this piece was cut from.
  std::size_t original_begin() const { return original_begin_; }
  std::size_t original_end() const { return original_end_; }

  // The input bytes a normalized byte range [begin, end) stands for (HF
  // convert_offsets): first byte's begin to last byte's end.
  Alignment original_range(std::size_t begin, std::size_t end) const;
  // The sub-piece of normalized bytes [begin, end) (on character boundaries).
  NormalizedText slice(std::size_t begin, std::size_t end) const;

  // Replaces the text by the stream (see above); `initial_removed` old
  // characters at the start are dropped before the first one.
  void transform(const ChangeStream& stream, std::size_t initial_removed = 0);

  // Normalizers (HF semantics and Unicode versions, see tokenizer_unicode.h).
  void nfd();
  void nfc();
  void lowercase();
  void prepend(std::string_view s);
  // BertNormalizer steps.
  void bert_clean_text();
  void bert_pad_cjk();
  void bert_strip_accents();

 private:
  std::string text_;
  std::vector<Alignment> alignments_;  // one per byte of text_
  std::size_t original_begin_ = 0;
  std::size_t original_end_ = 0;
};

}  // namespace anchors::model::tokenizer_detail
