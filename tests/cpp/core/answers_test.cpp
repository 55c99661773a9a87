// Answer extraction, normalisation and equivalence (docs/answers.md), checked
// on the authors' real answers and on the edge cases their code gets wrong.
#include "anchors/core/answers.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using anchors::answer_numeric_value;
using anchors::answers_equivalent;
using anchors::extract_all_boxed;
using anchors::extract_boxed;
using anchors::normalize_answer;
namespace fs = std::filesystem;

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return nlohmann::json::parse(in);
}

// Every trace folder of the reference data (one base_solution.json each).
std::vector<fs::path> reference_traces() {
  std::vector<fs::path> dirs;
  const fs::path root = fs::path(ANCHORS_TEST_DATA_DIR) / "reference";
  if (!fs::exists(root)) return dirs;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.path().filename() == "base_solution.json") dirs.push_back(entry.path().parent_path());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

// ---------------------------------------------------------------------------
// Reference data
// ---------------------------------------------------------------------------

TEST(AnswerReference, AllFourTracesPresent) {
  EXPECT_EQ(reference_traces().size(), 4u) << "expected the four traces of tests/data/reference";
}

TEST(AnswerReference, EquivalenceMatchesIsCorrect) {
  for (const auto& dir : reference_traces()) {
    SCOPED_TRACE(dir.string());
    const auto base = read_json(dir / "base_solution.json");
    const auto problem = read_json(dir / "problem.json");
    const std::string answer = base.at("answer");
    const std::string gt = problem.at("gt_answer");
    EXPECT_EQ(answers_equivalent(answer, gt), base.at("is_correct").get<bool>())
        << answer << " vs " << gt;
    EXPECT_EQ(answers_equivalent(gt, answer), base.at("is_correct").get<bool>());  // symmetric
  }
}

TEST(AnswerReference, BoxedSolutionIsTheRecordedAnswer) {
  for (const auto& dir : reference_traces()) {
    SCOPED_TRACE(dir.string());
    const auto base = read_json(dir / "base_solution.json");
    const std::string answer = base.at("answer");
    const auto boxed = extract_boxed(base.at("solution").get<std::string>());
    ASSERT_TRUE(boxed.has_value());
    EXPECT_EQ(*boxed, answer);  // verbatim, as the authors extracted it
    EXPECT_EQ(normalize_answer(*boxed), normalize_answer(answer));
  }
}

TEST(AnswerReference, BoxedGroundTruthSolutionIsGtAnswer) {
  for (const auto& dir : reference_traces()) {
    SCOPED_TRACE(dir.string());
    const auto problem = read_json(dir / "problem.json");
    const std::string gt = problem.at("gt_answer");
    const auto boxed = extract_boxed(problem.at("gt_solution").get<std::string>());
    ASSERT_TRUE(boxed.has_value());
    EXPECT_EQ(*boxed, gt);
    EXPECT_EQ(normalize_answer(*boxed), normalize_answer(gt));
    EXPECT_TRUE(answers_equivalent(*boxed, gt));
  }
}

TEST(AnswerReference, IncorrectTraceAnswersAreNumbers) {
  // problem_3448: the model's -1 against -\frac{1} { 4027} (note the spaces);
  // the authors' regexes turn the latter into "-\frac14027", ours keep the
  // denominator intact.
  EXPECT_EQ(normalize_answer("-\\frac{1} { 4027}"), "-\\frac1{4027}");
  ASSERT_TRUE(answer_numeric_value("-\\frac1{4027}").has_value());
  EXPECT_DOUBLE_EQ(*answer_numeric_value("-\\frac1{4027}"), -1.0 / 4027.0);
  EXPECT_FALSE(answers_equivalent("-1", "-\\frac{1} { 4027}"));
  EXPECT_TRUE(answers_equivalent("-\\frac{1}{4027}", "-\\frac{1} { 4027}"));
}

// ---------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------

TEST(AnswerExtract, SimpleAndNestedBraces) {
  EXPECT_EQ(extract_boxed("so \\boxed{42}."), "42");
  EXPECT_EQ(extract_boxed("\\boxed{\\frac{1}{2}}"), "\\frac{1}{2}");
  EXPECT_EQ(extract_boxed("\\boxed{\\left\\{ \\frac{a}{b^{2}} \\right\\}}"),
            "\\left\\{ \\frac{a}{b^{2}} \\right\\}");
}

TEST(AnswerExtract, SeveralBoxesFirstNonEmptyWins) {
  const std::string text = "\\boxed{} then \\boxed{ } then \\boxed{3} and \\boxed{4}";
  EXPECT_EQ(extract_all_boxed(text), (std::vector<std::string>{"", " ", "3", "4"}));
  EXPECT_EQ(extract_boxed(text), "3");
  // A box whose content normalizes to nothing counts as empty.
  EXPECT_EQ(extract_boxed("\\boxed{\\,$ $} \\boxed{7}"), "7");
}

TEST(AnswerExtract, NoBoxOrOnlyEmpty) {
  EXPECT_FALSE(extract_boxed("no answer here").has_value());
  EXPECT_FALSE(extract_boxed("\\boxed{}").has_value());
  EXPECT_FALSE(extract_boxed("").has_value());
  EXPECT_TRUE(extract_all_boxed("plain text").empty());
}

TEST(AnswerExtract, SpaceBeforeBrace) {
  EXPECT_EQ(extract_boxed("\\boxed {x}"), "x");
  EXPECT_EQ(extract_boxed("\\boxed\n{5}"), "5");
}

TEST(AnswerExtract, NotABoxCommand) {
  EXPECT_FALSE(extract_boxed("\\boxedx{5}").has_value());  // another command
  EXPECT_FALSE(extract_boxed("\\boxed 5").has_value());    // only the brace form counts
  EXPECT_FALSE(extract_boxed("\\\\boxed{5}").has_value());  // "\\" is a line break
  EXPECT_FALSE(extract_boxed("\\fbox{5}").has_value());
}

TEST(AnswerExtract, UnterminatedBoxYieldsNothing) {
  EXPECT_FALSE(extract_boxed("\\boxed{12").has_value());
  EXPECT_FALSE(extract_boxed("\\boxed{").has_value());
  EXPECT_FALSE(extract_boxed("\\boxed").has_value());
  EXPECT_FALSE(extract_boxed("\\boxed{\\frac{1}{2}").has_value());
  // An unterminated box does not hide a complete one after it ...
  EXPECT_EQ(extract_boxed("\\boxed{1 then \\boxed{2}"), "2");
  // ... nor one before it.
  EXPECT_EQ(extract_all_boxed("\\boxed{1} \\boxed{2"), (std::vector<std::string>{"1"}));
}

TEST(AnswerExtract, EscapedBracesDoNotCount) {
  EXPECT_EQ(extract_boxed("\\boxed{\\{1,2\\}}"), "\\{1,2\\}");
  EXPECT_EQ(extract_boxed("\\boxed{\\}}"), "\\}");
  EXPECT_EQ(extract_boxed("\\boxed{a\\\\}b}"), "a\\\\");  // \\ then a real brace
}

TEST(AnswerExtract, NestedBoxIsPartOfOuterBox) {
  EXPECT_EQ(extract_all_boxed("\\boxed{\\boxed{5}} \\boxed{6}"),
            (std::vector<std::string>{"\\boxed{5}", "6"}));
  EXPECT_EQ(normalize_answer(*extract_boxed("\\boxed{\\boxed{5}}")), "5");
}

TEST(AnswerExtract, StrayClosingBracesBeforeTheBox) {
  EXPECT_EQ(extract_boxed("} } \\boxed{9} }"), "9");
  EXPECT_EQ(extract_boxed("{ { \\boxed{9}"), "9");
}

// ---------------------------------------------------------------------------
// Normalisation
// ---------------------------------------------------------------------------

struct NormCase {
  const char* input;
  const char* expected;
};

// Readable parameter names in test output and ctest (instead of raw bytes).
void PrintTo(const NormCase& c, std::ostream* os) { *os << '"' << c.input << "\" -> \"" << c.expected << '"'; }

class AnswerNormalize : public ::testing::TestWithParam<NormCase> {};

TEST_P(AnswerNormalize, Canonical) {
  const NormCase& c = GetParam();
  EXPECT_EQ(normalize_answer(c.input), c.expected) << "input: " << c.input;
}

TEST_P(AnswerNormalize, Idempotent) {
  const std::string once = normalize_answer(GetParam().input);
  EXPECT_EQ(normalize_answer(once), once) << "input: " << GetParam().input;
}

INSTANTIATE_TEST_SUITE_P(
    AnswerRules, AnswerNormalize,
    ::testing::Values(
        // lowercase, strip, whitespace
        NormCase{"  42  ", "42"}, NormCase{"ABC", "abc"}, NormCase{"x + 1", "x+1"},
        NormCase{"", ""}, NormCase{"   ", ""},
        // fractions: dfrac/tfrac, single-digit arguments bare, others braced
        NormCase{"\\frac{1}{2}", "\\frac12"}, NormCase{"\\dfrac{3}{4}", "\\frac34"},
        NormCase{"\\tfrac 1 2", "\\frac12"}, NormCase{"\\frac12", "\\frac12"},
        NormCase{"\\frac{12}{3}", "\\frac{12}3"}, NormCase{"\\frac{1}{23}", "\\frac1{23}"},
        NormCase{"\\frac{a}{b}", "\\frac{a}{b}"}, NormCase{"\\dbinom{5}{2}", "\\binom52"},
        // roots, powers, subscripts
        NormCase{"2\\sqrt{3}", "2\\sqrt3"}, NormCase{"\\sqrt{x}", "\\sqrt{x}"},
        NormCase{"\\sqrt[3]{8}", "\\sqrt[3]8"}, NormCase{"x^{2}+1", "x^2+1"},
        NormCase{"x^{10}", "x^{10}"}, NormCase{"a_{n}", "a_n"},
        // percent, dollars, math shift
        NormCase{"10\\%", "10"}, NormCase{"10%", "10"}, NormCase{"\\$5", "5"},
        NormCase{"$5.00$", "5.00"}, NormCase{"\\$1{,}000", "1000"},
        // thousands separators and decimal commas
        NormCase{"1{,}000", "1000"}, NormCase{"1,000", "1000"},
        NormCase{"12,345,678", "12345678"}, NormCase{"1,000.5", "1000.5"},
        NormCase{"0,5", "0.5"}, NormCase{"-0,75", "-0.75"}, NormCase{"2,5", "2.5"},
        NormCase{"0,500", "0.500"}, NormCase{"1,2,3", "1,2,3"}, NormCase{"(2,5)", "(2,5)"},
        NormCase{"[2,5)", "[2,5)"}, NormCase{"(1,234)", "(1,234)"}, NormCase{"x=0,5", "x=0,5"},
        NormCase{"1,000, 2,000, 3,000", "1000,2000,3000"}, NormCase{"1\\,000", "1000"},
        NormCase{"10,\\!000", "10000"}, NormCase{"\\$1,\\!000", "1000"},
        // products and constants
        NormCase{"3 \\times 4", "3*4"}, NormCase{"3\\cdot 4", "3*4"}, NormCase{"6 \\div 3", "6/3"},
        NormCase{"2\\pi", "2pi"}, NormCase{"\\frac{\\pi}{2}", "\\frac{pi}2"},
        NormCase{"\\pi r^2", "pir^2"},
        // text-like commands unwrapped
        NormCase{"\\text{east}", "east"}, NormCase{"\\textbf{East}", "east"},
        NormCase{"\\mathrm{cm}", "cm"}, NormCase{"5 \\text{ cm}", "5cm"},
        NormCase{"\\text{(A)}", "(a)"}, NormCase{"\\mbox{yes}", "yes"},
        NormCase{"\\boxed{7}", "7"}, NormCase{"\\operatorname{lcm}", "lcm"},
        // braces
        NormCase{"{5}", "5"}, NormCase{"{{5}}", "5"}, NormCase{"{x}+{y}", "x+y"},
        NormCase{"\\overline{AB}", "\\overline{ab}"}, NormCase{"\\{1,2\\}", "\\{1,2\\}"},
        // delimiters and spacing commands
        NormCase{"\\left( 1, 2 \\right)", "(1,2)"}, NormCase{"\\left.x\\right|", "x|"},
        NormCase{"\\displaystyle\\frac{1}{2}", "\\frac12"}, NormCase{"5\\!000", "5000"},
        NormCase{"a\\quad b", "ab"}, NormCase{"october\\ 30", "october30"}, NormCase{"a~b", "ab"},
        NormCase{"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"},
        // degrees
        NormCase{"30^\\circ", "30"}, NormCase{"30^{\\circ}", "30"}, NormCase{"30\u00b0", "30"},
        NormCase{"f \\circ g", "f\\circ{}g"},
        // relations, signs, unicode
        NormCase{"x \\le 3", "x\\leq3"}, NormCase{"x \\ge 3", "x\\geq3"},
        NormCase{"\u22125", "-5"}, NormCase{"- 5", "-5"}, NormCase{"x = 5", "x=5"},
        // trailing period
        NormCase{"5.", "5"}, NormCase{"\\text{yes}.", "yes"}, NormCase{"2.5", "2.5"},
        // control words stay separate from following letters
        NormCase{"\\alpha x", "\\alpha{}x"}, NormCase{"\\sin x", "\\sin{}x"},
        NormCase{"\\infty", "\\infty"}, NormCase{"(-\\infty, 3]", "(-\\infty,3]"}));

TEST(AnswerNormalizeSpecial, SpacedTwoNumberListIsNotIdempotent) {
  // Documented exception: whitespace is what tells the list "2, 5" from the
  // decimal comma "2,5"; once normalized the space is gone.
  EXPECT_EQ(normalize_answer("2, 5"), "2,5");
  EXPECT_EQ(normalize_answer(normalize_answer("2, 5")), "2.5");
  // Spacing commands separate list items like spaces do.
  EXPECT_EQ(normalize_answer("2,\\ 5"), "2,5");
  EXPECT_EQ(normalize_answer("2,~5"), "2,5");
  EXPECT_EQ(normalize_answer("2,\\,5"), "2,5");
}

TEST(AnswerNormalizeSpecial, UnbalancedBraces) {
  EXPECT_EQ(normalize_answer("{5"), "5");
  EXPECT_EQ(normalize_answer("5}"), "5}");
  EXPECT_EQ(normalize_answer("\\frac{1}{2"), "\\frac12");
  EXPECT_EQ(normalize_answer("\\"), "");
}

// ---------------------------------------------------------------------------
// Compat: the authors' normalize_latex, string for string
// ---------------------------------------------------------------------------

TEST(AnswerReferenceNormalize, ReproducesTheAuthorsStrings) {
  // Expected values are what utils.py normalize_latex returns (checked by
  // running it on these inputs), flaws included.
  using anchors::normalize_answer_reference;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\\frac{1}{2}", "\\frac12"},
      {"\\frac{12}{3}", "\\frac123"},         // collides with \frac{1}{23}
      {"-\\frac{1} { 4027}", "-\\frac14027"},
      {"1,000", "1.000"},                      // thousands separator read as a decimal
      {"1{,}000", "1000"},
      {"2, 5", "2.5"},                         // a list read as a decimal
      {"1,2,3", "1.2,3"},
      {"\\textbf{East}", "bfeast"},
      {"\\mathrm{cm}", "\\mathrmcm"},
      {"30^{\\circ}", "30^\\circ"},
      {"october\\ 30", "october30"},
      {"\\text{(A)}", "(a)"},
      {"{{a}}", "{a}"},
      {"  10\\% ", "10"},
      {"3 \\times 4", "3*4"},
      {"\\dfrac{\\pi}{2}", "\\fracpi2"},
      {"5.", "5."},
      {"", ""},
  };
  for (const auto& [input, expected] : cases) {
    EXPECT_EQ(normalize_answer_reference(input), expected) << input;
  }
}

TEST(AnswerReferenceNormalize, NeverFails) {
  std::mt19937 rng(11);
  for (int it = 0; it < 2000; ++it) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    (void)anchors::normalize_answer_reference(s);
  }
  (void)anchors::normalize_answer_reference(std::string(100000, '{'));
}

// ---------------------------------------------------------------------------
// Numeric values
// ---------------------------------------------------------------------------

TEST(AnswerNumeric, Values) {
  const auto v = [](const char* s) { return answer_numeric_value(normalize_answer(s)); };
  const double pi = 3.14159265358979323846;
  struct Case {
    const char* s;
    double value;
  };
  for (const Case& c : {Case{"42", 42}, Case{"-7", -7}, Case{"2.50", 2.5}, Case{".5", 0.5},
                        Case{"1/2", 0.5}, Case{"\\frac{3}{4}", 0.75}, Case{"-\\frac{1}{2}", -0.5},
                        Case{"\\frac{-1}{2}", -0.5}, Case{"\\sqrt{2}", std::sqrt(2.0)},
                        Case{"2\\sqrt{3}", 2 * std::sqrt(3.0)},
                        Case{"\\frac{\\sqrt{3}}{2}", std::sqrt(3.0) / 2},
                        Case{"\\frac{2\\sqrt{6}}{3}", 2 * std::sqrt(6.0) / 3},
                        Case{"\\sqrt[3]{27}", 3}, Case{"2^{10}", 1024}, Case{"2^{-1}", 0.5},
                        Case{"\\pi", pi}, Case{"\\frac{\\pi}{3}", pi / 3}, Case{"3\\pi", 3 * pi},
                        Case{"2\\frac{1}{2}", 2.5}, Case{"-2\\frac{1}{2}", -2.5},
                        Case{"2\\frac{\\pi}{3}", 2 * pi / 3}, Case{"(1+2)*3", 9},
                        Case{"1+2\\cdot 3", 7}, Case{"10\\%", 10}, Case{"\\$1{,}000", 1000},
                        Case{"{5}", 5}, Case{"--5", 5}, Case{"1.5 \\times 10^{3}", 1500},
                        Case{"2^{\\frac{1}{3}}", std::cbrt(2.0)}, Case{"10,\\!000", 10000}}) {
    const auto got = v(c.s);
    ASSERT_TRUE(got.has_value()) << c.s;
    EXPECT_NEAR(*got, c.value, 1e-12 * std::max(1.0, std::abs(c.value))) << c.s;
  }
}

TEST(AnswerNumeric, NotNumbers) {
  for (const char* s : {"x", "x+1", "\\infty", "1/0", "\\sqrt{-1}", "(1,2)", "2^{100000}", "",
                        "east", "1e5", "\\frac{1}", "()", "5cm", "1..2", "\\fracx"}) {
    EXPECT_FALSE(answer_numeric_value(normalize_answer(s)).has_value()) << s;
  }
}

// ---------------------------------------------------------------------------
// Equivalence
// ---------------------------------------------------------------------------

struct EqCase {
  const char* a;
  const char* b;
  bool equal;
};

void PrintTo(const EqCase& c, std::ostream* os) {
  *os << '"' << c.a << (c.equal ? "\" == \"" : "\" != \"") << c.b << '"';
}

class AnswerEquivalent : public ::testing::TestWithParam<EqCase> {};

TEST_P(AnswerEquivalent, Decides) {
  const EqCase& c = GetParam();
  EXPECT_EQ(answers_equivalent(c.a, c.b), c.equal) << c.a << " vs " << c.b;
  EXPECT_EQ(answers_equivalent(c.b, c.a), c.equal) << "symmetry: " << c.b << " vs " << c.a;
}

INSTANTIATE_TEST_SUITE_P(
    AnswerCases, AnswerEquivalent,
    ::testing::Values(
        // fractions and decimals
        EqCase{"\\frac12", "1/2", true}, EqCase{"\\frac12", "0.5", true},
        EqCase{"\\frac{1}{2}", "\\frac12", true}, EqCase{"\\dfrac{3}{4}", "0.75", true},
        EqCase{"\\dfrac{3}{4}", "\\frac34", true}, EqCase{"2.50", "2.5", true},
        EqCase{"2.5", "\\frac52", true}, EqCase{"2\\frac{1}{2}", "\\frac{5}{2}", true},
        EqCase{"0.3333", "\\frac13", false}, EqCase{"\\frac{12}{3}", "\\frac{1}{23}", false},
        // thousands separators, percent, money
        EqCase{"1{,}000", "1000", true}, EqCase{"1,000", "1000", true},
        EqCase{"1{,}000", "1,000", true}, EqCase{"10\\%", "10", true},
        EqCase{"10\\%", "0.1", false}, EqCase{"\\$5", "5", true}, EqCase{"\\$5.00", "5", true},
        // signs
        EqCase{"-5", "- 5", true}, EqCase{"-5", "5", false}, EqCase{"-\\frac{1}{2}", "-0.5", true},
        EqCase{"\\frac{-1}{2}", "-\\frac12", true},
        // roots and pi
        EqCase{"2\\sqrt{3}", "\\sqrt{12}", true}, EqCase{"\\frac{\\sqrt{3}}{2}", "\\sqrt3/2", true},
        EqCase{"\\frac{\\sqrt{3}}{2}", "0.866", false}, EqCase{"\\frac{\\pi}{2}", "\\pi/2", true},
        EqCase{"2\\pi", "2 \\pi", true},
        // units written with \text
        EqCase{"5 \\text{ cm}", "5", true}, EqCase{"5\\text{ cm}", "5 \\mathrm{cm}", true},
        EqCase{"5\\text{ cm}", "5\\text{ m}", false}, EqCase{"3\\text{ cm}^2", "3", true},
        EqCase{"5\\text{ cm}", "6", false}, EqCase{"5cm", "5", false},
        EqCase{"\\text{east}", "east", true},
        // degrees
        EqCase{"30^\\circ", "30", true}, EqCase{"30^{\\circ}", "\\frac{60}{2}", true},
        // variable assignment
        EqCase{"x = 5", "5", true}, EqCase{"x=5", "x = 5.0", true}, EqCase{"x=5", "y=5", false},
        EqCase{"a_1 = 3", "3", true}, EqCase{"y = 2x+3", "2x + 3", true},
        EqCase{"x=1, y=2", "1", false},
        // tuples, intervals, lists
        EqCase{"(1, 2)", "(1,2.0)", true}, EqCase{"(\\frac12, 3)", "(0.5, 3)", true},
        EqCase{"(1,2)", "[1,2]", false}, EqCase{"[2,5)", "[2, 5)", true},
        EqCase{"1, 2", "2, 1", false}, EqCase{"(1,2)", "(1,2,3)", false},
        // text and case
        EqCase{"\\text{(A)}", "(A)", true}, EqCase{"Yes", "yes", true},
        // empty answers are never equivalent
        EqCase{"", "", false}, EqCase{"5", "", false}, EqCase{"$ $", "$ $", false}));

// ---------------------------------------------------------------------------
// Robustness: no crash, no hang, bounded time
// ---------------------------------------------------------------------------

TEST(AnswerRobust, RandomBytes) {
  std::mt19937 rng(20250615);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 64);
  for (int it = 0; it < 3000; ++it) {
    std::string s(static_cast<std::size_t>(length(rng)), '\0');
    for (char& c : s) c = static_cast<char>(byte(rng));
    const std::string n = normalize_answer(s);
    (void)extract_all_boxed(s);
    (void)extract_boxed("\\boxed{" + s + "}");
    (void)answer_numeric_value(s);
    (void)answer_numeric_value(n);
    (void)answers_equivalent(s, n);
  }
}

TEST(AnswerRobust, RandomLatexSoup) {
  const std::vector<std::string> pieces = {
      "{",    "}",      "\\frac", "\\sqrt", "\\text", "\\left", "\\right", "^",     "_",
      "1",    "2",      "0",      "x",      " ",      ".",      ",",       "-",     "(",
      ")",    "[",      "]",      "\\",     "\\circ", "\\pi",   "%",       "$",     "\\,",
      "=",    "/",      "*",      "{,}",    "\\boxed", "\\mathrm", "\\%", "\\{",   "\\}"};
  std::mt19937 rng(7);
  for (int it = 0; it < 20000; ++it) {
    std::string s;
    const int n = static_cast<int>(rng() % 16);
    for (int k = 0; k < n; ++k) s += pieces[rng() % pieces.size()];
    const std::string a = normalize_answer(s);
    (void)answers_equivalent(s, a);
    (void)extract_boxed(s);
    (void)answer_numeric_value(a);
  }
}

TEST(AnswerRobust, DeepNestingAndLongInputs) {
  const auto start = std::chrono::steady_clock::now();
  const std::string open(100000, '{');
  const std::string close(100000, '}');
  EXPECT_FALSE(extract_boxed("\\boxed{" + open).has_value());
  EXPECT_EQ(extract_boxed("\\boxed{" + open + "5" + close + "}"), open + "5" + close);
  (void)normalize_answer(open);
  (void)normalize_answer(open + "5" + close);
  (void)answers_equivalent(open + "5" + close, "5");
  EXPECT_FALSE(answer_numeric_value(open + "5" + close).has_value());
  EXPECT_FALSE(answer_numeric_value(std::string(100000, '(') + "5").has_value());
  EXPECT_FALSE(answer_numeric_value(std::string(100000, '-') + "5").has_value());
  std::string sqrts;
  for (int k = 0; k < 20000; ++k) sqrts += "\\sqrt{";
  (void)normalize_answer(sqrts + "2");
  (void)answers_equivalent(sqrts + "2", "2");
  // Many unterminated boxes must stay linear, not quadratic.
  std::string boxes;
  for (int k = 0; k < 100000; ++k) boxes += "\\boxed{";
  EXPECT_FALSE(extract_boxed(boxes).has_value());
  std::string many_numbers;
  std::string many_roots;
  std::string many_unterminated_groups;
  for (int k = 0; k < 50000; ++k) {
    many_numbers += "1,000 ";
    many_roots += "\\sqrt[";
    many_unterminated_groups += "\\text{";
    if (k % 50 == 49) many_unterminated_groups += std::string(50, '}');
  }
  EXPECT_EQ(normalize_answer(many_numbers).size(), 4u * 50000u);
  (void)normalize_answer(many_roots);
  (void)normalize_answer(many_unterminated_groups);
  (void)anchors::normalize_answer_reference(many_numbers + many_roots + open);
  (void)answers_equivalent(many_numbers, many_roots);
  const std::string long_number(200000, '7');
  EXPECT_EQ(normalize_answer(long_number), long_number);
  EXPECT_FALSE(answer_numeric_value(long_number).has_value());  // overflows to infinity
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 20.0);
}

}  // namespace
