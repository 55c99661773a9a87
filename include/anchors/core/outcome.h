#pragma once
// What a rollout ended in (docs/outcomes.md). The black-box engine reads every
// rollout's text through one Outcome: its label (the "answer" field of the
// rollout record) and whether that label matches the problem's target (the
// record's "is_correct"). Accuracy, the KL over labels and the log-odds metrics
// (resampling_metrics.h) are then the same for every kind of outcome.
//
//   anchors::BoxedAnswer boxed;                        // \boxed{...} math answers (the default)
//   boxed.label("so \\boxed{12}.");                    // "12"
//   anchors::RegexOutcome verdict("VERDICT: (yes|no)"); // the last match's group 1
//   anchors::MultipleChoice choice("ABCD");            // "the answer is (C)" -> "C"
//   auto o = anchors::outcome_from_spec("regex:ANSWER=(\\d+)");   // as the CLI's --outcome
//
// A judge through an OpenAI-compatible chat endpoint (rollout::ChatJudge) and
// outcomes written in Python (ta.Outcome subclasses, ta.FunctionOutcome) are
// Outcomes too. Implementations must be safe to call from several threads.
//
// Plain C++17: no LibTorch. Regular expressions are PCRE2 (Perl syntax, UTF-8,
// \w and \d Unicode-aware as in Python's re, backtracking on the heap with a
// match limit), never std::regex, whose
// recursion overflows the stack on long texts.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace anchors {

struct ProblemRollouts;

// What Outcome::classify read from one text.
struct OutcomeLabel {
  std::optional<std::string> label;  // nullopt: no outcome (counted like a rollout without an answer)
  // The evidence worth keeping beside the label, e.g. a judge's verbatim
  // answer; "" for outcomes that read the text directly. Stored in the
  // rollout record as "outcome_raw".
  std::string raw;
};

class Outcome {
 public:
  virtual ~Outcome() = default;
  // How results and the CLI name it: "boxed", "regex:PATTERN", "choice:ABCD",
  // "judge:URL", or a Python outcome's name.
  virtual std::string name() const = 0;
  // The label of `text` (a rollout, or forced_stub() + a forced rollout), or
  // nullopt when the text has none.
  virtual std::optional<std::string> label(const std::string& text) const = 0;
  // Whether `label` counts as the target (the problem's gt_answer or a
  // scenario's target label). Default: equal strings.
  virtual bool matches(const std::string& label, const std::string& target) const;
  // label() with its evidence; what the engine calls. Default: {label(text), ""}.
  virtual OutcomeLabel classify(const std::string& text) const;
  // The key under which a label is counted in the label distribution (the KL
  // metrics). Default: the label itself.
  virtual std::string distribution_key(const std::string& label) const;
  // Appended to a prefix to make the model state its outcome at once (the
  // forced-answer rollouts); such a rollout's label is label(forced_stub() + completion).
  virtual std::string forced_stub() const;
};

// The text after which forced-answer rollouts continue for \boxed{} answers,
// as the reference generate_rollouts.py writes it (including its "answers" typo).
inline constexpr const char* kForcedAnswerStub = "\n</think>\n\nTherefore, the final answers is \\boxed{";
// The default stub of the other outcomes: the end of the reasoning.
inline constexpr const char* kEndOfThinkingStub = "\n</think>\n\n";

// \boxed{} answers, the library's default: label = extract_boxed(text),
// matches = answers_equivalent, distribution key = normalize_answer (as the
// paper's KL), forced stub = kForcedAnswerStub.
class BoxedAnswer : public Outcome {
 public:
  std::string name() const override { return "boxed"; }
  std::optional<std::string> label(const std::string& text) const override;
  bool matches(const std::string& label, const std::string& target) const override;
  std::string distribution_key(const std::string& label) const override;
  std::string forced_stub() const override { return kForcedAnswerStub; }
};

struct RegexOutcomeOptions {
  // The capture group whose text is the label; 0 = the whole match.
  int group = 1;
  // Compare labels and targets ignoring ASCII case (and count them lowercased).
  bool ignore_case_labels = false;
  std::string forced_stub = kEndOfThinkingStub;
  // PCRE2 match limit per search (backtracking steps); exceeding it is an
  // anchors::Error naming the pattern, never a hang.
  std::uint32_t match_limit = 10'000'000;
};

// The label is capture group `group` of the *last* match of `pattern` in the
// text (a final answer comes last; earlier matches are drafts). A match whose
// group did not participate or is empty is skipped. anchors::Error for a
// pattern that does not compile (with PCRE2's message and offset), a group
// beyond the pattern's groups (e.g. group 1 of a pattern without a group), a
// negative group, and for a text on which the match limit is exceeded.
class RegexOutcome : public Outcome {
 public:
  explicit RegexOutcome(std::string pattern, RegexOutcomeOptions options = {});
  ~RegexOutcome() override;
  RegexOutcome(const RegexOutcome&) = delete;
  RegexOutcome& operator=(const RegexOutcome&) = delete;

  std::string name() const override { return "regex:" + pattern_; }
  std::optional<std::string> label(const std::string& text) const override;
  bool matches(const std::string& label, const std::string& target) const override;
  std::string distribution_key(const std::string& label) const override;
  std::string forced_stub() const override { return options_.forced_stub; }

  const std::string& pattern() const { return pattern_; }
  const RegexOutcomeOptions& options() const { return options_; }

 private:
  struct Compiled;
  std::string pattern_;
  RegexOutcomeOptions options_;
  std::unique_ptr<Compiled> compiled_;
};

// Multiple-choice answers: `choices` is a string of distinct letters or digits
// ("ABCD"). The label is the choice in the last "\boxed{C}", or else in the
// last "answer is C" / "answer: (C)" / "Answer - C" (case-insensitive,
// parentheses optional, the choice standing alone); upper-cased. Targets are
// compared ignoring case and surrounding parentheses. Forced stub:
// "\n</think>\n\nTherefore, the answer is (". anchors::Error for empty
// choices, repeated ones, or characters that are not ASCII letters or digits.
class MultipleChoice : public Outcome {
 public:
  explicit MultipleChoice(std::string choices = "ABCD");
  std::string name() const override { return "choice:" + choices_; }
  std::optional<std::string> label(const std::string& text) const override;
  bool matches(const std::string& label, const std::string& target) const override;
  std::string distribution_key(const std::string& label) const override;
  std::string forced_stub() const override;
  const std::string& choices() const { return choices_; }

 private:
  std::string choices_;
  std::shared_ptr<RegexOutcome> boxed_, stated_;
};

// An outcome from its command-line spelling: "boxed", "regex:PATTERN" (group 1),
// "choice:ABCD". anchors::Error for anything else — "judge:URL" included, which
// needs the HTTP client of anchors::anchors (rollout::outcome_from_spec).
std::shared_ptr<const Outcome> outcome_from_spec(const std::string& spec);

// Re-reads every rollout of `rollouts` with `outcome` (no new generation):
// answer = label (or ""), is_correct = matches(label, gt_answer) when the
// problem has a gt_answer (false without a label), else null; outcome_raw
// from classify. Forced rollouts are read as label(outcome.forced_stub() +
// rollout), which assumes they were generated after that stub. The base
// solution is re-read too.
void relabel_rollouts(ProblemRollouts& rollouts, const Outcome& outcome);

}  // namespace anchors
