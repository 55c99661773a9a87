#pragma once
// Sentence similarity decided by a chat model (the LLM judge that Thought
// Branches offers beside embeddings for "does this content come back?";
// docs/thought-branches.md "Resilience"). Each pair goes to an
// OpenAI-compatible POST {base_url}/v1/chat/completions inside a prompt with
// "{a}" and "{b}" placeholders; the answer's first label decides:
//   labels[0] ("yes", the same content)  -> similarity 1
//   any other label (by default "no")    -> similarity 0
// so any threshold in (0, 1] (resilience's similarity_threshold, 0.6) reads
// "the judge said yes". It is a ChatJudge (chat_judge.h) underneath: answers
// are cached per distinct pair, transient failures retried with backoff, a
// <think> block skipped. Cost: one request per distinct (a, b) pair,
// sequentially.
//
//   anchors::rollout::ChatSimilarityOptions o;
//   o.judge.base_url = "http://127.0.0.1:8000";  o.judge.model = "judge";
//   auto same = std::make_shared<anchors::rollout::ChatSimilarity>(o);
//   context.similarity = same;                    // e.g. ResilienceMethod
//
// Errors: anchors::Error at construction for a prompt without both
// placeholders, fewer than two labels or invalid judge options (ChatJudge's);
// at use, an answer that starts with none of the labels (naming the pair's
// first words and the answer: a judge that does not follow the prompt must not
// pass as "different"), and the judge's HTTP errors.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "anchors/core/embedder.h"
#include "anchors/rollout/chat_judge.h"

namespace anchors::rollout {

struct ChatSimilarityOptions {
  // The endpoint, model, retries, temperature (0), system message, ... Its
  // `prompt` is replaced by `prompt` below and its `labels` by `labels`.
  ChatJudgeOptions judge;
  std::string prompt =
      "Two sentences from a model's reasoning:\n\nA: {a}\n\nB: {b}\n\n"
      "Does B express the same content as A (the same step, claim, idea or decision, even if worded "
      "differently)? Answer with one word: yes or no.";
  std::vector<std::string> labels = {"yes", "no"};
};

class ChatSimilarity : public SentenceSimilarity {
 public:
  explicit ChatSimilarity(ChatSimilarityOptions options);
  std::vector<double> similarities(const std::vector<std::pair<std::string, std::string>>& pairs) override;

  const ChatSimilarityOptions& options() const { return options_; }
  std::int64_t requests() const { return judge_->requests(); }  // HTTP requests made (cache misses)

 private:
  ChatSimilarityOptions options_;
  std::shared_ptr<ChatJudge> judge_;
};

}  // namespace anchors::rollout
