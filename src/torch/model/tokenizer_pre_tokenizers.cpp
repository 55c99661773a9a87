#include "tokenizer_pre_tokenizers.h"

#include <cstdint>

#include "tokenizer_unicode.h"

namespace anchors::model::tokenizer_detail {
namespace {

constexpr std::string_view kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// The text as code points with their classes, so each alternative of a
// pattern is a few index comparisons.
class ClassifiedText {
 public:
  enum : std::uint8_t { kL = 1, kN = 2, kS = 4 };

  explicit ClassifiedText(std::string_view text) {
    cps_.reserve(text.size());
    bytes_.reserve(text.size() + 1);
    std::size_t i = 0;
    while (i < text.size()) {
      bytes_.push_back(i);
      const char32_t c = next_code_point(text, i);
      cps_.push_back(c);
      classes_.push_back(static_cast<std::uint8_t>((is_letter(c) ? kL : 0) | (is_number(c) ? kN : 0) |
                                                   (is_white_space(c) ? kS : 0)));
    }
    bytes_.push_back(text.size());
  }

  std::size_t size() const { return cps_.size(); }
  std::size_t byte(std::size_t i) const { return bytes_[i]; }
  char32_t at(std::size_t i) const { return i < cps_.size() ? cps_[i] : 0; }
  bool letter(std::size_t i) const { return i < cps_.size() && (classes_[i] & kL); }
  bool number(std::size_t i) const { return i < cps_.size() && (classes_[i] & kN); }
  bool space(std::size_t i) const { return i < cps_.size() && (classes_[i] & kS); }
  // [^\s\p{L}\p{N}]
  bool other(std::size_t i) const { return i < cps_.size() && classes_[i] == 0; }
  bool newline(std::size_t i) const { return i < cps_.size() && (cps_[i] == '\r' || cps_[i] == '\n'); }

  template <typename Pred>
  std::size_t run(std::size_t i, Pred pred) const {
    while (i < cps_.size() && pred(i)) ++i;
    return i;
  }

 private:
  std::vector<char32_t> cps_;
  std::vector<std::uint8_t> classes_;
  std::vector<std::size_t> bytes_;
};

// 's|'t|'re|'ve|'m|'ll|'d at i; returns the end or i. Case-insensitively,
// oniguruma also folds U+017F LATIN SMALL LETTER LONG S to s.
std::size_t match_contraction(const ClassifiedText& t, std::size_t i, bool ignore_case) {
  if (t.at(i) != '\'') return i;
  auto is = [&](std::size_t k, char lower) {
    const char32_t c = t.at(k);
    if (c == static_cast<char32_t>(lower)) return true;
    if (!ignore_case) return false;
    return c == static_cast<char32_t>(lower - 32) || (lower == 's' && c == 0x17F);
  };
  if (is(i + 1, 's') || is(i + 1, 't') || is(i + 1, 'm') || is(i + 1, 'd')) return i + 2;
  if ((is(i + 1, 'r') && is(i + 2, 'e')) || (is(i + 1, 'v') && is(i + 2, 'e')) || (is(i + 1, 'l') && is(i + 2, 'l'))) {
    return i + 3;
  }
  return i;
}

// \s+(?!\S)|\s+ at i (t.space(i) holds): the whitespace run, leaving its last
// character to the next word when a non-space follows and the run is longer
// than one.
std::size_t match_trailing_space(const ClassifiedText& t, std::size_t i) {
  const std::size_t end = t.run(i, [&](std::size_t k) { return t.space(k); });
  if (end == t.size() || end - i < 2) return end;
  return end - 1;
}

// One match of the Qwen2 / Llama-3 pattern starting at i (end > i), or i.
std::size_t match_qwen2_llama3(const ClassifiedText& t, std::size_t i, std::size_t max_digits) {
  if (std::size_t end = match_contraction(t, i, /*ignore_case=*/true); end > i) return end;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!t.newline(i) && !t.letter(i) && !t.number(i) && t.letter(i + 1)) {
    return t.run(i + 1, [&](std::size_t k) { return t.letter(k); });
  }
  if (t.letter(i)) return t.run(i, [&](std::size_t k) { return t.letter(k); });
  // \p{N} or \p{N}{1,3}
  if (t.number(i)) {
    std::size_t end = i;
    while (end - i < max_digits && t.number(end)) ++end;
    return end;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  {
    std::size_t start = i;
    if (t.at(i) == ' ' && t.other(i + 1)) start = i + 1;
    if (t.other(start)) {
      const std::size_t end = t.run(start, [&](std::size_t k) { return t.other(k); });
      return t.run(end, [&](std::size_t k) { return t.newline(k); });
    }
  }
  if (!t.space(i)) return i;
  // \s*[\r\n]+ : the whitespace run up to its last newline.
  const std::size_t run_end = t.run(i, [&](std::size_t k) { return t.space(k); });
  for (std::size_t k = run_end; k > i; --k) {
    if (t.newline(k - 1)) return k;
  }
  return match_trailing_space(t, i);
}

std::size_t match_gpt2(const ClassifiedText& t, std::size_t i) {
  if (std::size_t end = match_contraction(t, i, /*ignore_case=*/false); end > i) return end;
  //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
  const auto optional_space_then_run = [&](auto pred) -> std::size_t {
    std::size_t start = i;
    if (t.at(i) == ' ' && pred(i + 1)) start = i + 1;
    if (!pred(start)) return i;
    return t.run(start, pred);
  };
  if (std::size_t end = optional_space_then_run([&](std::size_t k) { return t.letter(k); }); end > i) return end;
  if (std::size_t end = optional_space_then_run([&](std::size_t k) { return t.number(k); }); end > i) return end;
  if (std::size_t end = optional_space_then_run([&](std::size_t k) { return t.other(k); }); end > i) return end;
  if (!t.space(i)) return i;
  return match_trailing_space(t, i);
}

// Cuts `word` at matches given relative to it (ordered, non-overlapping);
// empty words are dropped, as HF drops empty splits.
void split_at_matches(const Word& word, const std::vector<std::pair<std::size_t, std::size_t>>& matches,
                      SplitBehavior behavior, std::vector<Word>& out) {
  auto push = [&](std::size_t begin, std::size_t end) {
    if (end > begin) out.push_back({word.text, word.begin + begin, word.begin + end});
  };
  std::size_t previous = 0;
  for (const auto& [begin, end] : matches) {
    push(previous, begin);
    if (behavior == SplitBehavior::kIsolated) push(begin, end);
    previous = end;
  }
  push(previous, word.end - word.begin);
}

// Every character satisfying pred is a match of its own.
template <typename Pred>
std::vector<std::pair<std::size_t, std::size_t>> char_matches(std::string_view text, Pred pred) {
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t begin = i;
    if (pred(next_code_point(text, i))) matches.emplace_back(begin, i);
  }
  return matches;
}

std::vector<std::pair<std::size_t, std::size_t>> literal_matches(std::string_view text, std::string_view needle) {
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  if (needle.empty()) return matches;
  std::size_t at = 0;
  while ((at = text.find(needle, at)) != std::string_view::npos) {
    matches.emplace_back(at, at + needle.size());
    at += needle.size();
  }
  return matches;
}

}  // namespace

std::optional<SplitRegex> recognize_split_regex(std::string_view pattern) {
  if (pattern == kGpt2Pattern) return SplitRegex::kGpt2;
  if (pattern == kQwen2Pattern) return SplitRegex::kQwen2;
  if (pattern == kLlama3Pattern) return SplitRegex::kLlama3;
  return std::nullopt;
}

const char* split_regex_name(SplitRegex regex) {
  switch (regex) {
    case SplitRegex::kGpt2:
      return "gpt2";
    case SplitRegex::kQwen2:
      return "qwen2";
    case SplitRegex::kLlama3:
      return "llama3";
  }
  return "?";
}

std::vector<std::pair<std::size_t, std::size_t>> find_regex_matches(SplitRegex regex, std::string_view text) {
  const ClassifiedText t(text);
  std::vector<std::pair<std::size_t, std::size_t>> matches;
  std::size_t i = 0;
  while (i < t.size()) {
    const std::size_t end = regex == SplitRegex::kGpt2     ? match_gpt2(t, i)
                            : regex == SplitRegex::kQwen2 ? match_qwen2_llama3(t, i, 1)
                                                          : match_qwen2_llama3(t, i, 3);
    if (end > i) {
      matches.emplace_back(t.byte(i), t.byte(end));
      i = end;
    } else {
      ++i;  // no match starts here: the search moves on
    }
  }
  return matches;
}

void pre_tokenize(const std::vector<PreTokenizerStep>& steps, const NormalizedText& piece,
                  std::deque<NormalizedText>& owned, std::vector<Word>& words) {
  std::vector<Word> current;
  if (!piece.empty()) current.push_back({&piece, 0, piece.size()});
  std::vector<Word> next;
  for (const PreTokenizerStep& step : steps) {
    next.clear();
    for (Word& word : current) {
      const std::string_view bytes = word.bytes();
      switch (step.kind) {
        case PreTokenizerStep::Kind::kSplitRegex:
          split_at_matches(word, find_regex_matches(step.regex, bytes), step.behavior, next);
          break;
        case PreTokenizerStep::Kind::kSplitLiteral:
          split_at_matches(word, literal_matches(bytes, step.literal), step.behavior, next);
          break;
        case PreTokenizerStep::Kind::kByteLevel: {
          if (step.add_prefix_space && bytes.front() != ' ') {
            owned.push_back(word.text->slice(word.begin, word.end));
            owned.back().prepend(" ");
            word = {&owned.back(), 0, owned.back().size()};
          }
          if (step.use_regex) {
            split_at_matches(word, find_regex_matches(SplitRegex::kGpt2, word.bytes()), SplitBehavior::kIsolated,
                             next);
          } else {
            next.push_back(word);
          }
          break;
        }
        case PreTokenizerStep::Kind::kBert: {
          std::vector<Word> by_space;
          split_at_matches(word, char_matches(bytes, is_white_space), SplitBehavior::kRemoved, by_space);
          for (const Word& w : by_space) {
            split_at_matches(w, char_matches(w.bytes(), is_bert_punctuation), SplitBehavior::kIsolated, next);
          }
          break;
        }
        case PreTokenizerStep::Kind::kWhitespaceSplit:
          split_at_matches(word, char_matches(bytes, is_white_space), SplitBehavior::kRemoved, next);
          break;
      }
    }
    current.swap(next);
  }
  words.insert(words.end(), current.begin(), current.end());
}

}  // namespace anchors::model::tokenizer_detail
