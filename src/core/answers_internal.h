#pragma once
// Internal to the answer sources of src/core (the public API is
// include/anchors/core/answers.h; the rules are in docs/answers.md). What the
// concepts share, one file each:
//
//   boxed_answer.cpp          \boxed{...} extraction
//   answer_tokens.cpp         the LaTeX token tree of an answer (this header's Node, prepare, parse_tree, emit)
//   answer_canonical.cpp      the canonicaliser: normalize_answer, canonical_text
//   number_parser.cpp         the numeric value of a normalized answer (answer_numeric_value)
//   answer_equivalence.cpp    answers_equivalent: assignments, trailing units, tuples and intervals
//   reference_normalizer.cpp  the authors' normalize_latex for compat mode (normalize_answer_reference)
//
// The authors normalise with a chain of string replacements and regexes
// (utils.py normalize_latex) and compare with SymPy. We keep their choices
// where they are arbitrary (lowercase, no whitespace, no "\%", "\times" -> "*",
// ...) but work on a small LaTeX token tree instead of raw text, because their
// global "{x}" -> "x" unwrapping makes \frac{12}{3} and \frac{1}{23} the same
// answer and their digit-comma-digit rule turns "1,000" into 1.0 and the
// list "2, 5" into 2.5. Numeric equivalence is a tiny recursive-descent
// evaluator instead of SymPy.
//
// Robustness: nothing here recurses deeper than a fixed bound (brace nesting
// beyond kMaxGroupDepth falls back to flat rules, the evaluator stops at its
// own depth bound), and every pass is linear in the input. Nothing throws.
#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace anchors::answers_internal {

constexpr std::size_t npos = std::string_view::npos;

// ASCII classes only: answers are LaTeX, and C's <cctype> depends on the locale.
inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

inline bool word_in(std::string_view name, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), name) != set.end();
}

// ---------------------------------------------------------------------------
// The token tree (answer_tokens.cpp)
// ---------------------------------------------------------------------------

// Brace groups nested deeper than this are not parsed as a tree; the answer
// gets the flat rules only (see flat_normalize). Real answers nest a handful
// of levels; the bound keeps recursion (and destructor recursion) shallow.
constexpr std::size_t kMaxGroupDepth = 100;

enum class Kind : unsigned char { Char, Word, Symbol, Space, Group };

// One LaTeX token: a character, a control word (\frac: name "frac"), a control
// symbol (\%: ch '%'), a run of whitespace, or a brace group.
struct Node {
  Kind kind = Kind::Char;
  char ch = 0;
  std::string name;
  std::vector<Node> children;
};
using List = std::vector<Node>;

Node char_node(char c);
Node word_node(std::string name);
Node group_node(List children);

inline bool is_char(const Node& n, char c) { return n.kind == Kind::Char && n.ch == c; }
inline bool is_digit_char(const Node& n) { return n.kind == Kind::Char && is_digit(n.ch); }

// Unicode replacements (minus sign, ×, ·, °, π, no-break and thin spaces),
// ASCII lowercase, and "{,}" removed. Linear in s.
std::string prepare(std::string_view s);

// The token tree of a prepared answer, built without recursion. An unmatched
// '}' is an ordinary character; groups left open at the end are closed there.
// `list_commas` (may be null) receives the number of ',' characters (not "\,")
// for the decimal-comma rule. nullopt if braces nest deeper than kMaxGroupDepth.
std::optional<List> parse_tree(std::string_view s, std::size_t* list_commas);

// Appends the text of `list` to `out` (recursion depth = the tree's depth,
// bounded by kMaxGroupDepth).
void emit(const List& list, std::string& out);

// ---------------------------------------------------------------------------
// The canonicaliser (answer_canonical.cpp)
// ---------------------------------------------------------------------------

// The canonical text of a token list of one answer (the normalize_answer rules
// applied to those tokens, trailing periods dropped). `list_commas` is the
// comma count parse_tree gave for the whole answer: a decimal comma must be
// its only comma.
std::string canonical_text(List tokens, std::size_t list_commas);

}  // namespace anchors::answers_internal
