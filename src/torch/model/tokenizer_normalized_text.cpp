#include "tokenizer_normalized_text.h"

#include <algorithm>
#include <optional>

#include "tokenizer_unicode.h"

namespace anchors::model::tokenizer_detail {

NormalizedText::NormalizedText(std::string_view text, std::size_t offset)
    : text_(text), original_begin_(offset), original_end_(offset + text.size()) {
  alignments_.resize(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t width = utf8_width_from_lead(static_cast<unsigned char>(text[i]));
    for (std::size_t k = 0; k < width; ++k) alignments_[i + k] = {offset + i, offset + i + width};
    i += width;
  }
}

Alignment NormalizedText::original_range(std::size_t begin, std::size_t end) const {
  if (begin >= end || end > alignments_.size()) return {original_begin_ , original_begin_};
  return {alignments_[begin].begin, alignments_[end - 1].end};
}

NormalizedText NormalizedText::slice(std::size_t begin, std::size_t end) const {
  NormalizedText out;
  out.text_ = text_.substr(begin, end - begin);
  out.alignments_.assign(alignments_.begin() + static_cast<std::ptrdiff_t>(begin),
                         alignments_.begin() + static_cast<std::ptrdiff_t>(end));
  const Alignment range = original_range(begin, end);
  out.original_begin_ = range.begin;
  out.original_end_ = range.end;
  return out;
}

void NormalizedText::transform(const ChangeStream& stream, std::size_t initial_removed) {
  // A stream that replaces every character by itself changes nothing (each
  // character keeps its own alignment): the common case, skipped cheaply.
  if (initial_removed == 0 && stream.size() <= text_.size()) {
    bool identity = true;
    std::size_t at = 0;
    for (const auto& [c, change] : stream) {
      if (change != 0 || at >= text_.size() || next_code_point(text_, at) != c) {
        identity = false;
        break;
      }
    }
    if (identity && at == text_.size()) return;
  }
  std::size_t old = 0;  // byte position in the old text of the next old character
  auto skip_old_chars = [&](std::size_t n) {
    for (std::size_t k = 0; k < n && old < text_.size(); ++k) {
      old += utf8_width_from_lead(static_cast<unsigned char>(text_[old]));
    }
  };
  skip_old_chars(initial_removed);
  std::string text;
  std::vector<Alignment> alignments;
  text.reserve(text_.size());
  alignments.reserve(text_.size());
  for (const auto& [c, change] : stream) {
    Alignment align;
    if (change > 0) {
      // An inserted character shares the alignment of the byte before it.
      align = old == 0 ? Alignment{original_begin_, original_begin_} : alignments_[old - 1];
    } else {
      align = old < alignments_.size() ? alignments_[old] : Alignment{original_end_, original_end_};
      skip_old_chars(1);
      if (change < 0) skip_old_chars(static_cast<std::size_t>(-change));
    }
    const std::size_t before = text.size();
    append_utf8(text, c);
    alignments.insert(alignments.end(), text.size() - before, align);
  }
  text_ = std::move(text);
  alignments_ = std::move(alignments);
}

namespace {

// Every code point replaced by its expansion (`expand(c, out)` appends it):
// the first character of an expansion replaces the old one, the rest are inserted.
template <class Expand>
ChangeStream expansion_stream(const std::string& text, Expand expand) {
  ChangeStream out;
  out.reserve(text.size());
  std::u32string parts;
  std::size_t i = 0;
  while (i < text.size()) {
    const char32_t c = next_code_point(text, i);
    parts.clear();
    expand(c, parts);
    for (std::size_t k = 0; k < parts.size(); ++k) out.emplace_back(parts[k], k == 0 ? 0 : 1);
  }
  return out;
}

// Canonical decomposition with changes (expansion_stream), then every run of
// non-starters stably sorted by combining class, changes travelling with characters.
ChangeStream decomposition_stream(const std::string& text) {
  ChangeStream out = expansion_stream(text, append_canonical_decomposition);
  std::size_t k = 0;
  while (k < out.size()) {
    if (combining_class(out[k].first) == 0) {
      ++k;
      continue;
    }
    std::size_t end = k;
    while (end < out.size() && combining_class(out[end].first) != 0) ++end;
    if (end - k > 1) {
      const auto by_class = [](const auto& a, const auto& b) {
        return combining_class(a.first) < combining_class(b.first);
      };
      std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(k), out.begin() + static_cast<std::ptrdiff_t>(end),
                       by_class);
    }
    k = end;
  }
  return out;
}

// HF NormalizedString::filter as a change stream: removed characters fold
// into the kept one before them as -N; removed leading ones become the
// initial offset.
template <typename Keep>
std::pair<ChangeStream, std::size_t> filter_stream(const std::string& text, Keep keep) {
  ChangeStream out;
  out.reserve(text.size());
  int removed = 0;
  std::size_t removed_start = 0;
  std::optional<char32_t> last;
  std::size_t i = 0;
  while (i < text.size()) {
    const char32_t c = next_code_point(text, i);
    if (keep(c)) {
      if (last) {
        out.emplace_back(*last, -removed);
      } else {
        removed_start = static_cast<std::size_t>(removed);
      }
      last = c;
      removed = 0;
    } else {
      ++removed;
    }
  }
  if (last) out.emplace_back(*last, -removed);
  return {std::move(out), removed_start};
}

bool is_ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x80; });
}

}  // namespace

void NormalizedText::nfd() {
  if (is_ascii(text_)) return;  // ASCII is its own NFD, every change 0
  transform(decomposition_stream(text_));
}

void NormalizedText::nfc() {
  if (is_ascii(text_)) return;
  // Recomposition of unicode-normalization-alignments: a composite carries
  // change(starter) + change(absorbed) - 1.
  using Item = std::pair<char32_t, int>;
  ChangeStream out;
  std::optional<Item> composee;
  std::optional<std::uint8_t> last_class;
  std::vector<Item> blocked;
  for (const Item& item : decomposition_stream(text_)) {
    const std::uint8_t cls = combining_class(item.first);
    if (!composee) {
      if (cls != 0) {
        out.push_back(item);
      } else {
        composee = item;
      }
      continue;
    }
    if (!last_class || *last_class < cls) {
      if (const char32_t composite = compose_pair(composee->first, item.first)) {
        composee = Item{composite, composee->second + item.second - 1};
        continue;
      }
      if (!last_class && cls == 0) {
        out.push_back(*composee);
        composee = item;
        continue;
      }
      blocked.push_back(item);
      last_class = cls;
      continue;
    }
    // last_class >= cls: blocked from the composee.
    if (cls == 0) {
      out.push_back(*composee);
      out.insert(out.end(), blocked.begin(), blocked.end());
      blocked.clear();
      composee = item;
      last_class.reset();
      continue;
    }
    blocked.push_back(item);
    last_class = cls;
  }
  if (composee) out.push_back(*composee);
  out.insert(out.end(), blocked.begin(), blocked.end());
  transform(out);
}

void NormalizedText::lowercase() { transform(expansion_stream(text_, append_lowercase)); }

void NormalizedText::prepend(std::string_view s) {
  if (text_.empty() || s.empty()) return;
  // HF: the first prepended character replaces the first character, the rest
  // (that character included) are inserted, so all share its alignment.
  ChangeStream out;
  std::size_t i = 0;
  bool first = true;
  while (i < s.size()) {
    out.emplace_back(next_code_point(s, i), first ? 0 : 1);
    first = false;
  }
  i = 0;
  out.emplace_back(next_code_point(text_, i), 1);
  while (i < text_.size()) out.emplace_back(next_code_point(text_, i), 0);
  transform(out);
}

void NormalizedText::bert_clean_text() {
  const auto [kept, removed_start] =
      filter_stream(text_, [](char32_t c) { return !(c == 0 || c == 0xFFFD || is_bert_control(c)); });
  transform(kept, removed_start);
  ChangeStream mapped;
  mapped.reserve(text_.size());
  std::size_t i = 0;
  while (i < text_.size()) {
    const char32_t c = next_code_point(text_, i);
    mapped.emplace_back(is_bert_whitespace(c) ? U' ' : c, 0);
  }
  transform(mapped);
}

void NormalizedText::bert_pad_cjk() {
  ChangeStream out;
  out.reserve(text_.size());
  std::size_t i = 0;
  while (i < text_.size()) {
    const char32_t c = next_code_point(text_, i);
    if (is_cjk_ideograph(c)) {
      out.emplace_back(U' ', 0);
      out.emplace_back(c, 1);
      out.emplace_back(U' ', 1);
    } else {
      out.emplace_back(c, 0);
    }
  }
  transform(out);
}

void NormalizedText::bert_strip_accents() {
  nfd();
  const auto [kept, removed_start] = filter_stream(text_, [](char32_t c) { return !is_bert_nonspacing_mark(c); });
  transform(kept, removed_start);
}

}  // namespace anchors::model::tokenizer_detail
