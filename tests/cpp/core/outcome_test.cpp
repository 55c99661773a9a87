// Outcomes (outcome.h): each built-in's labels and matching, bad input as
// anchors::Error, PCRE2 on texts that overflow std::regex, relabelling.
#include "anchors/core/outcome.h"

#include <gtest/gtest.h>

#include <string>

#include "anchors/core/answers.h"
#include "anchors/core/error.h"
#include "anchors/core/rollouts.h"

namespace anchors {
namespace {

TEST(Outcome, BoxedAnswerIsTheLibrarysAnswerLogic) {
  BoxedAnswer o;
  EXPECT_EQ(o.name(), "boxed");
  EXPECT_EQ(o.label("so \\boxed{\\frac{1}{2}} it is"), std::optional<std::string>("\\frac{1}{2}"));
  EXPECT_EQ(o.label("no answer here"), std::nullopt);
  EXPECT_TRUE(o.matches("0.5", "\\frac12"));
  EXPECT_FALSE(o.matches("0.6", "\\frac12"));
  EXPECT_EQ(o.distribution_key("\\dfrac{1}{2}"), normalize_answer("\\dfrac{1}{2}"));
  // A forced rollout's label reads the stub's opening brace.
  EXPECT_EQ(o.label(o.forced_stub() + "42} because"), std::optional<std::string>("42"));
  EXPECT_EQ(o.forced_stub(), std::string(kForcedAnswerStub));
}

TEST(Outcome, RegexTakesTheGroupOfTheLastMatch) {
  RegexOutcome o("VERDICT: (yes|no)");
  EXPECT_EQ(o.name(), "regex:VERDICT: (yes|no)");
  EXPECT_EQ(o.label("VERDICT: yes ... on reflection VERDICT: no."), std::optional<std::string>("no"));
  EXPECT_EQ(o.label("VERDICT: maybe"), std::nullopt);
  EXPECT_TRUE(o.matches(" no ", "no"));
  EXPECT_FALSE(o.matches("No", "no"));
  RegexOutcomeOptions ci;
  ci.ignore_case_labels = true;
  RegexOutcome loose("(?i)verdict: (yes|no)", ci);
  EXPECT_EQ(loose.label("Verdict: NO"), std::optional<std::string>("NO"));
  EXPECT_TRUE(loose.matches("NO", "no"));
  EXPECT_EQ(loose.distribution_key("NO"), "no");
  // Group 0 is the whole match; an empty or non-participating group is skipped.
  RegexOutcomeOptions whole;
  whole.group = 0;
  EXPECT_EQ(RegexOutcome("\\d+", whole).label("a 12 b 345 c"), std::optional<std::string>("345"));
  EXPECT_EQ(RegexOutcome("x(\\d*)").label("x12 x"), std::optional<std::string>("12"));
  EXPECT_EQ(RegexOutcome("(a)|b").label("a b"), std::optional<std::string>("a"));
  // UTF-8 text and labels; \w is Unicode-aware, as in Python's re.
  EXPECT_EQ(RegexOutcome("→ (\\w+)").label("résultat → réponse"), std::optional<std::string>("réponse"));
}

TEST(Outcome, RegexBadInputIsAClearError) {
  try {
    RegexOutcome o("ANSWER: \\w+");
    FAIL() << "a pattern without a group";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no capture group"), std::string::npos) << e.what();
  }
  try {
    RegexOutcome o("(unclosed");
    FAIL() << "a pattern that does not compile";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not compile"), std::string::npos) << e.what();
  }
  RegexOutcomeOptions g2;
  g2.group = 2;
  EXPECT_THROW(RegexOutcome("(a)", g2), Error);
  RegexOutcomeOptions negative;
  negative.group = -1;
  EXPECT_THROW(RegexOutcome("(a)", negative), Error);
  EXPECT_THROW(RegexOutcome(""), Error);
}

TEST(Outcome, RegexOnLongTextsNeitherCrashesNorHangs) {
  // std::regex recurses per character: "(.*)answer" on 200 kB overflows its stack.
  const std::string text = std::string(2'000'000, 'x') + " answer";
  EXPECT_EQ(RegexOutcome("(.*) answer").label(text), std::optional<std::string>(std::string(2'000'000, 'x')));
  // Catastrophic backtracking hits the match limit: an error naming the pattern.
  RegexOutcomeOptions small;
  small.match_limit = 100000;
  try {
    // (PCRE2 skips subjects without the required "y", so the text has one.)
    RegexOutcome("(x+x+)+y", small).label(std::string(40, 'x') + "z y");
    FAIL() << "expected the match limit";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(x+x+)+y"), std::string::npos) << e.what();
  }
  // Invalid UTF-8 in a rollout is matched around, not an error.
  EXPECT_EQ(RegexOutcome("=(\\d)").label("\xff\xfe =7"), std::optional<std::string>("7"));
}

TEST(Outcome, MultipleChoiceReadsBoxedThenStatedAnswers) {
  MultipleChoice o("ABCD");
  EXPECT_EQ(o.name(), "choice:ABCD");
  EXPECT_EQ(o.label("I think (A) at first... so the answer is (C)."), std::optional<std::string>("C"));
  EXPECT_EQ(o.label("Answer: B"), std::optional<std::string>("B"));
  EXPECT_EQ(o.label("**Answer:** D"), std::optional<std::string>("D"));
  EXPECT_EQ(o.label("answer is **D**"), std::optional<std::string>("D"));
  EXPECT_EQ(o.label("\\boxed{b} though the answer is A"), std::optional<std::string>("B"));
  // "a" in running text is not choice A; "E" is not a choice.
  EXPECT_EQ(o.label("the answer is a prime number"), std::nullopt);
  EXPECT_EQ(o.label("the answer is E"), std::nullopt);
  EXPECT_EQ(o.label("the answer is Bob"), std::nullopt);
  EXPECT_TRUE(o.matches("C", "(c)"));
  EXPECT_FALSE(o.matches("C", "D"));
  EXPECT_EQ(o.label(o.forced_stub() + "B) since"), std::optional<std::string>("B"));
  EXPECT_THROW(MultipleChoice(""), Error);
  EXPECT_THROW(MultipleChoice("ABA"), Error);
  EXPECT_THROW(MultipleChoice("A B"), Error);
}

TEST(Outcome, SpecsNameEveryKindAndRejectTheRest) {
  EXPECT_EQ(outcome_from_spec("boxed")->name(), "boxed");
  EXPECT_EQ(outcome_from_spec("regex:=(\\d+)")->name(), "regex:=(\\d+)");
  EXPECT_EQ(outcome_from_spec("choice:XYZ")->name(), "choice:XYZ");
  EXPECT_THROW(outcome_from_spec("judge:http://127.0.0.1:1"), Error);  // needs anchors::anchors
  EXPECT_THROW(outcome_from_spec("bogus"), Error);
  EXPECT_THROW(outcome_from_spec("regex:no group"), Error);
}

TEST(Outcome, RelabelReadsEveryRolloutAgain) {
  ProblemRollouts p;
  p.problem.gt_answer = "yes";
  p.base_solution.solution = "VERDICT: yes";
  Rollout a, b, c;
  a.rollout = "VERDICT: yes";
  b.rollout = "VERDICT: no";
  c.rollout = "nothing";
  SentenceRollouts s;
  s.present = true;
  s.rollouts = {a, b, c};
  p.resampled = {s};
  SentenceRollouts f;
  f.present = true;
  Rollout forced;
  forced.rollout = "no";  // continues "VERDICT: " (the outcome's stub below)
  f.rollouts = {forced};
  p.forced = {f};
  RegexOutcomeOptions o;
  o.forced_stub = "VERDICT: ";
  relabel_rollouts(p, RegexOutcome("VERDICT: (yes|no)", o));
  const auto& r = p.resampled[0].rollouts;
  EXPECT_EQ(r[0].answer, "yes");
  EXPECT_EQ(r[0].is_correct, std::optional<bool>(true));
  EXPECT_EQ(r[1].answer, "no");
  EXPECT_EQ(r[1].is_correct, std::optional<bool>(false));
  EXPECT_EQ(r[2].answer, "");
  EXPECT_EQ(r[2].is_correct, std::optional<bool>(false));
  EXPECT_EQ(p.forced[0].rollouts[0].answer, "no");
  EXPECT_EQ(p.base_solution.answer, "yes");
  EXPECT_EQ(p.base_solution.is_correct, std::optional<bool>(true));
  // Without a target nothing is correct or incorrect.
  p.problem.gt_answer.clear();
  relabel_rollouts(p, RegexOutcome("VERDICT: (yes|no)"));
  EXPECT_EQ(p.resampled[0].rollouts[0].is_correct, std::nullopt);
}

}  // namespace
}  // namespace anchors
