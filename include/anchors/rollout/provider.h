#pragma once
// Where rollouts come from (docs/design.md §3 "Resampling"; docs/rollout-providers.md).
//
// A RolloutProvider turns one token-id prompt into n sampled continuations.
// Two implementations ship with the library:
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
#include <vector>

namespace anchors::rollout {

// One sampling request: n continuations of one prompt.
struct CompletionRequest {
  // The prompt as token ids (no re-tokenisation drift between the base trace
  // and its rollouts).
  std::vector<std::int64_t> prompt_ids;
  std::int64_t n = 1;           // continuations wanted, >= 1
  double temperature = 0.6;     // 0: greedy
  double top_p = 0.95;          // nucleus, in (0, 1]
  std::int64_t top_k = 0;       // 0: off
  std::int64_t max_tokens = 256;  // new tokens per continuation, at most
  std::vector<std::string> stop;  // stop strings (non-empty)
  // Lane k of a request draws from a generator seeded by (seed, k); see
  // RolloutProvider::complete.
  std::uint64_t seed = 0;
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
};

// Checks the fields every provider needs (n >= 1, finite temperature >= 0,
// top_p in (0, 1], top_k >= 0, max_tokens >= 0, no empty stop string, a
// non-empty prompt of non-negative ids); anchors::Error prefixed by `where` otherwise.
void validate_request(const CompletionRequest& request, const std::string& where);

}  // namespace anchors::rollout
