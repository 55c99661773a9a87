// The canonicaliser behind normalize_answer (include/anchors/core/answers.h;
// every rule, with examples, in docs/answers.md): text -> token tree
// (answer_tokens.cpp) -> canonical tokens -> text.
#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "anchors/core/answers.h"
#include "answers_internal.h"

namespace anchors {
namespace answers_internal {
namespace {

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

}  // namespace

std::string canonical_text(List tokens, std::size_t list_commas) {
  return finish(Canonicalizer(list_commas).canon(std::move(tokens)));
}

}  // namespace answers_internal

std::string normalize_answer(std::string_view answer) {
  using namespace answers_internal;
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

}  // namespace anchors
