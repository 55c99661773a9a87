#pragma once
// An OpenAI-compatible completions endpoint over any RolloutProvider -- what
// `anchors serve` runs (docs/rollout-providers.md).
//
//   auto provider = std::make_shared<anchors::rollout::LocalProvider>(model);
//   anchors::rollout::CompletionServer server(provider, {.port = 8000, .model_name = "qwen"});
//   server.start();                      // serves on a background thread
//   ... OpenAIProvider({.base_url = server.url()}) ...
//   server.stop();
//
// Routes (bound to 127.0.0.1 only):
//   POST /v1/completions  OpenAI's legacy completions (openai_format.h): the
//                         prompt as a list of token ids or a string (tokenised
//                         with ServerOptions::tokenize); choices carry text,
//                         finish_reason, index and our "token_ids" extension.
//                         400 for an invalid request (anchors::Error from the
//                         parser or the provider), 500 for other failures.
//   POST /v1/chat/completions  "messages" rendered by ServerOptions::render_chat
//                         (e.g. chat_renderer below; without one: 400), with
//                         vLLM's continue_final_message; choices carry
//                         message.content instead of text. Same status codes.
//   GET  /v1/models       {"object": "list", "data": [{"id": model_name, ...}]}
//
// With serialize_requests (the default) requests reach the provider one at a
// time, so every answer equals what the provider gives for that request alone.
//
// Transport: the library's own HTTP/1.1 server (core/http_server.h), so slow
// clients cannot starve it: one I/O thread reads every request whole, under
// total deadlines for headers and body, and only complete requests go to the
// `workers` threads that call handle(); open connections and waiting requests
// are capped (ServerOptions below; over a cap: 503 with Retry-After). Errors
// of the transport itself (408, 413, 431, 503, ...) have the same JSON shape.
// No cpp-httplib is needed for the server (the client, OpenAIProvider, needs it).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "anchors/model/prompt.h"
#include "anchors/rollout/openai_format.h"
#include "anchors/rollout/provider.h"

namespace anchors::rollout {

struct ServerOptions {
  int port = 0;                         // 0: any free port (see CompletionServer::port())
  std::string model_name = "anchors";   // listed by /v1/models, echoed in answers
  bool serialize_requests = true;       // one provider call at a time
  std::int64_t max_n = 1024;            // larger "n" is a 400
  // Tokenises string prompts (e.g. the model's tokenizer without special
  // tokens); empty: string prompts are a 400.
  std::function<std::vector<std::int64_t>(const std::string&)> tokenize;
  // The text of one token, for the "tokens" of an echo answer (prompt
  // scoring); empty: the id as a decimal string.
  std::function<std::string(std::int64_t)> token_text;
  // Renders the messages of /v1/chat/completions into a prompt; empty: chat
  // requests are a 400. chat_renderer() makes one from a prompt format.
  openai::ChatRenderer render_chat;
  // One line per request ("POST /v1/completions 200 1.23s"), and one per
  // request the transport refuses or connection it cuts ("127.0.0.1:51234: 408
  // the request line and headers were not received within 10s ..."); called
  // from several threads at once. Empty: silent.
  std::function<void(const std::string&)> log;

  // --- the HTTP transport (core/http_server.h has the details) ---
  // Threads that run requests; 0: max(4, hardware threads). With
  // serialize_requests the completions still run one at a time (the others
  // wait in their workers), but /v1/models and invalid requests are answered
  // while one runs when a worker is free.
  int workers = 0;
  int max_connections = 512;  // open connections; over it a new one is answered 503 and closed
  // Complete requests waiting for a free worker; over it: 503. Waiting is the
  // normal case for a serialized provider under concurrent clients, so this
  // is large.
  int max_queue = 256;
  double header_timeout_seconds = 10;  // total, for the request line and headers: then 408
  double body_timeout_seconds = 60;    // total, for the body: then 408
  double idle_timeout_seconds = 5;     // a kept-alive connection without a request is closed
  double write_timeout_seconds = 30;   // a client that does not read its answer is disconnected
  // Larger: 413 (headers: 64 KiB, then 431). 16 MiB holds a prompt of a
  // million tokens as ids and bounds what max_connections clients can make
  // the server hold at once (512 x 16 MiB).
  std::size_t max_body_bytes = 16 << 20;

  // --- fault injection, for tests only: never set these in a real server ---
  // Every fail_every-th completion request (counting from 1) answers HTTP 500
  // without running the provider; 0: never.
  std::int64_t fail_every = 0;
  // Every stall_every-th completion request first sleeps stall_seconds (then
  // answers normally, usually to a client that has given up); 0: never.
  std::int64_t stall_every = 0;
  double stall_seconds = 0;
};

// The answer to one request, as the HTTP layer sends it.
struct ServerResponse {
  int status = 200;
  std::string body;  // JSON
};

// A renderer for ServerOptions::render_chat with one of the library's prompt
// formats (model/prompt.h), not the checkpoint's Jinja chat template: the
// messages are a conversation (an optional first "system" message, "user" and
// "assistant" turns; render_chat_prompt_text), optionally ending with the
// assistant's partial message (continued only with continue_final_message),
// and the prompt is render_chat_prompt(tokenizer, format, conversation,
// partial) -- tokenised as the library tokenises its own prompts (kRaw with
// the tokenizer's special tokens, the chat formats with their control tokens
// in the text). So a chat request for [user: problem, assistant: prefix] (or a
// scenario's turns and the prefix) runs exactly the prompt `anchors analyze`
// builds for that prefix. anchors::Error (a 400) for a conversation the format
// cannot render (kRaw: one user message), an assistant message without
// continue_final_message, or a tokenizer that lacks the format's control tokens.
openai::ChatRenderer chat_renderer(std::shared_ptr<const model::Tokenizer> tokenizer, model::PromptFormat format);

class CompletionServer {
 public:
  // anchors::Error for a null provider or invalid options (including the
  // transport's: non-positive timeouts, max_connections < 1, ...).
  explicit CompletionServer(std::shared_ptr<RolloutProvider> provider, ServerOptions options = {});
  ~CompletionServer();  // stops
  CompletionServer(const CompletionServer&) = delete;
  CompletionServer& operator=(const CompletionServer&) = delete;

  // Binds 127.0.0.1:port (SO_REUSEADDR only: a port another server holds is
  // an error, never shared) and serves on background threads; returns once the
  // server accepts connections. anchors::Error naming 127.0.0.1:port and the
  // reason if it cannot be bound, or if already started (a stopped server is
  // not restarted).
  void start();
  // Stops accepting, closes idle connections, answers requests still waiting
  // for a worker with 503, lets requests in progress finish (a stall is cut
  // short) and sends their answers, joins the threads. Idempotent.
  void stop();
  bool running() const;
  // Blocks until stop() is called from another thread (or the server fails).
  void wait();

  int port() const;         // the bound port (after start())
  std::string url() const;  // "http://127.0.0.1:<port>"
  // Completion requests received (including failed and stalled ones).
  std::int64_t completion_requests() const;

  // The server's handling of one request without HTTP: what start() serves.
  // For tests and for embedding the endpoint into another server.
  ServerResponse handle(const std::string& method, const std::string& path, const std::string& body);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace anchors::rollout
