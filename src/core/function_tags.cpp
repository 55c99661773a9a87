#include "anchors/core/function_tags.h"

#include "anchors/core/error.h"
#include "anchors/core/learned_tagger.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>

namespace anchors {

namespace {

using Phrases = std::initializer_list<std::string_view>;

constexpr std::string_view kSetup = "problem_setup";
constexpr std::string_view kPlan = "plan_generation";
constexpr std::string_view kFact = "fact_retrieval";
constexpr std::string_view kCompute = "active_computation";
constexpr std::string_view kConsolidate = "result_consolidation";
constexpr std::string_view kUncertain = "uncertainty_management";
constexpr std::string_view kCheck = "self_checking";
constexpr std::string_view kFinal = "final_answer_emission";
constexpr std::string_view kUnknown = "unknown";

// -------------------------------------------------------------- text helpers

bool word_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 || c == '_';
}
bool ascii_digit(char c) { return c >= '0' && c <= '9'; }
bool ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

// Lowercase ASCII, runs of whitespace -> one space, stripped; typographic
// apostrophes (U+2019) -> ' so "Let’s" matches "let's".
std::string normalise(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (space(c)) {
      if (!out.empty() && out.back() != ' ') out += ' ';
      continue;
    }
    if (text.compare(i, 3, "\xE2\x80\x99") == 0) {
      out += '\'';
      i += 2;
      continue;
    }
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// `phrase` occurs in `low` as whole words: an alphanumeric first (last)
// character of the phrase must not continue a word before (after) it. A
// trailing '*' makes the phrase a stem ("confus*" matches "confusing").
bool has(std::string_view low, std::string_view phrase) {
  const bool stem = !phrase.empty() && phrase.back() == '*';
  if (stem) phrase.remove_suffix(1);
  if (phrase.empty()) return false;
  for (std::size_t at = low.find(phrase); at != std::string_view::npos; at = low.find(phrase, at + 1)) {
    const bool left = at == 0 || !word_char(low[at - 1]) || !word_char(phrase.front());
    const std::size_t end = at + phrase.size();
    const bool right = stem || end == low.size() || !word_char(low[end]) || !word_char(phrase.back());
    if (left && right) return true;
  }
  return false;
}

bool has_any(std::string_view low, Phrases phrases) {
  return std::any_of(phrases.begin(), phrases.end(), [&](std::string_view p) { return has(low, p); });
}

bool starts_with_any(std::string_view low, Phrases phrases) {
  for (std::string_view p : phrases) {
    if (low.substr(0, p.size()) != p) continue;
    if (low.size() == p.size() || !word_char(low[p.size()]) || !word_char(p.back())) return true;
  }
  return false;
}

// Words of ASCII letters and apostrophes.
std::size_t count_words(std::string_view text, std::size_t min_length = 1, bool skip_latex = false) {
  std::size_t count = 0;
  for (std::size_t i = 0; i < text.size();) {
    if (skip_latex && text[i] == '\\') {  // \frac, \times: commands are not prose
      ++i;
      while (i < text.size() && ascii_letter(text[i])) ++i;
      continue;
    }
    if (ascii_letter(text[i]) || text[i] == '\'') {
      std::size_t j = i;
      while (j < text.size() && (ascii_letter(text[j]) || text[j] == '\'')) ++j;
      if (j - i >= min_length) ++count;
      i = j;
    } else {
      ++i;
    }
  }
  return count;
}

// Discourse markers a sentence may open with ("So, wait, ..."). The longest
// match is taken first so "okay" is not read as "ok".
constexpr std::array<std::string_view, 31> kLeadMarkers = {
    "another thing", "let me see", "let's see", "all right", "therefore", "a second", "actually", "alright",
    "finally", "again", "first", "hence", "hmmm", "okay", "right", "thus", "wait", "well", "also", "next",
    "then", "and", "but", "hmm", "now", "yes", "ok", "so", "oh", "ah", "no"};

struct Lead {
  std::set<std::string_view> markers;
  std::string_view rest;  // the sentence after them
  bool has(std::string_view m) const { return markers.count(m) != 0; }
};

Lead split_lead(std::string_view low) {
  Lead lead;
  std::string_view rest = low;
  for (bool changed = true; changed;) {
    changed = false;
    for (std::string_view m : kLeadMarkers) {
      if (rest.substr(0, m.size()) != m || (rest.size() > m.size() && word_char(rest[m.size()]))) continue;
      lead.markers.insert(m);
      rest.remove_prefix(m.size());
      // Punctuation after a marker: , ; : . ! - and the em dash.
      for (bool more = true; more && !rest.empty();) {
        more = false;
        if (std::string_view(" ,;:.!-").find(rest.front()) != std::string_view::npos) {
          rest.remove_prefix(1);
          more = true;
        } else if (rest.substr(0, 3) == "\xE2\x80\x94") {
          rest.remove_prefix(3);
          more = true;
        }
      }
      changed = true;
      break;
    }
  }
  lead.rest = rest;
  return lead;
}

// ---------------------------------------------------------- sentence shape

// An operator token at text[i]: its length in bytes, or 0.
std::size_t operator_at(std::string_view text, std::size_t i) {
  static constexpr std::array<std::string_view, 6> kMulti = {"\\times", "\\cdot", "\\div", "\xC3\x97" /* × */,
                                                             "\xC3\xB7" /* ÷ */, "\xC2\xB7" /* · */};
  if (std::string_view("-+*/^=").find(text[i]) != std::string_view::npos) return 1;
  for (std::string_view op : kMulti)
    if (text.compare(i, op.size(), op) == 0) return op.size();
  return 0;
}

struct Shape {
  std::size_t digits = 0;      // ASCII digits
  std::size_t operators = 0;   // + * / = ^ × ÷ ≈ · −, a spaced or numeric '-', \frac-like commands, '!'
  bool arithmetic = false;     // an operand, an operator and an operand: "3 * 12", "(a) + 1", "2 = \frac"
  bool numeric_equation = false;  // '=' next to a number or a command: "= 36", "4 =", "= \frac"
  std::size_t prose_words = 0; // words of 3+ letters outside LaTeX commands
  bool math_only = false;      // at most one prose word, and digits or operators
};

Shape shape_of(std::string_view t) {
  Shape s;
  const auto prev_nonspace = [&](std::size_t i) -> char {
    while (i > 0) {
      if (!space(t[i - 1])) return t[i - 1];
      --i;
    }
    return '\0';
  };
  const auto next_nonspace = [&](std::size_t i) -> char {
    while (i < t.size() && space(t[i])) ++i;
    return i < t.size() ? t[i] : '\0';
  };
  bool has_operator_char = false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (ascii_digit(c)) ++s.digits;
    if (std::string_view("+*/=^").find(c) != std::string_view::npos) {
      ++s.operators;
      has_operator_char = true;
    } else if (c == '-' && i > 0 && i + 1 < t.size() && (t[i - 1] == ' ' || t[i - 1] == '(' || ascii_digit(t[i - 1])) &&
               (t[i + 1] == ' ' || t[i + 1] == '(' || ascii_digit(t[i + 1]))) {
      ++s.operators;
    } else if (c == '!') {
      ++s.operators;
    }
    for (std::string_view u : {"\xC3\x97", "\xC3\xB7", "\xE2\x89\x88", "\xC2\xB7", "\xE2\x88\x92"})  // × ÷ ≈ · −
      if (t.compare(i, u.size(), u) == 0) {
        ++s.operators;
        has_operator_char = true;
      }
    for (std::string_view cmd : {"\\times", "\\cdot", "\\frac", "\\div", "\\sqrt", "\\binom", "\\prod", "\\sum"})
      if (t.compare(i, cmd.size(), cmd) == 0) ++s.operators;
    if (const std::size_t n = operator_at(t, i); n > 0 && !s.arithmetic) {
      const char before = prev_nonspace(i), after = next_nonspace(i + n);
      if ((ascii_digit(before) || before == ')' || before == '}') &&
          (ascii_digit(after) || after == '(' || after == '{' || after == '\\'))
        s.arithmetic = true;
    }
    if (c == '=' && !s.numeric_equation) {
      std::size_t j = i + 1;
      while (j < t.size() && space(t[j])) ++j;
      if (j < t.size() && t[j] == '-') ++j;
      if (j < t.size() && t[j] == '(') ++j;
      while (j < t.size() && space(t[j])) ++j;
      const char before = prev_nonspace(i);
      if ((j < t.size() && (ascii_digit(t[j]) || t[j] == '\\')) || ascii_digit(before) || before == ')')
        s.numeric_equation = true;
    }
  }
  s.prose_words = count_words(t, 3, /*skip_latex=*/true);
  s.math_only = s.prose_words <= 1 && (s.digits > 0 || has_operator_char || t.find('\\') != std::string_view::npos);
  return s;
}

// Content tokens for the comparison with the problem text: lowercase words
// of 4+ letters and digit runs, without function words and the words of the
// usual "solve this problem step by step" instruction.
std::set<std::string> content_tokens(std::string_view low) {
  static const std::set<std::string, std::less<>> kStop = {
      "about", "also", "answer", "been", "boxed", "could", "does", "done", "each", "final", "first", "from",
      "have", "here", "into", "just", "let's", "like", "made", "make", "math", "more", "must", "next", "okay",
      "only", "over", "problem", "should", "solution", "solve", "some", "step", "steps", "such", "than", "that",
      "their", "them", "then", "there", "they", "think", "this", "very", "wait", "well", "were", "what", "when",
      "where", "which", "while", "will", "with", "would", "your"};
  std::set<std::string> tokens;
  for (std::size_t i = 0; i < low.size();) {
    std::size_t j = i;
    if (ascii_letter(low[i])) {
      while (j < low.size() && ascii_letter(low[j])) ++j;
      if (j - i >= 4) {
        std::string w(low.substr(i, j - i));
        if (!kStop.count(w)) tokens.insert(std::move(w));
      }
    } else if (ascii_digit(low[i])) {
      while (j < low.size() && ascii_digit(low[j])) ++j;
      tokens.emplace(low.substr(i, j - i));
    } else {
      j = i + 1;
    }
    i = j;
  }
  return tokens;
}

// "A dozen is 12": words only, then a copula, then a number or formula.
bool word_subject_value(std::string_view rest) {
  for (std::string_view copula : {" is ", " are ", " has ", " have ", " equals "}) {
    const std::size_t at = rest.find(copula);
    if (at == std::string_view::npos || at == 0) continue;
    const std::string_view subject = rest.substr(0, at);
    if (!std::all_of(subject.begin(), subject.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == ' '; }))
      continue;
    const std::size_t v = at + copula.size();
    if (v < rest.size() && (ascii_digit(rest[v]) || rest[v] == '$' || rest[v] == '\\')) return true;
  }
  return false;
}

// -------------------------------------------------------------- cue phrases
// Each list is what a reasoning model writes when it does that thing; the
// lists are general (no sentence of the reference traces is spelled out).

const Phrases kFinalPhrases = {"final answer", "the answer is", "the answer should be", "answer is",
                                   "the answer:", "answer:", "value of the expression is",
                                   "value of the given expression is", "the result is therefore"};
// A stated answer that is still being weighed, not emitted.
const Phrases kAnswerHedges = {"should be", "confident", "thought", "initially", "earlier", "if"};
const Phrases kSetupPhrases = {"the problem is", "the problem says", "the problem asks", "the problem states",
                                   "the problem gives", "the problem wants", "the problem:", "the question is",
                                   "the question asks", "the question says", "we are given", "we're given",
                                   "i'm given", "we are asked", "i'm asked", "we're asked", "let me read",
                                   "read it again", "re-read", "reread", "restate", "rephrase"};
// Only before any plan or computation: "we need to find ..." restates the goal.
const Phrases kEarlySetupPhrases = {
    "problem statement", "i am given", "i am asked", "the problem here", "this problem where", "given that",
    "asks for", "asking for", "want to know", "wants to know", "need to figure out how", "we need to find",
    "i need to find", "we have to find", "i have to find", "we want to find", "find out how", "this math problem",
    "this problem"};
const Phrases kCheckOpen = {
    "let me check", "let's check", "let me verify", "let's verify", "let me double-check", "let me double check",
    "let's double-check", "let me re-check", "let me recheck", "let me confirm", "let's confirm",
    "let me go through", "let's go through", "let me recompute", "let me re-verify", "let me re-examine",
    "let me recalculate", "let me redo", "double-check", "double check", "to verify", "to check", "to confirm",
    "sanity check", "check my", "check the", "check that", "check if", "check whether", "verify that",
    "verify the", "verify this", "checking", "verifying", "let me plug", "plugging back", "plug it back",
    "plug back", "check:"};
// "check if it matches" announces a check; it does not report one.
const Phrases kCheckConditional = {"check if", "check whether", "verify if", "verify whether", "confirm if",
                                       "confirm whether"};
const Phrases kCheckConfirm = {
    "that's correct", "that is correct", "that's right", "that is right", "seems correct", "seems right",
    "looks correct", "looks right", "is correct", "was correct", "which matches", "that matches", "it matches",
    "matches", "confirms", "confirmed", "consistent", "checks out", "same result", "same answer", "both methods",
    "both approaches", "reassuring", "verified", "correct.", "yes, that", "yes that", "so yes", "so, yes", "yes,",
    "i think that's right", "which is exactly what", "exactly what i did", "that works", "is valid", "holds"};
const Phrases kRecall = {"i remember", "i recall", "recall", "remember that", "i know", "we know", "i notice",
                             "notice that", "it's known", "it is known", "is known", "known that", "well-known",
                             "by definition", "is defined", "defined as"};
const Phrases kRecheckDoubt = {"make sure", "mistake", "let me think again"};
const Phrases kDoubt = {
    "confus*", "discrepanc*", "mistake", "messed up", "mess up", "which is correct", "which one is correct",
    "not sure", "unsure", "did i", "let me think again", "think again", "reconsider", "re-evaluate",
    "reevaluate", "make sure", "doesn't make sense", "does not make sense", "contradict*", "that can't be",
    "can't be right", "something's wrong", "something is wrong", "why is there", "why did i",
    "that's not correct", "that's not right", "is that right", "is that correct", "is that always", "am i",
    "i'm not", "i might have", "i may have", "i must have", "maybe i made", "perhaps i made", "wrong",
    "incorrect", "complicate*", "stick with", "hold on", "a lot of", "tricky", "or not", "i don't have", "can't",
    "cannot"};
const Phrases kCorrection = {"not", "no", "actually", "instead", "rather", "perhaps i should"};
const Phrases kNewDirection = {"alternatively", "another way", "another approach", "another method",
                                   "a different approach", "different method", "instead", "let me think",
                                   "let's think"};
const Phrases kIntent = {"let me compute", "let's compute", "let me calculate", "let's calculate",
                             "let me find", "let's find", "let me determine", "let's determine",
                             "let me work out", "let's work out", "i need to compute", "i need to calculate",
                             "we need to compute", "we need to calculate", "i need to find", "we need to find",
                             "let me evaluate", "let's evaluate"};
const Phrases kDeictic = {"that", "this", "it", "them", "these"};
const Phrases kPlanPhrases = {
    "let me try", "let's try", "let me think", "let's think", "let me see if", "let's see if", "let me figure",
    "let's figure", "figure this out", "figure out", "let me start", "let's start", "let me break",
    "let's break", "break it down", "break this down", "let me approach", "let me consider", "let's consider",
    "i need to", "i have to", "i should", "we need to", "we have to", "we should", "i will", "i'll", "we will",
    "we'll", "maybe i can", "perhaps i can", "maybe we can", "perhaps we can", "i can use", "i could use",
    "we can use", "i can treat", "i can just", "i can calculate", "i can compute", "i can express",
    "i can model", "i can find", "i can relate", "i can estimate", "i can fix", "another way", "another approach",
    "another method", "different approach", "approach", "strategy", "plan", "step by step", "the next step",
    "the final step", "the first step", "step is to", "to do this", "to find", "to get", "to compute",
    "to calculate", "to solve", "to determine", "moving one", "moving on", "starting from", "starting with",
    "start from", "start with", "let me write down", "let's label", "let me label", "let's set up",
    "let me set up", "let me convert", "the idea is", "idea", "how to", "work from", "working from", "start by",
    "starting by", "then subtract", "then add", "then multiply", "then divide", "first find", "first compute",
    "first, i will", "first, i need", "first, we need"};
const Phrases kFactPhrases = {"well known", "the formula", "formula", "definition", "theorem", "identity",
                                  "the rule", "rule", "property", "in general", "for any", "general solution",
                                  "corresponds to", "correspond to"};
const Phrases kFactWeak = {"represents", "represent", "maps to", "maps directly", "denotes", "is called",
                               "means that", "there are", "there is", "a dozen", "dozen", "per", "each", "every",
                               "always", "generally", "usually", "typically", "when you", "if you", "you can",
                               "you don't", "you have", "is the same as", "relation", "relates to", "related to"};
const Phrases kSummary = {"putting it all together", "putting them together", "putting this together",
                              "put together", "to summarize", "in summary", "summarize", "so far", "overall",
                              "altogether", "in total", "in all", "in other words", "this means", "that means",
                              "which means", "so we have", "we have", "we get", "which gives", "gives us",
                              "we found"};
const Phrases kCopula = {"is", "are", "has", "have", "equal*", "gives", "get", "becomes", "be", "was", "were",
                             "it's", "that's", "there's", "what's"};
const Phrases kConclusiveStart = {"that's", "that is", "which is", "this is", "it's", "putting", "adding"};
const Phrases kComputeWords = {
    "compute*", "calculat*", "multiply", "multiplying", "multiplied", "multiplication", "subtract*", "add",
    "adding", "divid*", "simplif*", "substitut*", "plug*", "expand*", "evaluat*", "solv*", "factor out",
    "factoring", "factorize", "carry over", "carry", "write down", "let me count", "let's count", "count the",
    "counting", "convert*", "cancel*", "goes into", "times", "plus", "minus", "squared", "cubed", "sum of",
    "product of", "difference", "quotient", "remainder", "work out", "rewrite", "rearrang*", "becomes",
    "would be", "write out", "let's write", "let me write", "let me do", "let's do"};

bool is_step(std::string_view tag) {
  return !tag.empty() && tag != kUncertain && tag != kFinal && tag != kUnknown && tag != kCheck;
}

// The rules, in order; the first that applies decides. `c` is read for the
// context and updated for the check block; tag_sentence records the rest.
FunctionTagDecision decide(std::string_view text, FunctionTagContext& c, const FunctionTaggerOptions& options) {
  const std::string low = normalise(text);
  const Lead lead = split_lead(low);
  const Shape shape = shape_of(text);
  const std::size_t words = count_words(text);
  const bool question = !low.empty() && low.back() == '?';
  const bool wait = lead.has("wait");
  const bool conclusive_lead = lead.has("so") || lead.has("therefore") || lead.has("thus") || lead.has("hence");
  const bool done_something = c.computed || c.consolidated;
  const auto result = [](std::string_view tag, const char* rule) {
    return FunctionTagDecision{std::string(tag), rule};
  };
  const auto open_check = [&](bool open) {
    c.in_check = open && options.max_check_block > 0;
    c.check_length = 0;
  };

  // -- final answer: \boxed, "**Final Answer**", "the answer is X", or the
  // last sentence concluding with a value when no answer was given yet.
  if (text.find("\\boxed") != std::string_view::npos || low.rfind("**final answer", 0) == 0) {
    open_check(false);
    return result(kFinal, "boxed");
  }
  if (c.trace_size > 0 && c.position + 1 == c.trace_size && !c.answered && shape.digits > 0 && !question &&
      (conclusive_lead || has(low, "answer"))) {
    open_check(false);
    return result(kFinal, "last-conclusion");
  }
  if (has_any(low, kFinalPhrases) && !question && !wait && !has_any(low, kAnswerHedges)) {
    open_check(false);
    return result(kFinal, "answer-phrase");
  }

  // -- problem setup: the problem restated (with its equations), the first sentence.
  if (has_any(low, kSetupPhrases)) return result(kSetup, "setup-phrase");
  if (c.position == 0 && !shape.arithmetic) return result(kSetup, "first");
  if (!c.computed && !c.planned && has_any(low, kEarlySetupPhrases)) return result(kSetup, "early-setup");

  // -- "Wait, but ..." doubts what came before (and may start re-checking it).
  if ((wait && lead.has("but")) || low.rfind("but wait", 0) == 0 || low.rfind("but hold on", 0) == 0) {
    if (!has_any(lead.rest, kRecall)) {
      open_check(done_something && (has_any(low, kCheckOpen) || has_any(low, {"make sure", "verify", "again"})));
      return result(kUncertain, "wait-but");
    }
  }

  // -- self checking: a verification announced, or one reported back.
  bool confirm = (has_any(low, kCheckConfirm) || starts_with_any(low, {"correct", "yes"})) && !question &&
                 words <= 25 && shape.operators < 4;
  if (has_any(low, kCheckOpen)) {
    if (has_any(low, kCheckConditional)) confirm = false;
    // "Let me check: 36 - 12 = 24, which matches." is a whole check.
    open_check(!confirm && done_something);
    return result(kCheck, "check-open");
  }
  if (confirm && !wait) {
    const bool was_checking = c.in_check;
    open_check(false);
    if (was_checking || words <= 12) return result(kCheck, "confirm");
  }

  // -- recalling a fact wins over the hedges around it ("I remember ..., but I'm not sure").
  if (has_any(low, kRecall)) {
    open_check(false);
    return result(kFact, "recall");
  }

  // -- uncertainty: "Hmm.", doubt, questions, a "Wait" that corrects.
  if ((lead.has("hmm") || lead.has("hmmm")) && count_words(lead.rest) <= 3) return result(kUncertain, "hmm");
  if (has_any(low, kRecheckDoubt) && !shape.arithmetic) {
    open_check(true);
    return result(kUncertain, "make-sure");
  }
  if (!c.in_check && !shape.arithmetic && has_any(low, kDoubt)) return result(kUncertain, "doubt");
  if (!c.in_check && question && !shape.arithmetic && shape.digits == 0) return result(kUncertain, "question");
  if (!c.in_check && wait &&
      (lead.has("actually") || lead.has("no") || has_any(lead.rest, kCorrection) || question))
    return result(kUncertain, "wait-correction");

  // -- inside a check block everything is part of the check, until a new approach.
  if (c.in_check && ++c.check_length > options.max_check_block) open_check(false);
  if (c.in_check) {
    if (!has_any(low, kNewDirection)) return result(kCheck, "check-block");
    open_check(false);
  }

  // -- math that continues the sentence before: "we know that:" + formula.
  if (shape.math_only && !c.previous_text.empty()) {
    const Shape before = shape_of(c.previous_text);
    const bool colon = c.previous_text.back() == ':' &&
                       (c.previous_tag == kFact || c.previous_tag == kConsolidate || c.previous_tag == kSetup ||
                        c.previous_tag == kCheck);
    const bool formula = c.previous_tag == kFact && (before.arithmetic || before.numeric_equation);
    if (colon || formula) return result(c.previous_tag, "continuation");
  }

  // -- plan: an intention ("let me compute the total"), a strategy, an alternative.
  if (has_any(low, kIntent) && !shape.numeric_equation && shape.digits == 0 && !has_any(low, kDeictic))
    return result(kPlan, "intent");
  if (starts_with_any(low, {"alternatively"})) return result(kPlan, "alternatively");
  const bool worked_equation = shape.arithmetic && shape.numeric_equation;
  if (has_any(low, kPlanPhrases) && !worked_equation) return result(kPlan, "plan-phrase");

  // -- fact: formulas, definitions, rules.
  if (has_any(low, kFactPhrases) && !worked_equation) return result(kFact, "fact-phrase");

  // -- a prose sentence made of the problem's own words.
  if (options.use_problem_text && !c.problem.empty() && !shape.arithmetic) {
    const auto tokens = content_tokens(low);
    const std::size_t word_tokens =
        std::count_if(tokens.begin(), tokens.end(), [](const std::string& t) { return !ascii_digit(t[0]); });
    if (tokens.size() >= 4 && word_tokens >= 2) {
      const auto problem_tokens = content_tokens(normalise(c.problem));
      const std::size_t shared = std::count_if(tokens.begin(), tokens.end(),
                                               [&](const std::string& t) { return problem_tokens.count(t) != 0; });
      if (4 * shared >= 3 * tokens.size())
        return !c.computed && !c.planned ? result(kSetup, "problem-overlap") : result(kFact, "problem-detail");
    }
  }

  // -- consolidation: a summary, or "So, <something> is <value>" without arithmetic.
  if (has_any(low, kSummary) && !shape.arithmetic) return result(kConsolidate, "summary-phrase");
  const bool conclusive = conclusive_lead || starts_with_any(lead.rest, kConclusiveStart);
  if (conclusive && !shape.arithmetic && has_any(low, kCopula) && low.back() != ':')
    return result(kConsolidate, "conclusion");

  // -- computation: arithmetic, an equation, or a short "compute/simplify ..." step.
  if (shape.arithmetic || shape.numeric_equation || shape.operators >= 2 ||
      (words <= 12 && has_any(low, kComputeWords)))
    return result(kCompute, "math");

  // -- still restating the problem: nothing planned or computed yet.
  if (!c.computed && !c.planned && c.last_step_tag == kSetup) return result(kSetup, "setup-continues");

  // -- weaker fact cues, "A dozen is 12".
  if (has_any(low, kFactWeak) || word_subject_value(lead.rest)) return result(kFact, "fact-weak");

  if (options.inherit_when_no_cue && !c.last_step_tag.empty()) return result(c.last_step_tag, "inherit");
  return result(kUnknown, "none");
}

}  // namespace

const std::vector<std::string>& function_tag_names() {
  static const std::vector<std::string> names = {
      std::string(kSetup),      std::string(kPlan),      std::string(kFact),
      std::string(kCompute),    std::string(kConsolidate), std::string(kUncertain),
      std::string(kCheck),      std::string(kFinal),     std::string(kUnknown)};
  return names;
}

bool is_function_tag(std::string_view name) {
  const auto& names = function_tag_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

FunctionTagDecision tag_sentence(std::string_view sentence, FunctionTagContext& context,
                                 const FunctionTaggerOptions& options) {
  FunctionTagDecision d = decide(sentence, context, options);
  if (d.tag == kCompute) context.computed = true;
  if (d.tag == kPlan) context.planned = true;
  if (d.tag == kConsolidate) context.consolidated = true;
  if (d.tag == kFinal) context.answered = true;
  if (is_step(d.tag)) context.last_step_tag = d.tag;
  context.previous_text = std::string(sentence);
  while (!context.previous_text.empty() && space(context.previous_text.back())) context.previous_text.pop_back();
  context.previous_tag = d.tag;
  ++context.position;
  return d;
}

std::vector<FunctionTagDecision> tag_trace(Trace& trace, const FunctionTaggerOptions& options) {
  FunctionTagContext context;
  context.trace_size = trace.sentences.size();
  if (options.use_problem_text) {
    const auto it = trace.metadata.find("problem");
    context.problem = it != trace.metadata.end() && !it->second.empty() ? it->second : trace.prompt;
  }
  std::vector<FunctionTagDecision> decisions;
  decisions.reserve(trace.sentences.size());
  for (Sentence& s : trace.sentences) {
    decisions.push_back(tag_sentence(s.text, context, options));
    s.tags = {decisions.back().tag};
  }
  return decisions;
}

const std::vector<std::string>& function_tag_methods() {
  static const std::vector<std::string> methods = {"learned", "rules"};
  return methods;
}

std::vector<FunctionTagDecision> tag_functions(Trace& trace, std::string_view method,
                                               const FunctionTaggerOptions& rules_options) {
  if (method == "learned") return tag_trace_learned(trace);
  if (method == "rules") return tag_trace(trace, rules_options);
  throw Error("unknown function tagging method '" + std::string(method) + "' (learned, rules)");
}

}  // namespace anchors
