#pragma once
// Function tags: what each sentence of a reasoning trace is doing, in the
// paper's taxonomy (docs/design.md §3 "Function tags"; docs/function-tags.md has
// the rules in words and how well they agree with the authors' labels).
//
// The authors labelled sentences with an LLM. This is a rule-based tagger
// instead: cue phrases ("Wait", "Let me check", "I remember", "So, the total
// is"), the shape of the sentence (arithmetic, an equation, a question, a
// trailing colon, \boxed) and a little context (position in the trace, the
// previous sentence, whether a verification is under way). It needs no model
// and gives the same tags every time; rollout/chat_labeler.h labels with a
// chat model when that is wanted instead.
//
//   anchors::Trace trace = ...;              // sentences from split_sentences
//   anchors::tag_trace(trace);               // one tag per sentence in Sentence::tags
//
// tag_trace is always the rules. learned_tagger.h has a learned tagger
// (logistic regression over lexical, neighbour, position and rule features)
// that agrees better with the authors' labels on traces the rules were not
// written against; tag_functions(trace, method) chooses between the two and
// uses the learned one by default.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "anchors/core/trace.h"

namespace anchors {

// The eight categories of the paper in docs/design.md §3 order, then "unknown":
// problem_setup, plan_generation, fact_retrieval, active_computation,
// result_consolidation, uncertainty_management, self_checking,
// final_answer_emission, unknown.
const std::vector<std::string>& function_tag_names();

// True when `name` is one of function_tag_names() (exact spelling).
bool is_function_tag(std::string_view name);

struct FunctionTaggerOptions {
  // A verification cue ("let me check", "let me go through each step again")
  // after something has been computed opens a check block: the sentences that
  // follow are self_checking (the recomputation is part of the check) until a
  // confirmation ("that's correct"), an expression of doubt, a new approach,
  // the final answer, or this many sentences. The cap keeps a check that never
  // reports back from swallowing the rest of the trace. 0: no block (only the
  // cue sentence is self_checking).
  std::size_t max_check_block = 30;
  // A sentence with no cue of its own continues the step before it and takes
  // the tag of the latest sentence that was a step (not a doubt, a check or the
  // answer). Off: such sentences are "unknown".
  bool inherit_when_no_cue = true;
  // Compare sentences with the problem text (Trace::metadata "problem", else
  // Trace::prompt): a prose sentence whose words mostly come from the problem
  // restates it (problem_setup before any plan or computation, fact_retrieval
  // after).
  bool use_problem_text = true;
};

// The running state of a walk through one trace. tag_trace builds one; to
// tag sentences one at a time (e.g. while a trace is being generated), start
// from a default context with trace_size and problem set, and pass every
// sentence in order to tag_sentence.
struct FunctionTagContext {
  std::size_t position = 0;     // index of the next sentence to tag
  std::size_t trace_size = 0;   // sentences in the trace; 0 = unknown (the last-sentence rule is off)
  std::string problem;          // problem text ("" = none)
  std::string previous_text;    // the sentence before `position` ("" for the first)
  std::string previous_tag;     // its tag
  std::string last_step_tag;    // latest tag that was a step (not doubt, check, answer or unknown)
  bool computed = false;        // some earlier sentence was active_computation
  bool planned = false;         // ... plan_generation
  bool consolidated = false;    // ... result_consolidation
  bool answered = false;        // ... final_answer_emission
  bool in_check = false;        // a check block is open (see FunctionTaggerOptions)
  std::size_t check_length = 0; // sentences since it opened
};

// A tag and the name of the rule that chose it (the names are listed in
// docs/function-tags.md; they explain a tag, e.g. the "rule" field of `anchors tag`).
struct FunctionTagDecision {
  std::string tag;
  std::string rule;
  bool operator==(const FunctionTagDecision& o) const { return tag == o.tag && rule == o.rule; }
};

// Tags the sentence at context.position and advances `context` past it.
// Never throws; any bytes are accepted (cue matching is ASCII-case-insensitive).
FunctionTagDecision tag_sentence(std::string_view sentence, FunctionTagContext& context,
                                 const FunctionTaggerOptions& options = {});

// Replaces every sentence's tags with exactly one function tag, in order,
// and returns the decisions (one per sentence). The problem text is
// metadata["problem"] when present, else the prompt.
std::vector<FunctionTagDecision> tag_trace(Trace& trace, const FunctionTaggerOptions& options = {});

// The tagging methods tag_functions accepts: "learned" (the default), "rules".
const std::vector<std::string>& function_tag_methods();

// Tags every sentence with one function tag by `method`: "learned" is
// tag_trace_learned(trace) with the built-in model (learned_tagger.h; every
// decision's rule is "learned", `rules_options` are not used: the model was
// trained with the rules' defaults), "rules" is tag_trace(trace, rules_options).
// anchors::Error "unknown function tagging method '<m>' (learned, rules)" for
// any other name (the trace is then unchanged).
std::vector<FunctionTagDecision> tag_functions(Trace& trace, std::string_view method = "learned",
                                               const FunctionTaggerOptions& rules_options = {});

}  // namespace anchors
