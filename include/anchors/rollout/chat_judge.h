#pragma once
// An Outcome decided by a chat model (outcome.h, docs/outcomes.md): each
// rollout's text goes to any OpenAI-compatible POST {base_url}/v1/chat/completions
// (vLLM, SGLang, llama.cpp's server, OpenAI) inside a prompt of the user's, and
// the model's answer is the label — e.g. "Did the assistant decide to contact
// the authorities? Answer yes or no."
//
//   anchors::rollout::ChatJudgeOptions o;
//   o.base_url = "http://127.0.0.1:8000";  o.model = "judge";
//   o.prompt = "Does this text end in blackmail? Answer yes or no.\n\n{text}";
//   o.labels = {"yes", "no"};
//   auto judge = std::make_shared<anchors::rollout::ChatJudge>(o);
//   options.outcome = judge;                       // AnalyzeOptions
//
// Label: the answer's content (after any <think>...</think> block), trimmed;
// with `labels`, the first of them that the answer starts with (ASCII case
// ignored, after stripping quotes, '*' and spaces), else no label. The
// verbatim answer is kept (OutcomeLabel::raw -> the record's "outcome_raw").
// Answers are cached per distinct text (identical rollouts cost one request).
// Connection errors, timeouts, 429 and 5xx are retried with the same
// full-jitter backoff as OpenAIProvider; a 4xx or a malformed answer is an
// anchors::Error naming the URL. Needs cpp-httplib (part of anchors::anchors).
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "anchors/core/outcome.h"

namespace anchors::rollout {

struct ChatJudgeOptions {
  std::string base_url = "http://127.0.0.1:8000";
  std::string model;    // the request's "model"
  // "Authorization: Bearer <key>"; "" = the OPENAI_API_KEY environment variable when set.
  std::string api_key;
  // The user message; "{text}" is replaced by the rollout's text (required).
  std::string prompt =
      "Here is the end of a model's reasoning and answer:\n\n{text}\n\n"
      "Did it reach the outcome in question? Answer with one word: yes or no.";
  std::string system;                 // a system message when non-empty
  std::vector<std::string> labels;    // allowed labels; empty = any answer is the label
  double temperature = 0.0;
  std::int64_t max_tokens = 0;        // 0 = not sent
  double timeout_seconds = 120;
  int max_retries = 5;
  double backoff_base_seconds = 0.5;
  double backoff_max_seconds = 30;
};

// The label of a judge's answer under `labels` (see above); public for tests.
std::optional<std::string> judge_label(const std::string& answer, const std::vector<std::string>& labels);

class ChatJudge : public Outcome {
 public:
  // anchors::Error for a malformed base_url, a prompt without "{text}", bad
  // retry settings, empty labels, or a build without cpp-httplib.
  explicit ChatJudge(ChatJudgeOptions options);
  ~ChatJudge() override;

  std::string name() const override { return "judge:" + options_.base_url; }
  std::optional<std::string> label(const std::string& text) const override { return classify(text).label; }
  OutcomeLabel classify(const std::string& text) const override;
  // Labels compare ignoring ASCII case and surrounding spaces.
  bool matches(const std::string& label, const std::string& target) const override;
  std::string distribution_key(const std::string& label) const override;

  const ChatJudgeOptions& options() const { return options_; }
  std::int64_t requests() const;  // HTTP requests made (cache misses)

 private:
  struct Impl;
  ChatJudgeOptions options_;
  std::unique_ptr<Impl> impl_;
};

// outcome_from_spec (outcome.h) plus "judge:URL" -> ChatJudge with `judge`'s
// other options (its base_url replaced by URL).
std::shared_ptr<const Outcome> outcome_from_spec(const std::string& spec, const ChatJudgeOptions& judge);

}  // namespace anchors::rollout
