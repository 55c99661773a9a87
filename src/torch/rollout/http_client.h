#pragma once
// Internal to src/torch/rollout: the HTTP plumbing that OpenAIProvider
// (openai_provider.h) and ChatLabeler (chat_labeler.h) share — base-URL
// parsing, the API key, one attempt with timeouts, and retries with "full
// jitter" exponential backoff. cpp-httplib stays inside http_client.cpp; a
// build without it has available() == false and attempts that fail for good.
#include <functional>
#include <string>

namespace anchors::rollout::http {

// True when this build has cpp-httplib.
bool available();

// Where an OpenAI-compatible server's API lives.
struct Endpoint {
  std::string origin;  // scheme://host[:port]
  std::string api;     // path prefix ending in /v1: "/v1", or "/proxy/v1" for base_url ".../proxy[/v1]"
};

// Parses scheme://host[:port][/prefix] (http or https); requests then go to
// {origin}{api}/<endpoint>. anchors::Error "<who>: base_url ..." otherwise.
Endpoint parse_base_url(const std::string& base_url, const std::string& who);

// `key`, or the environment variable `env_name` when `key` is empty ("" when
// it is unset or env_name is "").
std::string resolve_api_key(const std::string& key, const std::string& env_name = "OPENAI_API_KEY");

// A server that drops the connection while a request is written raises
// SIGPIPE, whose default action ends the process: ignore it unless the
// program installed its own handler (Python already ignores it).
void ignore_sigpipe();

struct RetryPolicy {
  double timeout_seconds = 600;       // per attempt: connecting, and waiting for the next bytes
  int max_retries = 5;                // attempts after the first
  double backoff_base_seconds = 0.5;  // first retry waits up to this
  double backoff_max_seconds = 30;    // cap of every wait
};

// anchors::Error "<who>: ..." for max_retries < 0, a timeout that is not
// finite and > 0, or a backoff that is not finite and >= 0.
void check_retry_policy(const RetryPolicy& policy, const std::string& who);

// The result of one HTTP attempt.
struct Outcome {
  bool ok = false;         // 2xx
  bool retryable = false;  // connection errors, timeouts, 429, 5xx
  std::string body;        // the answer when ok
  std::string failure;     // why not ("HTTP 500: <server's message>", "Read (...)")
  double retry_after = 0;  // seconds the server asked for (Retry-After), 0 if none
};

// One attempt: POST `*body` as application/json to {origin}{path}, or GET
// when body is null; "Authorization: Bearer <api_key>" when api_key is set.
Outcome attempt_once(double timeout_seconds, const std::string& origin, const std::string& api_key,
                     const std::string& path, const std::string* body);

// Runs `attempt` until it succeeds (returns its body), fails in a way that
// is not retryable (anchors::Error "<what>: <failure>"), or max_retries
// retries have failed (anchors::Error "<what>: giving up after N attempts;
// last failure: ..."). Retry r waits jitter(min(backoff_max, backoff_base *
// 2^r)) seconds — jitter(b) draws uniformly from [0, b) — or the server's
// Retry-After when that is longer (capped at backoff_max).
std::string run_with_retries(const RetryPolicy& policy, const std::string& what,
                             const std::function<Outcome()>& attempt, const std::function<void()>& count_attempt,
                             const std::function<void()>& count_retry, const std::function<double(double)>& jitter);

}  // namespace anchors::rollout::http
