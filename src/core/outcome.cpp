#include "anchors/core/outcome.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <set>

#include <fmt/format.h>

#include "anchors/core/answers.h"
#include "anchors/core/error.h"
#include "anchors/core/rollouts.h"

namespace anchors {
namespace {

std::string ascii_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string ascii_upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
  return n < 0 ? fmt::format("PCRE2 error {}", code) : std::string(reinterpret_cast<const char*>(buffer));
}

// A choice as it may be written: "(C)", " c ", "C." -> "C".
std::string bare_choice(const std::string& s) {
  std::string t = trim(s);
  while (!t.empty() && (t.front() == '(' || t.front() == '[')) t.erase(t.begin());
  while (!t.empty() && (t.back() == ')' || t.back() == ']' || t.back() == '.')) t.pop_back();
  return ascii_upper(trim(t));
}

}  // namespace

// ---------------------------------------------------------------------------
// Outcome defaults
// ---------------------------------------------------------------------------

bool Outcome::matches(const std::string& label, const std::string& target) const { return label == target; }

OutcomeLabel Outcome::classify(const std::string& text) const { return {label(text), {}}; }

std::string Outcome::distribution_key(const std::string& label) const { return label; }

std::string Outcome::forced_stub() const { return kEndOfThinkingStub; }

// ---------------------------------------------------------------------------
// BoxedAnswer
// ---------------------------------------------------------------------------

std::optional<std::string> BoxedAnswer::label(const std::string& text) const { return extract_boxed(text); }

bool BoxedAnswer::matches(const std::string& label, const std::string& target) const {
  return answers_equivalent(label, target);
}

std::string BoxedAnswer::distribution_key(const std::string& label) const { return normalize_answer(label); }

// ---------------------------------------------------------------------------
// RegexOutcome
// ---------------------------------------------------------------------------

struct RegexOutcome::Compiled {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  ~Compiled() {
    if (context) pcre2_match_context_free(context);
    if (code) pcre2_code_free(code);
  }
};

RegexOutcome::RegexOutcome(std::string pattern, RegexOutcomeOptions options)
    : pattern_(std::move(pattern)), options_(std::move(options)), compiled_(std::make_unique<Compiled>()) {
  if (pattern_.empty()) throw Error("regex outcome: the pattern is empty");
  if (options_.group < 0) throw Error(fmt::format("regex outcome: group must be >= 0, got {}", options_.group));
  if (options_.match_limit == 0) throw Error("regex outcome: match_limit must be > 0");
  int code = 0;
  PCRE2_SIZE offset = 0;
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern_.data()), pattern_.size(),
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &offset, nullptr);
  if (!compiled_->code)
    throw Error(fmt::format("regex outcome: the pattern \"{}\" does not compile: {} (at offset {})", pattern_,
                            pcre2_message(code), offset));
  std::uint32_t groups = 0;
  pcre2_pattern_info(compiled_->code, PCRE2_INFO_CAPTURECOUNT, &groups);
  if (static_cast<std::uint32_t>(options_.group) > groups)
    throw Error(groups == 0
                    ? fmt::format("regex outcome: the pattern \"{}\" has no capture group; put the label in "
                                  "parentheses, e.g. \"ANSWER: (\\w+)\" (or use group 0 for the whole match)",
                                  pattern_)
                    : fmt::format("regex outcome: group {} asked of the pattern \"{}\", which has {} group(s)",
                                  options_.group, pattern_, groups));
  compiled_->context = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(compiled_->context, options_.match_limit);
}

RegexOutcome::~RegexOutcome() = default;

std::optional<std::string> RegexOutcome::label(const std::string& text) const {
  // match data is per call: the compiled pattern is shared between threads.
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(compiled_->code, nullptr);
  if (!data) throw Error("regex outcome: out of memory");
  std::optional<std::string> last;
  PCRE2_SIZE start = 0;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::string failure;
  while (start <= text.size()) {
    const int rc = pcre2_match(compiled_->code, subject, text.size(), start, 0, data, compiled_->context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      failure = pcre2_message(rc);
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
    const auto g = static_cast<std::size_t>(options_.group);
    if (static_cast<std::size_t>(rc) > g && ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] > ov[2 * g])
      last = text.substr(ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
    // Continue after this match; an empty match advances one byte (PCRE2 with
    // PCRE2_MATCH_INVALID_UTF accepts any start offset).
    start = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
  }
  pcre2_match_data_free(data);
  if (!failure.empty())
    throw Error(fmt::format("regex outcome \"{}\": matching a text of {} bytes failed: {}", pattern_, text.size(),
                            failure));
  return last;
}

bool RegexOutcome::matches(const std::string& label, const std::string& target) const {
  return options_.ignore_case_labels ? ascii_lower(trim(label)) == ascii_lower(trim(target))
                                     : trim(label) == trim(target);
}

std::string RegexOutcome::distribution_key(const std::string& label) const {
  return options_.ignore_case_labels ? ascii_lower(trim(label)) : trim(label);
}

// ---------------------------------------------------------------------------
// MultipleChoice
// ---------------------------------------------------------------------------

MultipleChoice::MultipleChoice(std::string choices) : choices_(std::move(choices)) {
  if (choices_.empty()) throw Error("choice outcome: no choices (e.g. \"ABCD\")");
  std::set<char> seen;
  for (char c : choices_) {
    if (!std::isalnum(static_cast<unsigned char>(c)))
      throw Error(fmt::format("choice outcome: \"{}\": choices must be ASCII letters or digits", choices_));
    if (!seen.insert(static_cast<char>(std::toupper(static_cast<unsigned char>(c)))).second)
      throw Error(fmt::format("choice outcome: \"{}\" repeats '{}'", choices_, c));
  }
  // [ABCD] in a character class: letters and digits need no escaping.
  const std::string set = fmt::format("[{}{}]", ascii_upper(choices_), ascii_lower(choices_));
  RegexOutcomeOptions o;
  boxed_ = std::make_shared<RegexOutcome>(fmt::format(R"(\\boxed\{{\s*\(?({})\)?\s*\}})", set), o);
  // Outside \boxed{} only the choices as given count ("the answer is a
  // prime" must not read as choice A).
  stated_ = std::make_shared<RegexOutcome>(
      fmt::format(R"((?i:answer)(?:\s+(?i:is))?\s*[:\-]?\s*(?:\*\*)?\s*\(?([{}])(?![A-Za-z0-9]))", choices_), o);
}

std::optional<std::string> MultipleChoice::label(const std::string& text) const {
  auto found = boxed_->label(text);
  if (!found) found = stated_->label(text);
  if (!found) return std::nullopt;
  return ascii_upper(*found);
}

bool MultipleChoice::matches(const std::string& label, const std::string& target) const {
  return bare_choice(label) == bare_choice(target) && !bare_choice(label).empty();
}

std::string MultipleChoice::distribution_key(const std::string& label) const { return bare_choice(label); }

std::string MultipleChoice::forced_stub() const { return "\n</think>\n\nTherefore, the answer is ("; }

// ---------------------------------------------------------------------------
// Specs and relabelling
// ---------------------------------------------------------------------------

std::shared_ptr<const Outcome> outcome_from_spec(const std::string& spec) {
  if (spec == "boxed") return std::make_shared<BoxedAnswer>();
  if (spec.rfind("regex:", 0) == 0) return std::make_shared<RegexOutcome>(spec.substr(6));
  if (spec.rfind("choice:", 0) == 0) return std::make_shared<MultipleChoice>(spec.substr(7));
  if (spec == "choice") return std::make_shared<MultipleChoice>();
  if (spec.rfind("judge:", 0) == 0)
    throw Error(fmt::format("outcome \"{}\": a chat judge needs the HTTP client of anchors::anchors "
                            "(rollout::outcome_from_spec, or ta.ChatJudge in Python)",
                            spec));
  throw Error(fmt::format("unknown outcome \"{}\" (expected boxed, regex:PATTERN, choice:ABCD or judge:URL)", spec));
}

namespace {
void relabel(Rollout& r, const Outcome& outcome, const std::string& prefix, const std::string& gt) {
  const OutcomeLabel l = outcome.classify(prefix + r.rollout);
  r.answer = l.label.value_or("");
  r.outcome_raw = l.raw;
  if (gt.empty()) {
    r.is_correct.reset();
  } else {
    r.is_correct = l.label.has_value() && outcome.matches(*l.label, gt);
  }
}
}  // namespace

void relabel_rollouts(ProblemRollouts& rollouts, const Outcome& outcome) {
  const std::string& gt = rollouts.problem.gt_answer;
  for (auto& sentence : rollouts.resampled)
    for (auto& r : sentence.rollouts) relabel(r, outcome, "", gt);
  const std::string stub = outcome.forced_stub();
  for (auto& sentence : rollouts.forced)
    for (auto& r : sentence.rollouts) relabel(r, outcome, stub, gt);
  const OutcomeLabel base = outcome.classify(rollouts.base_solution.solution);
  rollouts.base_solution.answer = base.label.value_or("");
  if (gt.empty()) {
    rollouts.base_solution.is_correct.reset();
  } else {
    rollouts.base_solution.is_correct = base.label.has_value() && outcome.matches(*base.label, gt);
  }
}

}  // namespace anchors
