#pragma once
// The JSON of OpenAI's completions endpoints as OpenAIProvider sends and reads
// it and CompletionServer reads and answers it (docs/rollout-providers.md):
// the legacy POST /v1/completions (prompt as token ids or text) and POST
// /v1/chat/completions (messages; vLLM's continue_final_message to extend the
// assistant's partial message). Pure functions, no networking, no LibTorch:
// they are what both ends have to agree on, and what the tests pin down.
//
// Request:  {"model", "prompt": [ids] | "text", "n", "temperature", "top_p", "top_k" (only > 0),
//            "min_p" (only > 0), "repetition_penalty" (only != 1), "presence_penalty",
//            "frequency_penalty" (only != 0), "max_tokens", "stop" (only when non-empty), "seed",
//            "logprobs": null,
//            "attention_control": {...} (our extension, only when the request has one; JSON of
//                                        core/attention_control.h)}
// Chat:     the same with "messages": [{"role", "content"}] instead of "prompt" (no "logprobs"),
//           plus "continue_final_message": true, "add_generation_prompt": false when the last
//           message is the assistant's
// Response: {"id", "object": "text_completion", "created", "model",
//            "choices": [{"index", "text", "finish_reason", "logprobs": null,
//                         "token_ids": [ids]}],             <- our extension (vLLM's name)
//            "usage": {"prompt_tokens", "completion_tokens", "total_tokens"},
//            "attention_control": "applied"}                    <- our extension, when the request had one
// Chat:     "object": "chat.completion", choices[].message = {"role": "assistant", "content"}
//           instead of choices[].text
// Error:    {"error": {"message", "type", "param": null, "code": null}}
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "anchors/rollout/provider.h"

namespace anchors::rollout::openai {

// The body OpenAIProvider posts to /v1/completions, with the prompt as token
// ids (prompt = PromptForm::kIds) or as text (kText). return_token_ids adds
// "return_token_ids": true (vLLM >= 0.10.2 then answers choices[].token_ids).
// anchors::Error when the request lacks that form of the prompt.
std::string request_body(const CompletionRequest& request, const std::string& model, bool return_token_ids = false,
                         PromptForm prompt = PromptForm::kIds);

// The body OpenAIProvider posts to /v1/chat/completions: request.messages,
// and when the last one is the assistant's, "continue_final_message": true and
// "add_generation_prompt": false (vLLM's names: the continuation extends that
// message instead of starting a new turn). anchors::Error without messages.
std::string chat_request_body(const CompletionRequest& request, const std::string& model,
                              bool return_token_ids = false);

// What a request body asks for, as a server reads it. Absent fields take
// OpenAI's defaults (n 1, temperature 1, top_p 1, max_tokens 16, min_p 0,
// repetition_penalty 1, presence / frequency penalties 0); top_k 0 or -1
// means off; "stop" may be a string, a list of strings or null. The prompt is
// a list of token ids, a string (kept as request.prompt_text and given to
// `tokenize` for prompt_ids; an error without one), or a list holding exactly
// one of those. The penalties are passed on: the provider refuses what it
// cannot honour (LocalProvider: presence / frequency penalties).
// anchors::Error (HTTP 400) for malformed JSON, wrong types, invalid values,
// batched prompts, or options the engine cannot honour: stream, logprobs
// without echo, echo with n > 1, best_of > n, suffix, a non-empty logit_bias.
struct ParsedRequest {
  CompletionRequest request;
  // "echo": true with integer "logprobs" (prompt scoring; /v1/completions
  // only, n must be 1): the answer holds the prompt's and the completion's
  // tokens with their log-probabilities (echo_response_body). "logprobs"
  // without echo stays unsupported.
  bool echo = false;
  std::string model;                  // "" when absent
  std::optional<std::uint64_t> seed;  // absent: the server picks one (request.seed is then 0)
};
ParsedRequest parse_request_body(const std::string& body,
                                 const std::function<std::vector<std::int64_t>(const std::string&)>& tokenize = {});

// The prompt of a chat request as the server runs it.
struct ChatPrompt {
  std::string text;               // the rendered messages
  std::vector<std::int64_t> ids;  // their tokens
};
// Renders messages into a prompt (CompletionServer: ServerOptions::render_chat).
// `continue_final` is true when the last message is the assistant's partial
// message to extend, false when a new assistant turn is to be generated.
using ChatRenderer = std::function<ChatPrompt(const std::vector<ChatMessage>& messages, bool continue_final)>;

// What a /v1/chat/completions body asks for: the sampling fields as in
// parse_request_body (also "max_completion_tokens", OpenAI's newer name for
// max_tokens), "messages" (a non-empty list of {"role", "content"}: content a
// string, or a list of {"type": "text", "text"} parts, which are joined), and
// vLLM's "continue_final_message" / "add_generation_prompt". The request gets
// messages, and prompt_text / prompt_ids from `render`. anchors::Error (HTTP
// 400) as parse_request_body, plus: no renderer, "prompt" given, a message
// without a string role or content, "continue_final_message" when the last
// message is not the assistant's, both it and "add_generation_prompt" true,
// and "tools" / "response_format" / "logprobs" / "top_logprobs".
ParsedRequest parse_chat_request_body(const std::string& body, const ChatRenderer& render);

// Prompt scoring (RolloutProvider::prompt_logprobs over HTTP): the body that
// asks for the log-probability of every token of request.prompt_ids --
// {"model", "prompt": [ids], "max_tokens": 1, "echo": true, "logprobs": 1,
// "temperature": 0} -- and the first `prompt_tokens` values of the answer's
// choices[0].logprobs.token_logprobs (the first may be null: NaN). vLLM's
// echo answers one more entry for the generated token, which is dropped.
// anchors::Error naming `source` for an answer without that many values or
// with a non-number after the first.
std::string score_request_body(const CompletionRequest& request, const std::string& model);
std::vector<double> parse_score_response(const std::string& body, std::size_t prompt_tokens,
                                         const std::string& source = "response",
                                         bool attention_control_expected = false);
// The answer to an echo request: one choice, text = prompt_text +
// completion.text, logprobs = {"tokens", "token_logprobs" (null for NaN),
// "text_offset" (code points of the tokens' texts, accumulated), "top_logprobs":
// null} over the prompt's and the completion's tokens (token_texts and
// logprobs: one per token, in order).
// attention_control_applied adds "attention_control": "applied" (to every
// answer below): the request's control was applied.
std::string echo_response_body(const Completion& completion, const std::string& prompt_text,
                               const std::vector<std::string>& token_texts, const std::vector<double>& logprobs,
                               const std::string& model, const std::string& id, std::int64_t created,
                               std::int64_t prompt_tokens, bool attention_control_applied = false);
// The answer to a request: one choice per completion, index = lane.
std::string response_body(const std::vector<Completion>& completions, const std::string& model,
                          const std::string& id, std::int64_t created, std::int64_t prompt_tokens,
                          bool attention_control_applied = false);
// The same as a chat.completion: choices[].message = {"role": "assistant", "content": text}.
std::string chat_response_body(const std::vector<Completion>& completions, const std::string& model,
                               const std::string& id, std::int64_t created, std::int64_t prompt_tokens,
                               bool attention_control_applied = false);

// The completions of an answer, ordered by choices[].index (or position when
// there is none), which must be exactly 0..n-1. The text is choices[].text,
// or choices[].message.content in a chat answer. ids come from
// choices[].token_ids when present, else stay empty; a null finish_reason
// reads as "". anchors::Error naming `source` for anything else, including a
// chat answer split by a reasoning parser (message.reasoning_content): its
// text is not the continuation of the prompt. attention_control_expected:
// the request carried a control, so the answer must confirm it
// ("attention_control": "applied"), else anchors::Error.
std::vector<Completion> parse_response_body(const std::string& body, std::int64_t n,
                                            const std::string& source = "response",
                                            bool attention_control_expected = false);

// {"error": {"message": message, "type": type, "param": null, "code": null}}
std::string error_body(const std::string& message, const std::string& type);

// The human-readable message of an error answer: error.message, a string
// "error" or "detail" (FastAPI), else the body itself (cut at 500 bytes).
std::string error_message(const std::string& body);

}  // namespace anchors::rollout::openai
