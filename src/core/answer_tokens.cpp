// The LaTeX token tree of an answer: the common input of the canonicaliser
// (answer_canonical.cpp) and of the trailing-unit split of equivalence
// (answer_equivalence.cpp). Declarations and contracts: answers_internal.h.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "answers_internal.h"

namespace anchors::answers_internal {
namespace {

// A few non-ASCII characters that models write in place of LaTeX. Lowercasing
// is ASCII-only (the authors' Python lower() also folds other scripts; answers
// in this domain are LaTeX, where that never matters).
struct Replacement {
  std::string_view from;
  std::string_view to;
};
constexpr Replacement kUnicode[] = {
    {"\u2212", "-"},  // minus sign
    {"\u00d7", "*"},  // multiplication sign
    {"\u00b7", "*"},  // middle dot
    {"\u22c5", "*"},  // dot operator
    {"\u00b0", ""},   // degree sign (degrees are dropped, as ^\circ is)
    {"\u03c0", "pi"}, // greek small pi
    {"\u00a0", " "},  // no-break space
    {"\u2009", " "},  // thin space
    {"\u202f", " "},  // narrow no-break space
};

}  // namespace

// Unicode replacements, ASCII lowercase, and "{,}" removed ("1{,}000" is how
// LaTeX writes a thousands separator without the space after a comma).
std::string prepare(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    bool replaced = false;
    if (static_cast<unsigned char>(s[i]) >= 0x80) {
      for (const auto& r : kUnicode) {
        if (s.compare(i, r.from.size(), r.from) == 0) {
          out += r.to;
          i += r.from.size();
          replaced = true;
          break;
        }
      }
    }
    if (replaced) continue;
    const char c = s[i++];
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  std::string result;
  result.reserve(out.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out.compare(i, 3, "{,}") == 0) {
      i += 2;
      continue;
    }
    result += out[i];
  }
  return result;
}

Node char_node(char c) {
  Node n;
  n.kind = Kind::Char;
  n.ch = c;
  return n;
}
Node word_node(std::string name) {
  Node n;
  n.kind = Kind::Word;
  n.name = std::move(name);
  return n;
}
Node group_node(List children) {
  Node n;
  n.kind = Kind::Group;
  n.children = std::move(children);
  return n;
}

// The token tree of a prepared answer, built without recursion. An unmatched
// '}' is an ordinary character; groups left open at the end are closed there.
// `list_commas` counts ',' characters (not "\,") for the decimal-comma rule.
// nullopt if braces nest deeper than kMaxGroupDepth.
std::optional<List> parse_tree(std::string_view s, std::size_t* list_commas) {
  std::vector<List> stack(1);
  std::size_t commas = 0;
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '{') {
      if (stack.size() > kMaxGroupDepth) return std::nullopt;
      stack.emplace_back();
      ++i;
    } else if (c == '}') {
      if (stack.size() > 1) {
        Node g = group_node(std::move(stack.back()));
        stack.pop_back();
        stack.back().push_back(std::move(g));
      } else {
        stack.back().push_back(char_node('}'));
      }
      ++i;
    } else if (is_space(c) || c == '~') {  // '~' is a non-breaking space
      Node n;
      n.kind = Kind::Space;
      stack.back().push_back(std::move(n));
      while (i < s.size() && (is_space(s[i]) || s[i] == '~')) ++i;
    } else if (c == '\\') {
      if (i + 1 == s.size()) break;  // a lone trailing backslash means nothing
      if (is_letter(s[i + 1])) {
        std::size_t j = i + 1;
        while (j < s.size() && is_letter(s[j])) ++j;
        stack.back().push_back(word_node(std::string(s.substr(i + 1, j - i - 1))));
        i = j;
      } else {
        const char sym = s[i + 1];
        i += 2;
        // Spacing commands are whitespace (so "2,\ 5" is a list) except the
        // negative thin space \!, which joins: "10,\!000" is ten thousand.
        if (sym == '!') continue;
        Node n;
        n.kind = (sym == ',' || sym == ';' || sym == ':' || sym == '>' || is_space(sym))
                     ? Kind::Space
                     : Kind::Symbol;
        n.ch = sym;
        stack.back().push_back(std::move(n));
      }
    } else {
      if (c == ',') ++commas;
      stack.back().push_back(char_node(c));
      ++i;
    }
  }
  while (stack.size() > 1) {
    Node g = group_node(std::move(stack.back()));
    stack.pop_back();
    stack.back().push_back(std::move(g));
  }
  if (list_commas) *list_commas = commas;
  return std::move(stack.front());
}

void emit(const List& list, std::string& out) {
  for (std::size_t k = 0; k < list.size(); ++k) {
    const Node& n = list[k];
    switch (n.kind) {
      case Kind::Char: out += n.ch; break;
      case Kind::Symbol:
        out += '\\';
        out += n.ch;
        break;
      case Kind::Word:
        out += '\\';
        out += n.name;
        // "\alpha x" without the space would read back as the command
        // \alphax; an empty group keeps the two apart (and keeps normalisation
        // idempotent).
        if (k + 1 < list.size() && list[k + 1].kind == Kind::Char && is_letter(list[k + 1].ch)) {
          out += "{}";
        }
        break;
      case Kind::Group:
        out += '{';
        emit(n.children, out);
        out += '}';
        break;
      case Kind::Space: break;
    }
  }
}

}  // namespace anchors::answers_internal
