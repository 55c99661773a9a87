// Final-answer extraction, normalisation and comparison
// (include/anchors/core/answers.h, docs/answers.md).
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
// beyond kMaxGroupDepth falls back to flat rules, the evaluator stops at
// kMaxParseDepth), and every pass is linear in the input.
#include "anchors/core/answers.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace anchors {
namespace {

constexpr std::size_t npos = std::string_view::npos;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// ---------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------

struct BoxSpan {
  std::size_t open;           // index of the box's '{'
  std::size_t close = npos;   // index of its matching '}', npos if unterminated
};

// Every \boxed{ in the text with its matching brace, found in one pass with a
// stack (so that a text with many unterminated boxes stays linear). A
// backslash always consumes the next character: \{ and \} are literal braces
// in LaTeX, and "\\" is a line break, not an escape of what follows.
std::vector<BoxSpan> find_boxes(std::string_view text) {
  constexpr std::string_view kBoxed = "\\boxed";
  constexpr std::size_t kNotABox = npos;
  std::vector<BoxSpan> boxes;
  std::vector<std::size_t> open;  // per open brace: index into boxes, or kNotABox
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\') {
      const std::size_t after = i + kBoxed.size();
      if (text.compare(i, kBoxed.size(), kBoxed) == 0 &&
          (after == text.size() || !is_letter(text[after]))) {
        std::size_t j = after;
        while (j < text.size() && is_space(text[j])) ++j;
        if (j < text.size() && text[j] == '{') {
          boxes.push_back({j});
          open.push_back(boxes.size() - 1);
          i = j;
        } else {
          i = after - 1;
        }
        continue;
      }
      ++i;  // skip the escaped character (or the first letter of a command)
      continue;
    }
    if (c == '{') {
      open.push_back(kNotABox);
    } else if (c == '}' && !open.empty()) {  // a stray '}' closes nothing
      if (open.back() != kNotABox) boxes[open.back()].close = i;
      open.pop_back();
    }
  }
  return boxes;
}

// ---------------------------------------------------------------------------
// Normalisation: text -> token tree -> canonical tokens -> text
// ---------------------------------------------------------------------------

// Brace groups nested deeper than this are not parsed as a tree; the answer
// gets the flat rules only (see flat_normalize). Real answers nest a handful
// of levels; the bound keeps recursion (and destructor recursion) shallow.
constexpr std::size_t kMaxGroupDepth = 100;

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

bool is_char(const Node& n, char c) { return n.kind == Kind::Char && n.ch == c; }
bool is_digit_char(const Node& n) { return n.kind == Kind::Char && is_digit(n.ch); }

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

bool word_in(std::string_view name, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), name) != set.end();
}

// Commands that only choose a style or a size: the content is the answer.
bool is_style_word(std::string_view w) {
  return word_in(w, {"text", "textbf", "textit", "textrm", "textsf", "texttt", "textnormal",
                     "textup", "emph", "mathrm", "mathbf", "mathit", "mathsf", "mathtt",
                     "mathnormal", "boldsymbol", "mbox", "hbox", "boxed", "fbox",
                     "operatorname"});
}
// Delimiter-size commands; a following "." is the null delimiter.
bool is_delimiter_word(std::string_view w) {
  return word_in(w, {"left", "right", "middle", "big", "bigl", "bigr", "bigm", "bigg", "biggl",
                     "biggr", "biggm"});
}
// Commands with no mathematical content.
bool is_dropped_word(std::string_view w) {
  return word_in(w, {"displaystyle", "textstyle", "scriptstyle", "scriptscriptstyle", "quad",
                     "qquad", "enspace", "thinspace", "medspace", "thickspace", "negthinspace",
                     "negmedspace", "negthickspace", "limits", "nolimits", "hfill", "degree",
                     "textdegree", "dollar", "textdollar", "percent", "nonumber"});
}

// Turns one token list into canonical tokens (see normalize_answer).
class Canonicalizer {
 public:
  // list_commas: how many ',' the whole answer has; a decimal comma must be
  // the only one.
  explicit Canonicalizer(std::size_t list_commas) : list_commas_(list_commas) {}

  List canon(List in) const {
    resolve_commas(in);
    // next_bracket[k]: index of the first ']' at or after k (in.size() if
    // none), so that finding the end of every \sqrt[...] stays linear.
    std::vector<std::size_t> next_bracket(in.size() + 1, in.size());
    for (std::size_t k = in.size(); k-- > 0;) {
      next_bracket[k] = is_char(in[k], ']') ? k : next_bracket[k + 1];
    }
    List out;
    std::size_t i = 0;
    while (i < in.size()) {
      Node& t = in[i++];
      switch (t.kind) {
        case Kind::Space: break;
        case Kind::Char: on_char(t.ch, in, i, out); break;
        case Kind::Symbol: on_symbol(t, out); break;
        case Kind::Word: on_word(t.name, in, next_bracket, i, out); break;
        case Kind::Group: append(out, canon(std::move(t.children))); break;  // bare group
      }
    }
    return out;
  }

 private:
  static void append(List& out, List more) {
    for (auto& n : more) out.push_back(std::move(n));
  }

  static std::size_t skip_spaces(const List& in, std::size_t i) {
    while (i < in.size() && in[i].kind == Kind::Space) ++i;
    return i;
  }

  // The next argument token at or after i (spaces skipped), or npos. A stray
  // '}' is never an argument.
  static std::size_t next_argument(const List& in, std::size_t i) {
    const std::size_t j = skip_spaces(in, i);
    if (j == in.size() || is_char(in[j], '}')) return npos;
    return j;
  }

  List canon_argument(Node& n) const {
    if (n.kind == Kind::Group) return canon(std::move(n.children));
    List single;
    single.push_back(std::move(n));
    return canon(std::move(single));
  }

  // Canonical argument form: bare when it is one digit (or, after ^ and _,
  // one letter), braced otherwise. Bare letters cannot follow a command
  // (\sqrtx would be one command), digits can.
  static void emit_argument(List& out, List arg, bool allow_letter) {
    if (arg.size() == 1 && arg[0].kind == Kind::Char &&
        (is_digit(arg[0].ch) || (allow_letter && is_letter(arg[0].ch)))) {
      out.push_back(std::move(arg[0]));
    } else {
      out.push_back(group_node(std::move(arg)));
    }
  }

  void take_arguments(std::size_t count, List& in, std::size_t& i, List& out) const {
    for (std::size_t k = 0; k < count; ++k) {
      const std::size_t j = next_argument(in, i);
      if (j == npos) return;
      i = j + 1;
      emit_argument(out, canon_argument(in[j]), /*allow_letter=*/false);
    }
  }

  void on_char(char c, List& in, std::size_t& i, List& out) const {
    if (c == '$' || c == '%') return;  // math shift, percent
    if (c == '^' || c == '_') {
      const std::size_t j = next_argument(in, i);
      if (j == npos) {
        out.push_back(char_node(c));
        return;
      }
      i = j + 1;
      List arg = canon_argument(in[j]);
      // Degrees: 30^\circ and 30^{\circ} are the number 30.
      if (c == '^' && arg.size() == 1 && arg[0].kind == Kind::Word && arg[0].name == "circ") return;
      out.push_back(char_node(c));
      emit_argument(out, std::move(arg), /*allow_letter=*/true);
      return;
    }
    out.push_back(char_node(c));
  }

  static void on_symbol(const Node& t, List& out) {
    const char c = t.ch;
    // Escaped % and $. (Spacing symbols never get here: the tokenizer made
    // them whitespace. "\\" stays: it separates matrix rows.)
    if (c == '%' || c == '$') return;
    out.push_back(t);
  }

  void on_word(const std::string& name, List& in, const std::vector<std::size_t>& next_bracket,
               std::size_t& i, List& out) const {
    if (word_in(name, {"frac", "dfrac", "tfrac", "cfrac"})) {
      out.push_back(word_node("frac"));
      take_arguments(2, in, i, out);
    } else if (word_in(name, {"binom", "dbinom", "tbinom"})) {
      out.push_back(word_node("binom"));
      take_arguments(2, in, i, out);
    } else if (name == "sqrt") {
      out.push_back(word_node("sqrt"));
      const std::size_t j = skip_spaces(in, i);
      if (j < in.size() && is_char(in[j], '[')) {  // \sqrt[n]{x}
        const std::size_t k = next_bracket[j + 1];
        if (k < in.size()) {
          List index(std::make_move_iterator(in.begin() + static_cast<std::ptrdiff_t>(j + 1)),
                     std::make_move_iterator(in.begin() + static_cast<std::ptrdiff_t>(k)));
          out.push_back(char_node('['));
          append(out, canon(std::move(index)));
          out.push_back(char_node(']'));
          i = k + 1;
        }
      }
      take_arguments(1, in, i, out);
    } else if (is_style_word(name)) {
      const std::size_t j = next_argument(in, i);
      if (j == npos) return;
      i = j + 1;
      append(out, canon_argument(in[j]));
    } else if (is_delimiter_word(name)) {
      const std::size_t j = skip_spaces(in, i);
      if (j < in.size() && is_char(in[j], '.')) i = j + 1;  // \left. \right.
    } else if (is_dropped_word(name)) {
      // nothing
    } else if (word_in(name, {"times", "cdot", "ast"})) {
      out.push_back(char_node('*'));
    } else if (name == "div") {
      out.push_back(char_node('/'));
    } else if (name == "pi") {
      out.push_back(char_node('p'));
      out.push_back(char_node('i'));
    } else {
      // Any other command is kept, with the brace groups that follow it as
      // its arguments (\overline{ab} must not become \overline ab).
      std::string canonical = name;
      if (name == "le" || name == "leqslant") canonical = "leq";
      if (name == "ge" || name == "geqslant") canonical = "geq";
      if (name == "ne") canonical = "neq";
      out.push_back(word_node(std::move(canonical)));
      for (std::size_t j = skip_spaces(in, i); j < in.size() && in[j].kind == Kind::Group;
           j = skip_spaces(in, i)) {
        out.push_back(group_node(canon(std::move(in[j].children))));
        i = j + 1;
      }
    }
  }

  // Thousands separators and decimal commas, decided on the raw tokens of one
  // list because whitespace (gone after canonicalisation) tells a list
  // separator ("2, 5") from a decimal comma ("2,5").
  void resolve_commas(List& in) const {
    // Thousands: a run of adjacent digits and commas shaped like 1,234,567
    // (first group 1-3 digits not starting with 0, then groups of exactly 3)
    // loses its commas, unless it is all there is between ( or [ and ) or ]
    // (a pair such as (1,234)) or continues a decimal (0.1,000).
    std::vector<bool> separator(in.size(), false);
    bool any_separator = false;
    std::size_t i = 0;
    while (i < in.size()) {
      if (!is_digit_char(in[i])) {
        ++i;
        continue;
      }
      std::size_t j = i;
      while (j < in.size() && (is_digit_char(in[j]) || is_char(in[j], ','))) ++j;
      while (j > i && is_char(in[j - 1], ',')) --j;
      const bool pair = i > 0 && j < in.size() && (is_char(in[i - 1], '(') || is_char(in[i - 1], '[')) &&
                        (is_char(in[j], ')') || is_char(in[j], ']'));
      const bool after_point = i > 0 && is_char(in[i - 1], '.');
      if (!pair && !after_point && is_thousands_run(in, i, j)) {
        for (std::size_t k = i; k < j; ++k) {
          if (is_char(in[k], ',')) separator[k] = any_separator = true;
        }
      }
      i = j;
    }
    if (any_separator) {  // one compaction pass keeps this linear
      std::size_t kept = 0;
      for (std::size_t k = 0; k < in.size(); ++k) {
        if (!separator[k]) in[kept++] = std::move(in[k]);
      }
      in.resize(kept);
    }

    // Decimal comma: the list is exactly [sign] digits ',' digits with no
    // space around the comma, and it is the only comma of the whole answer
    // ("0,5" -> 0.5; "(2,5)", "[2,5)", "2, 5" and "x=0,5" are left alone).
    if (list_commas_ != 1) return;
    std::vector<std::size_t> sig;  // indices of the tokens that matter
    for (std::size_t k = 0; k < in.size(); ++k) {
      const Node& n = in[k];
      if (n.kind == Kind::Space || is_char(n, '$') || is_char(n, '%')) continue;
      if (n.kind == Kind::Symbol && (n.ch == '%' || n.ch == '$')) continue;
      sig.push_back(k);
    }
    std::size_t p = 0;
    if (p < sig.size() && (is_char(in[sig[p]], '-') || is_char(in[sig[p]], '+'))) ++p;
    const std::size_t first_digit = p;
    while (p < sig.size() && is_digit_char(in[sig[p]])) ++p;
    if (p == first_digit || p == sig.size() || !is_char(in[sig[p]], ',')) return;
    const std::size_t comma = p++;
    const std::size_t after_comma = p;
    while (p < sig.size() && is_digit_char(in[sig[p]])) ++p;
    if (p == after_comma || p != sig.size()) return;
    // Digits and comma must be adjacent tokens (no whitespace between).
    for (std::size_t q = first_digit; q + 1 < sig.size(); ++q) {
      if (sig[q + 1] != sig[q] + 1) return;
    }
    in[sig[comma]].ch = '.';
  }

  static bool is_thousands_run(const List& in, std::size_t begin, std::size_t end) {
    std::size_t group = 0;
    bool first = true;
    bool any_comma = false;
    for (std::size_t k = begin; k < end; ++k) {
      if (is_char(in[k], ',')) {
        if (first ? (group < 1 || group > 3) : group != 3) return false;
        first = false;
        any_comma = true;
        group = 0;
      } else {
        if (first && group == 0 && in[k].ch == '0') return false;
        ++group;
      }
    }
    return any_comma && group == 3;
  }

  std::size_t list_commas_;
};

// Answers nested too deeply for the tree get only the rules that need no
// structure.
std::string flat_normalize(const std::string& prepared) {
  std::string out;
  out.reserve(prepared.size());
  for (char c : prepared) {
    if (!is_space(c) && c != '$') out += c;
  }
  return out;
}

void strip_trailing_periods(std::string& s) {
  while (!s.empty() && s.back() == '.') s.pop_back();
}

std::string finish(const List& canonical) {
  std::string out;
  emit(canonical, out);
  strip_trailing_periods(out);
  return out;
}

// ---------------------------------------------------------------------------
// Numeric value of a normalized answer
// ---------------------------------------------------------------------------

// Recursive descent over the canonical text:
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '/') unary | <implicit product> postfix)*
//   unary   := ('-' | '+') unary | postfix
//   postfix := primary ('^' (digit | '{' expr '}' | '(' expr ')'))?
//   primary := number [mixed-number \frac] | 'pi' | '(' expr ')' | '{' expr '}'
//            | '\frac' arg arg | '\sqrt' ['[' expr ']'] arg
//   arg     := digit | '{' expr '}'
class NumberParser {
 public:
  explicit NumberParser(std::string_view s) : s_(s) {}

  std::optional<double> parse() {
    auto v = expr();
    if (!v || pos_ != s_.size() || !std::isfinite(*v)) return std::nullopt;
    return v;
  }

 private:
  static constexpr int kMaxParseDepth = 200;

  struct DepthGuard {
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
    int& depth;
  };

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  bool looking_at(std::string_view w) const { return s_.compare(pos_, w.size(), w) == 0; }
  bool eat(char c) {
    if (peek() != c || at_end()) return false;
    ++pos_;
    return true;
  }
  bool eat(std::string_view w) {
    if (!looking_at(w)) return false;
    pos_ += w.size();
    return true;
  }
  // A command name must not continue with a letter (\fracx is no \frac).
  bool eat_command(std::string_view w) {
    if (!looking_at(w)) return false;
    const std::size_t after = pos_ + w.size();
    if (after < s_.size() && is_letter(s_[after])) return false;
    pos_ = after;
    return true;
  }

  std::optional<double> expr() {
    DepthGuard guard(depth_);
    if (depth_ > kMaxParseDepth) return std::nullopt;
    auto v = term();
    while (v) {
      if (eat('+')) {
        auto r = term();
        if (!r) return std::nullopt;
        *v += *r;
      } else if (eat('-')) {
        auto r = term();
        if (!r) return std::nullopt;
        *v -= *r;
      } else {
        break;
      }
    }
    return v;
  }

  bool starts_primary() const {
    const char c = peek();
    return is_digit(c) || c == '.' || c == '(' || c == '{' || c == '\\' || looking_at("pi");
  }

  std::optional<double> term() {
    auto v = unary();
    while (v) {
      if (eat('*')) {
        auto r = unary();
        if (!r) return std::nullopt;
        *v *= *r;
      } else if (eat('/')) {
        auto r = unary();
        if (!r) return std::nullopt;
        *v /= *r;
      } else if (starts_primary()) {  // 2\sqrt3, 3pi, (1)(2)
        auto r = postfix();
        if (!r) return std::nullopt;
        *v *= *r;
      } else {
        break;
      }
    }
    return v;
  }

  std::optional<double> unary() {
    DepthGuard guard(depth_);
    if (depth_ > kMaxParseDepth) return std::nullopt;
    if (eat('-')) {
      auto v = unary();
      if (!v) return std::nullopt;
      return -*v;
    }
    if (eat('+')) return unary();
    return postfix();
  }

  std::optional<double> postfix() {
    auto base = primary();
    if (!base || !eat('^')) return base;
    std::optional<double> exponent;
    if (is_digit(peek())) {
      exponent = s_[pos_++] - '0';
    } else if (eat('{')) {
      exponent = expr();
      if (!eat('}')) return std::nullopt;
    } else if (eat('(')) {
      exponent = expr();
      if (!eat(')')) return std::nullopt;
    }
    if (!exponent) return std::nullopt;
    return std::pow(*base, *exponent);
  }

  // digits ['.' digits] | '.' digits, read with from_chars (locale-free).
  std::optional<double> number(bool* is_integer) {
    const std::size_t start = pos_;
    while (is_digit(peek())) ++pos_;
    *is_integer = true;
    if (peek() == '.' && pos_ + 1 < s_.size() && is_digit(s_[pos_ + 1])) {
      *is_integer = false;
      ++pos_;
      while (is_digit(peek())) ++pos_;
    }
    if (pos_ == start) return std::nullopt;
    double value = 0;
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    const auto result = std::from_chars(first, last, value);
    if (result.ec != std::errc() || result.ptr != last) return std::nullopt;
    return value;
  }

  std::optional<double> argument() {
    if (is_digit(peek())) return static_cast<double>(s_[pos_++] - '0');
    if (!eat('{')) return std::nullopt;
    auto v = expr();
    if (!eat('}')) return std::nullopt;
    return v;
  }

  // A plain non-negative integer argument ("7" or "{12}"), for mixed numbers.
  std::optional<double> integer_argument() {
    if (is_digit(peek())) return static_cast<double>(s_[pos_++] - '0');
    if (!eat('{')) return std::nullopt;
    bool is_integer = false;
    auto v = number(&is_integer);
    if (!v || !is_integer || !eat('}')) return std::nullopt;
    return v;
  }

  std::optional<double> primary() {
    const char c = peek();
    if (is_digit(c) || c == '.') {
      bool is_integer = false;
      auto v = number(&is_integer);
      if (!v) return std::nullopt;
      // Mixed number 2\frac12 = 2 + 1/2, as MATH writes them; only with plain
      // integer parts (2\frac{\pi}{3} is a product).
      if (is_integer && looking_at("\\frac")) {
        const std::size_t save = pos_;
        eat_command("\\frac");
        auto num = integer_argument();
        auto den = num ? integer_argument() : std::nullopt;
        if (num && den) return *v + *num / *den;
        pos_ = save;
      }
      return v;
    }
    if (eat("pi")) return 3.14159265358979323846;
    if (eat('(')) {
      auto v = expr();
      if (!eat(')')) return std::nullopt;
      return v;
    }
    if (eat('{')) {
      auto v = expr();
      if (!eat('}')) return std::nullopt;
      return v;
    }
    if (eat_command("\\frac")) {
      auto num = argument();
      if (!num) return std::nullopt;
      auto den = argument();
      if (!den) return std::nullopt;
      return *num / *den;
    }
    if (eat_command("\\sqrt")) {
      std::optional<double> index;
      if (eat('[')) {
        index = expr();
        if (!index || !eat(']')) return std::nullopt;
      }
      auto radicand = argument();
      if (!radicand) return std::nullopt;
      if (index) return std::pow(*radicand, 1.0 / *index);
      return std::sqrt(*radicand);
    }
    return std::nullopt;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

bool numbers_close(double a, double b) {
  if (a == b) return true;
  return std::abs(a - b) <= 1e-9 * std::max(std::abs(a), std::abs(b));
}

// ---------------------------------------------------------------------------
// Equivalence helpers
// ---------------------------------------------------------------------------

// "x", "x_1", "x_{12}", "\theta": something that names one variable.
bool is_variable_name(std::string_view s) {
  if (s.size() >= 2 && s[0] == '\\') {
    return std::all_of(s.begin() + 1, s.end(), [](char c) { return is_letter(c); });
  }
  if (s.empty() || !is_letter(s[0])) return false;
  if (s.size() == 1) return true;
  if (s[1] != '_') return false;
  std::string_view sub = s.substr(2);
  if (sub.size() >= 2 && sub.front() == '{' && sub.back() == '}') sub = sub.substr(1, sub.size() - 2);
  return !sub.empty() &&
         std::all_of(sub.begin(), sub.end(), [](char c) { return is_letter(c) || is_digit(c); });
}

// Splits a normalized "x=5" into ("x", "5"); nullopt unless there is exactly
// one '=' and its left side names one variable.
std::optional<std::pair<std::string, std::string>> split_assignment(const std::string& s) {
  const std::size_t eq = s.find('=');
  if (eq == std::string::npos || s.find('=', eq + 1) != std::string::npos) return std::nullopt;
  std::string lhs = s.substr(0, eq);
  std::string rhs = s.substr(eq + 1);
  if (rhs.empty() || !is_variable_name(lhs)) return std::nullopt;
  return std::make_pair(std::move(lhs), std::move(rhs));
}

struct ValueAndUnit {
  std::string value;  // normalized
  std::string unit;   // normalized, empty if none
};

bool is_unit_text(const List& children) {
  bool letter = false;
  for (const Node& n : children) {
    if (n.kind == Kind::Space) continue;
    if (n.kind != Kind::Char) return false;
    if (is_letter(n.ch)) {
      letter = true;
    } else if (n.ch != '.' && n.ch != '/') {
      return false;
    }
  }
  return letter;
}

// "5\text{ cm}", "5 \mathrm{m}^2": a numeric value followed by a unit written
// in a text command at the very end. Plain letters ("5cm") are not a unit:
// they could be a variable.
std::optional<ValueAndUnit> split_trailing_unit(std::string_view raw) {
  std::size_t commas = 0;
  auto tree = parse_tree(prepare(raw), &commas);
  if (!tree) return std::nullopt;
  List& top = *tree;
  std::size_t end = top.size();
  while (end > 0 && (top[end - 1].kind == Kind::Space || is_char(top[end - 1], '.') ||
                     is_char(top[end - 1], '$'))) {
    --end;
  }
  const std::size_t unit_end = end;
  if (end >= 2 && is_char(top[end - 2], '^')) end -= 2;  // cm^2, \text{m}^{2}
  if (end == 0 || top[end - 1].kind != Kind::Group || !is_unit_text(top[end - 1].children)) {
    return std::nullopt;
  }
  std::size_t w = end - 1;
  while (w > 0 && top[w - 1].kind == Kind::Space) --w;
  if (w == 0) return std::nullopt;
  --w;
  if (top[w].kind != Kind::Word ||
      !word_in(top[w].name, {"text", "mathrm", "mbox", "textrm", "textnormal", "textup", "textit"})) {
    return std::nullopt;
  }
  const Canonicalizer canon(commas);
  List value_tokens(std::make_move_iterator(top.begin()),
                    std::make_move_iterator(top.begin() + static_cast<std::ptrdiff_t>(w)));
  List unit_tokens(std::make_move_iterator(top.begin() + static_cast<std::ptrdiff_t>(end - 1)),
                   std::make_move_iterator(top.begin() + static_cast<std::ptrdiff_t>(unit_end)));
  ValueAndUnit out{finish(canon.canon(std::move(value_tokens))),
                   finish(canon.canon(std::move(unit_tokens)))};
  if (out.value.empty()) return std::nullopt;
  return out;
}

bool scalars_equal(const std::string& a, const std::string& b) {
  if (a == b) return true;
  const auto x = answer_numeric_value(a);
  if (!x) return false;
  const auto y = answer_numeric_value(b);
  return y && numbers_close(*x, *y);
}

// Splits "(a,b]" into its delimiters and top-level comma-separated items.
struct Sequence {
  char open = 0;
  char close = 0;
  std::vector<std::string> items;
};

Sequence split_sequence(const std::string& s) {
  Sequence seq;
  std::string_view body = s;
  if (s.size() >= 2 && (s.front() == '(' || s.front() == '[') &&
      (s.back() == ')' || s.back() == ']')) {
    // The outer pair must enclose everything: "(1)+(2)" is no tuple.
    int depth = 0;
    bool encloses = true;
    for (std::size_t k = 0; k + 1 < s.size(); ++k) {
      const char c = s[k];
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') --depth;
      if (depth <= 0) {
        encloses = false;
        break;
      }
    }
    if (encloses) {
      seq.open = s.front();
      seq.close = s.back();
      body = std::string_view(s).substr(1, s.size() - 2);
    }
  }
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t k = 0; k < body.size(); ++k) {
    const char c = body[k];
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    if (c == ',' && depth == 0) {
      seq.items.emplace_back(body.substr(start, k - start));
      start = k + 1;
    }
  }
  seq.items.emplace_back(body.substr(start));
  return seq;
}

bool values_equal(const std::string& a, const std::string& b) {
  if (scalars_equal(a, b)) return true;
  const Sequence x = split_sequence(a);
  const Sequence y = split_sequence(b);
  if (x.open != y.open || x.close != y.close || x.items.size() != y.items.size()) return false;
  if (x.items.size() < 2 && x.open == 0) return false;  // not a sequence at all
  for (std::size_t k = 0; k < x.items.size(); ++k) {
    if (x.items[k].empty() || !scalars_equal(x.items[k], y.items[k])) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// The authors' normalize_latex, step for step (compat mode)
// ---------------------------------------------------------------------------

// Python's str.isspace() on what UTF-8 sequence starts at s[i]: its byte
// length, or 0 if it is not whitespace. (The reference strips and deletes
// \s+, which in Python 3 includes \x1c-\x1f and Unicode spaces.)
std::size_t python_space_length(std::string_view s, std::size_t i) {
  const char c = s[i];
  if (is_space(c) || (c >= '\x1c' && c <= '\x1f')) return 1;
  static constexpr std::string_view kUnicodeSpaces[] = {
      "\u0085", "\u00a0", "\u1680", "\u2000", "\u2001", "\u2002", "\u2003", "\u2004",
      "\u2005", "\u2006", "\u2007", "\u2008", "\u2009", "\u200a", "\u2028", "\u2029",
      "\u202f", "\u205f", "\u3000"};
  if (static_cast<unsigned char>(c) < 0x80) return 0;
  for (const auto u : kUnicodeSpaces) {
    if (s.compare(i, u.size(), u) == 0) return u.size();
  }
  return 0;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  for (std::size_t hit = s.find(from); hit != std::string::npos; hit = s.find(from, i)) {
    out.append(s, i, hit - i);
    out += to;
    i = hit + from.size();
  }
  out.append(s, i, std::string::npos);
  return out;
}

// re.sub(r"(\d+)[\.,](\d+)", r"\1.\2", s): left to right, non-overlapping.
std::string reference_decimal(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (!is_digit(s[i])) {
      out += s[i++];
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && is_digit(s[j])) ++j;
    if (j + 1 < s.size() && (s[j] == '.' || s[j] == ',') && is_digit(s[j + 1])) {
      std::size_t k = j + 1;
      while (k < s.size() && is_digit(s[k])) ++k;
      out.append(s, i, j - i);
      out += '.';
      out.append(s, j + 1, k - j - 1);
      i = k;
    } else {
      out.append(s, i, j - i);
      i = j;
    }
  }
  return out;
}

// re.sub(prefix + r"\{([^{}]+)\}", r"\1", s) for prefix "" (any brace group
// without nested braces), "\\text" or "\\mathrm": one pass, no rescanning.
std::string reference_unwrap(const std::string& s, std::string_view prefix) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, prefix.size(), prefix) == 0 && i + prefix.size() < s.size() &&
        s[i + prefix.size()] == '{') {
      const std::size_t open = i + prefix.size();
      std::size_t j = open + 1;
      while (j < s.size() && s[j] != '{' && s[j] != '}') ++j;
      if (j < s.size() && s[j] == '}' && j > open + 1) {
        out.append(s, open + 1, j - open - 1);
        i = j + 1;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

// re.sub(r"([a-z]+)\\+\s*(\d+)", r"\1\2", s) once whitespace is gone: the
// backslashes between a lowercase word and a number are dropped.
std::string reference_date(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] >= 'a' && s[i] <= 'z') {
      std::size_t j = i;
      while (j < s.size() && s[j] >= 'a' && s[j] <= 'z') ++j;
      std::size_t k = j;
      while (k < s.size() && s[k] == '\\') ++k;
      if (k > j && k < s.size() && is_digit(s[k])) {
        std::size_t m = k;
        while (m < s.size() && is_digit(s[m])) ++m;
        out.append(s, i, j - i);
        out.append(s, k, m - k);
        i = m;
        continue;
      }
      out.append(s, i, j - i);
      i = j;
      continue;
    }
    out += s[i++];
  }
  return out;
}

}  // namespace

std::vector<std::string> extract_all_boxed(std::string_view text) {
  std::vector<std::string> out;
  std::size_t resume = 0;  // boxes starting before this are inside a returned one
  for (const BoxSpan& box : find_boxes(text)) {
    if (box.open < resume || box.close == npos) continue;
    out.emplace_back(text.substr(box.open + 1, box.close - box.open - 1));
    resume = box.close + 1;
  }
  return out;
}

std::optional<std::string> extract_boxed(std::string_view text) {
  for (auto& content : extract_all_boxed(text)) {
    if (!normalize_answer(content).empty()) return std::move(content);
  }
  return std::nullopt;
}

std::string normalize_answer(std::string_view answer) {
  const std::string prepared = prepare(answer);
  std::size_t commas = 0;
  auto tree = parse_tree(prepared, &commas);
  if (!tree) {
    std::string flat = flat_normalize(prepared);
    strip_trailing_periods(flat);
    return flat;
  }
  return finish(Canonicalizer(commas).canon(std::move(*tree)));
}

std::string normalize_answer_reference(std::string_view answer) {
  // strip() and lower()
  std::size_t begin = 0;
  std::size_t end = answer.size();
  while (begin < end) {
    const std::size_t n = python_space_length(answer, begin);
    if (n == 0) break;
    begin += n;
  }
  while (end > begin) {
    std::size_t n = 0;  // the space sequence ending at `end`, if any
    for (std::size_t len = 1; len <= 3 && len <= end - begin && n == 0; ++len) {
      if (python_space_length(answer, end - len) == len) n = len;
    }
    if (n == 0) break;
    end -= n;
  }
  std::string s;
  s.reserve(end - begin);
  for (std::size_t i = begin; i < end; ++i) {
    const char c = answer[i];
    s += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  s = replace_all(std::move(s), "dfrac", "frac");
  s = replace_all(std::move(s), "tfrac", "frac");
  {  // re.sub(r"\s+", "", s)
    std::string t;
    t.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
      const std::size_t n = python_space_length(s, i);
      if (n) {
        i += n;
      } else {
        t += s[i++];
      }
    }
    s = std::move(t);
  }
  s = replace_all(std::move(s), "\\%", "");
  s = replace_all(std::move(s), "{,}", "");
  s = replace_all(std::move(s), "\\times", "*");
  s = replace_all(std::move(s), "\\cdot", "*");
  s = reference_decimal(s);
  s = reference_unwrap(s, "");
  s = replace_all(std::move(s), "\\pi", "pi");
  s = reference_unwrap(s, "\\text");
  s = reference_unwrap(s, "\\mathrm");
  s = reference_date(s);
  return replace_all(std::move(s), "\\text", "");
}

std::optional<double> answer_numeric_value(std::string_view normalized_answer) {
  if (normalized_answer.empty()) return std::nullopt;
  return NumberParser(normalized_answer).parse();
}

bool answers_equivalent(std::string_view a, std::string_view b) {
  const std::string na = normalize_answer(a);
  const std::string nb = normalize_answer(b);
  if (na.empty() || nb.empty()) return false;
  if (na == nb) return true;

  ValueAndUnit x{na, ""};
  ValueAndUnit y{nb, ""};
  // A trailing \text unit is split off only when what precedes it is a number.
  const auto numeric_after_assignment = [](const std::string& v) {
    const auto assignment = split_assignment(v);
    return answer_numeric_value(assignment ? assignment->second : v).has_value();
  };
  if (auto split = split_trailing_unit(a); split && numeric_after_assignment(split->value)) x = *split;
  if (auto split = split_trailing_unit(b); split && numeric_after_assignment(split->value)) y = *split;
  if (!x.unit.empty() && !y.unit.empty() && x.unit != y.unit) return false;

  // "x=5" vs "5": compare the right-hand side; "x=5" vs "y=5" is not equal.
  const auto ax = split_assignment(x.value);
  const auto ay = split_assignment(y.value);
  if (ax && ay) {
    if (ax->first != ay->first) return false;
    return values_equal(ax->second, ay->second);
  }
  return values_equal(ax ? ax->second : x.value, ay ? ay->second : y.value);
}

}  // namespace anchors
