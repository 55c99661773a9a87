#pragma once
// Final-answer extraction and comparison (docs/design.md §3 "Answers"; the exact
// rules, with examples and every deviation from the authors' code, are in
// docs/answers.md). None of these functions throws or fails on any input:
// malformed LaTeX, unbalanced or deeply nested braces and arbitrary bytes all
// give a well-defined result in time linear in the input.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace anchors {

// Contents of every \boxed{...} in order of appearance, including empty ones.
// Braces are matched (escaped \{ \} do not count); `\boxed {x}` with spaces
// before the brace is accepted; a \boxed nested inside a returned box is part
// of that box's content, not a separate entry; an unterminated box yields
// nothing.
std::vector<std::string> extract_all_boxed(std::string_view text);

// The content of the first \boxed{...} whose normalized content is non-empty,
// verbatim (not normalized), or nullopt if there is none.
std::optional<std::string> extract_boxed(std::string_view text);

// Canonical form used for comparing and counting answers: lowercase, strip,
// dfrac/tfrac -> frac, whitespace dropped, "\%", "%", "$", "\$" and "{,}"
// dropped, \left/\right dropped, \times and \cdot -> *, thousands separators
// dropped, decimal comma -> point, bare {x} groups unwrapped, \pi -> pi,
// \text{}/\mathrm{}/\textbf{}/... unwrapped, degree marks dropped, trailing
// period dropped. Arguments of \frac, \sqrt, ^ and _ are written braced unless
// they are a single digit (or, after ^ and _, a single letter): \frac{1}{2},
// \frac12 and \dfrac 1 2 all give "\frac12". See docs/answers.md.
std::string normalize_answer(std::string_view answer);

// The authors' normalisation (utils.py normalize_latex) reproduced string for
// string, for compat mode: answer distributions keyed by it give the
// reference's KL values exactly. It has the flaws docs/answers.md lists
// (\frac{12}{3} == \frac{1}{23}, "1,000" -> "1.000", "2, 5" -> "2.5").
std::string normalize_answer_reference(std::string_view answer);

// True if both answers are non-empty after normalization and
//  - the normalized strings are equal, or
//  - they are numerically equal (relative tolerance 1e-9) as integers,
//    decimals, fractions a/b, \frac, mixed numbers (2\frac12), \sqrt products,
//    pi multiples and powers, or
//  - they are equal after dropping a leading single-variable assignment
//    ("x=5" vs "5") or a trailing \text{unit} ("5\text{ cm}" vs "5"), or
//  - they are tuples/intervals/lists with equal delimiters whose elements are
//    pairwise equal in the senses above.
bool answers_equivalent(std::string_view a, std::string_view b);

// Numeric value of a normalized answer when it is a plain number, fraction,
// \frac, mixed number, \sqrt product, pi multiple or power of those; nullopt
// otherwise (including any non-finite value).
std::optional<double> answer_numeric_value(std::string_view normalized_answer);

}  // namespace anchors
