#pragma once
// RolloutProvider on any OpenAI-compatible completions server: vLLM, SGLang,
// `anchors serve` (docs/rollout-providers.md).
//
//   anchors::rollout::OpenAIOptions o;
//   o.base_url = "http://127.0.0.1:8000";    // POST {base_url}/v1/completions
//   o.model = "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B";
//   anchors::rollout::OpenAIProvider provider(o);
//   auto completions = provider.complete({.prompt_ids = ids, .n = 50, .max_tokens = 8192, .seed = 3});
//
// The prompt goes as token ids to /v1/completions (prompt_mode "ids", the
// default), as text to /v1/completions ("text", for servers that reject ids;
// the server re-tokenises it), or as chat messages to /v1/chat/completions
// ("chat", continuing the assistant's partial message). Failed attempts (connection errors,
// timeouts, HTTP 429 and 5xx) are retried up to max_retries times after a
// "full jitter" exponential backoff: attempt r waits uniform(0, min(backoff_max,
// backoff_base * 2^r)) seconds, or the server's Retry-After when it asks for
// longer (capped at backoff_max). Any other 4xx is an immediate anchors::Error
// with the server's message. At most max_concurrency requests are in flight at
// once across all threads calling complete() (the others wait).
//
// Reproducibility is the server's: `anchors serve` (one request at a time)
// gives exactly LocalProvider's completions for the same seeds; vLLM with a
// seed is reproducible on one engine configuration.
//
// Needs cpp-httplib at build time (available() says whether this build has it;
// without it the constructor throws).
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "anchors/rollout/provider.h"

namespace anchors::rollout {

struct OpenAIOptions {
  // scheme://host[:port][/prefix]. Requests go to {base_url}/v1/completions
  // (/v1/chat/completions in chat mode), or {base_url}/completions when the
  // prefix already ends in /v1 ("https://api.example.com/v1"). https needs
  // cpp-httplib built with OpenSSL (Debian's is).
  std::string base_url = "http://127.0.0.1:8000";
  std::string model;    // the request's "model" (most servers require the name they serve)
  // How the prompt is sent, and which form of it each request must carry:
  //   "ids"  -- /v1/completions, "prompt": [ids]   (CompletionRequest::prompt_ids)
  //   "text" -- /v1/completions, "prompt": "text"  (prompt_text; re-tokenised by
  //             the server, which can differ from the trace's ids at the cut)
  //   "chat" -- /v1/chat/completions, "messages"   (messages; when the last is the
  //             assistant's: "continue_final_message": true, "add_generation_prompt": false)
  std::string prompt_mode = "ids";
  // Sent as "Authorization: Bearer <key>". An explicit api_key wins; "" = the
  // environment variable named by api_key_env when set (read once, by the
  // constructor), else no header. api_key_env "" = never read the environment.
  std::string api_key;
  std::string api_key_env = "OPENAI_API_KEY";
  // Per attempt: connecting, and waiting for the next bytes of the answer. The
  // server answers only when all n continuations are done, so this must exceed
  // the longest generation.
  double timeout_seconds = 600;
  int max_retries = 5;                // attempts after the first
  double backoff_base_seconds = 0.5;  // first retry waits up to this
  double backoff_max_seconds = 30;    // cap of every wait
  int max_concurrency = 8;            // requests in flight at once, across threads
  // Adds "return_token_ids": true (vLLM >= 0.10.2 then returns choices[].token_ids;
  // `anchors serve` always does). Strict servers may reject the unknown field.
  bool return_token_ids = false;
};

class OpenAIProvider : public RolloutProvider {
 public:
  // anchors::Error for a malformed base_url, an unknown prompt_mode, max_retries < 0,
  // max_concurrency < 1, non-positive timeout, negative backoff, or a build
  // without cpp-httplib. Sets SIGPIPE to ignored when it has its default
  // action (a dropped connection must be an error, not the end of the process).
  explicit OpenAIProvider(OpenAIOptions options);
  ~OpenAIProvider() override;

  // "openai:<base_url> (<model>)"
  std::string name() const override;
  // request.n completions from one POST. Completion::ids is empty unless the
  // server returns choices[].token_ids. anchors::Error (naming the URL) for
  // an invalid request (including one without the prompt form prompt_mode
  // needs; checked before any network), a 4xx answer other than 429, a
  // malformed answer, or when every attempt failed (with the last failure).
  // One POST /v1/completions with echo and logprobs (openai::score_request_body;
  // the prompt always as token ids, whatever prompt_mode says: the values
  // must line up with request.prompt_ids), with the same retries, timeouts and
  // concurrency as complete(). anchors::Error for a server that does not
  // answer them (vLLM and `anchors serve` do).
  std::vector<double> prompt_logprobs(const CompletionRequest& request) override;
  std::vector<Completion> complete(const CompletionRequest& request) override;

  // The ids of GET {base_url}/v1/models, with the same retries (e.g. to wait
  // for a server to come up).
  std::vector<std::string> list_models();

  const OpenAIOptions& options() const { return options_; }

  // Counters since construction, for progress reports and tests.
  struct Stats {
    std::int64_t requests = 0;  // complete() / list_models() calls
    std::int64_t attempts = 0;  // HTTP attempts made (requests + retries)
    std::int64_t retries = 0;   // attempts that failed in a retryable way
  };
  Stats stats() const;

  // True when this build has cpp-httplib, so that OpenAIProvider works
  // (CompletionServer needs no cpp-httplib: it runs on core/http_server.h).
  static bool available();

 private:
  struct Impl;
  OpenAIOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace anchors::rollout
