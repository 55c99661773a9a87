#pragma once
// Where rollouts come from (docs/design.md §3 "Resampling"; docs/rollout-providers.md).
//
// A RolloutProvider turns one prompt into n sampled continuations. The prompt
// travels in up to three forms (token ids, text, chat messages); each provider
// reads the form it needs (validate_request checks that it is there).
// Two implementations ship with the library, and Python code can subclass
// thought_anchors.RolloutProvider (docs/rollout-providers.md):
//   - LocalProvider  (local_provider.h): our batched sampler on a CausalLM,
//     reusing the KV cache of the previous prompt's common prefix;
//   - OpenAIProvider (openai_provider.h): any OpenAI-compatible
//     `/v1/completions` server (vLLM, SGLang, `anchors serve`), with bounded
//     concurrency, retries with exponential backoff and jitter, and timeouts.
// CompletionServer (server.h) exposes any provider over HTTP.
//
// Plain C++: this header needs no LibTorch.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "anchors/core/attention_control.h"

namespace anchors::rollout {

// One message of a chat prompt ("system", "user" or "assistant").
struct ChatMessage {
  std::string role;
  std::string content;

  bool operator==(const ChatMessage& o) const { return role == o.role && content == o.content; }
};

// One sampling request: n continuations of one prompt.
struct CompletionRequest {
  // The prompt as token ids (no re-tokenisation drift between the base trace
  // and its rollouts). Empty = not given.
  std::vector<std::int64_t> prompt_ids;
  // The same prompt as text, for servers that take text ("" = not given). A
  // server re-tokenises it, which can differ from prompt_ids at the cut.
  std::string prompt_text;
  // The same prompt as chat messages, the last one the assistant's partial
  // message that the continuation extends (empty = not given).
  std::vector<ChatMessage> messages;
  std::int64_t n = 1;           // continuations wanted, >= 1
  double temperature = 0.6;     // 0: greedy
  double top_p = 0.95;          // nucleus, in (0, 1]
  std::int64_t top_k = 0;       // 0: off
  std::int64_t max_tokens = 256;  // new tokens per continuation, at most
  std::vector<std::string> stop;  // stop strings (non-empty)
  // Further sampling controls, neutral by default (a provider that cannot
  // honour a non-neutral value rejects it with anchors::Error rather than
  // ignoring it; OpenAIProvider sends each only when it is not neutral).
  double min_p = 0;               // in [0, 1]: keep tokens with p >= min_p * p_max
  double repetition_penalty = 1;  // > 0: CTRL-style, on prompt + generated tokens
  double presence_penalty = 0;    // vLLM / OpenAI: minus this once per generated token id
  double frequency_penalty = 0;   // vLLM / OpenAI: minus this times its count
  // Lane k of a request draws from a generator seeded by (seed, k); see
  // RolloutProvider::complete.
  std::uint64_t seed = 0;
  // Attention changed while the model generates (core/attention_control.h):
  // heads ablated, keys suppressed or boosted from a slot on; every region
  // for every lane (kEveryLane). Honoured by LocalProvider and `anchors
  // serve` (the "attention_control" field, which the answer confirms);
  // OpenAIProvider sends it and refuses an answer that does not confirm it,
  // so a server that would ignore it (vLLM) fails instead of sampling the
  // unchanged model. Empty: none.
  AttentionControl attention_control;
};

// One continuation.
struct Completion {
  std::vector<std::int64_t> ids;  // the new tokens; may be empty for remote servers that do not return them
  std::string text;               // their text
  std::string finish_reason;      // "stop" (EOS or a stop string) or "length"

  bool operator==(const Completion& o) const {
    return ids == o.ids && text == o.text && finish_reason == o.finish_reason;
  }
};

class RolloutProvider {
 public:
  virtual ~RolloutProvider() = default;
  // For logs and result metadata, e.g. "local:/models/qwen" or "openai:http://127.0.0.1:8000 (qwen)".
  virtual std::string name() const = 0;
  // request.n completions, in lane order. Lane k must depend only on (prompt,
  // options, seed, k) -- not on n or on other requests -- so that results are
  // reproducible and an interrupted run can be resumed. anchors::Error for an
  // invalid request or a failure the provider cannot recover from.
  // Implementations are safe to call from several threads at once.
  virtual std::vector<Completion> complete(const CompletionRequest& request) = 0;
  // How likely the model finds a text (docs/thought-branches.md,
  // "Log-probabilities"): log p(prompt_ids[k] | prompt_ids[0..k-1]) under the
  // model at temperature 1, one per prompt id, NaN for k = 0 (no context).
  // request.prompt_ids must be given; the sampling fields are ignored.
  // Default: anchors::Error "<name>: cannot score prompts"; LocalProvider (one
  // forward pass) and OpenAIProvider (/v1/completions with echo and logprobs)
  // can.
  virtual std::vector<double> prompt_logprobs(const CompletionRequest& request);
};

// The mean (and sum) of `logprobs` over the tokens whose byte span [begin,
// end) overlaps [span_begin, span_end) -- a token that straddles the edge of
// the text counts, as the authors' scorer counts it -- skipping NaN (the first
// token); tokens = how many were counted (mean NaN when none).
struct SpanLogprob {
  double mean = 0, sum = 0;
  std::int64_t tokens = 0;
};
SpanLogprob span_logprob(const std::vector<double>& logprobs, const std::vector<std::pair<std::size_t, std::size_t>>& spans,
                         std::size_t span_begin, std::size_t span_end);

// Which form of the prompt a provider reads.
enum class PromptForm {
  kAny,       // at least one of ids, text, messages
  kIds,       // prompt_ids
  kText,      // prompt_text
  kMessages,  // messages
};

// Checks the fields every provider needs (n >= 1, finite temperature >= 0,
// top_p in (0, 1], top_k >= 0, max_tokens >= 0, no empty stop string, min_p in
// [0, 1], finite repetition_penalty > 0, finite presence / frequency
// penalties, prompt ids >= 0, messages with a role) and that the prompt is
// given in the form `needs` names (at least one form for kAny); anchors::Error
// prefixed by `where` otherwise, naming the missing form.
void validate_request(const CompletionRequest& request, const std::string& where,
                      PromptForm needs = PromptForm::kAny);

// "ids", "text", "messages" (kAny: "any").
std::string prompt_form_name(PromptForm form);

}  // namespace anchors::rollout
