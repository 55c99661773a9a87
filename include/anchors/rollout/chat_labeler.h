#pragma once
// Labelling a trace's sentences with a chat model, as the authors did: one
// request per trace to any OpenAI-compatible chat endpoint (POST
// {base_url}/v1/chat/completions: vLLM, SGLang, llama.cpp's server, OpenAI),
// asking for each sentence's function tags (the docs/design.md §3 taxonomy) and
// the earlier sentences it depends on (docs/function-tags.md).
//
//   anchors::rollout::ChatLabelerOptions o;
//   o.base_url = "http://127.0.0.1:8000";    // or "https://api.openai.com/v1"
//   o.model = "Qwen/Qwen2.5-7B-Instruct";
//   anchors::rollout::ChatLabeler labeler(o);
//   anchors::rollout::ChatLabels labels = labeler.label_trace(trace);  // fills Sentence::tags
//   labels.sentences[7].depends_on;                                     // e.g. {3, 5}
//
// The prompt (chat_label_messages) numbers the sentences, defines the nine
// categories and asks for one JSON object {"<index>": {"function_tags": [...],
// "depends_on": [...]}}. parse_chat_labels reads the answer robustly: the
// JSON may stand alone, sit in a ```json fence, follow a <think> block or be
// wrapped in prose; tag names are compared after lowercasing and turning
// spaces and hyphens into underscores. What cannot be read as labels is an
// anchors::Error that quotes the answer — or, with strict = false, is
// mapped: unknown tag names -> "unknown", sentences without an entry ->
// ["unknown"], keys and dependencies outside the trace -> dropped.
//
// The prompt, request and parsing are plain functions of the core library
// (no LibTorch, no networking: they can be used with any other client). The
// ChatLabeler class needs cpp-httplib at build time (available() says
// whether this build has it) and shares OpenAIProvider's HTTP handling:
// connection errors, timeouts, 429 and 5xx are retried with the same
// full-jitter backoff; other 4xx answers and malformed labels are not.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "anchors/core/trace.h"
#include "anchors/rollout/provider.h"

namespace anchors::rollout {

struct ChatLabelerOptions {
  // scheme://host[:port][/prefix]; requests go to {base_url}/v1/chat/completions,
  // or {base_url}/chat/completions when the prefix already ends in /v1.
  std::string base_url = "http://127.0.0.1:8000";
  std::string model;    // the request's "model"
  // "Authorization: Bearer <key>"; "" = the OPENAI_API_KEY environment variable when set.
  std::string api_key;
  double temperature = 0.0;       // labels should not depend on the draw
  std::int64_t max_tokens = 0;    // answer budget; 0 = not sent (the server's default)
  // Adds "response_format": {"type": "json_object"} (OpenAI, vLLM and llama.cpp
  // support it; some servers reject the field).
  bool json_mode = false;
  // Problem text for the prompt; "" = the trace's metadata "problem", if any.
  std::string problem;
  // false: unknown tag names become "unknown", sentences the answer skips get
  // ["unknown"], indices outside the trace are dropped (see parse_chat_labels).
  bool strict = true;
  double timeout_seconds = 600;       // per attempt; a long trace takes the model a while
  int max_retries = 5;                // attempts after the first
  double backoff_base_seconds = 0.5;  // first retry waits up to this
  double backoff_max_seconds = 30;    // cap of every wait
};

// One sentence's labels.
struct SentenceLabels {
  std::vector<std::string> function_tags;  // names from function_tag_names(), as the model ordered them
  std::vector<std::size_t> depends_on;     // sentence indices, as the model listed them (duplicates dropped)
  bool operator==(const SentenceLabels& o) const {
    return function_tags == o.function_tags && depends_on == o.depends_on;
  }
};

struct ChatLabels {
  std::vector<SentenceLabels> sentences;  // one per sentence of the trace, in order
  std::string content;                    // the model's answer, verbatim
  std::string model;                      // the answer's "model" ("" if absent)
};

// The system and user messages of the request, in this order (ChatMessage:
// provider.h).
std::vector<ChatMessage> chat_label_messages(const Trace& trace, const std::string& problem = "");

// The JSON body ChatLabeler posts: model, messages, temperature, max_tokens
// (when > 0) and response_format (when json_mode). anchors::Error for a
// trace without sentences.
std::string chat_label_request_body(const Trace& trace, const ChatLabelerOptions& options);

// Labels from a model's answer text for a trace of `sentence_count`
// sentences. Accepts {"<i>": {"function_tags": [...] or "tag",
// "depends_on": [...]}} (indices as numbers or numeric strings; depends_on
// may be absent) or a list of such objects carrying "chunk_idx"/"index".
// With strict, anchors::Error (naming `source` and quoting the answer) for no
// JSON object, an entry that is not an object, a key or dependency outside
// 0..sentence_count-1, a tag that is not a function tag, a sentence with no
// tags or without an entry.
ChatLabels parse_chat_labels(const std::string& content, std::size_t sentence_count, bool strict = true,
                             const std::string& source = "chat answer");

// The message content of a /v1/chat/completions answer
// (choices[0].message.content); anchors::Error naming `source` otherwise.
std::string chat_answer_content(const std::string& body, const std::string& source = "response",
                                std::string* model = nullptr);

class ChatLabeler {
 public:
  // anchors::Error for a malformed base_url, max_retries < 0, a non-positive
  // timeout, a negative backoff, or a build without cpp-httplib.
  explicit ChatLabeler(ChatLabelerOptions options);
  ~ChatLabeler();
  ChatLabeler(const ChatLabeler&) = delete;
  ChatLabeler& operator=(const ChatLabeler&) = delete;

  // One request for the whole trace; the trace is not changed.
  // anchors::Error (naming the URL) when every attempt failed, for a 4xx
  // answer other than 429, or labels that cannot be read (parse_chat_labels).
  ChatLabels label(const Trace& trace);

  // label(), then every sentence's tags = its function_tags.
  ChatLabels label_trace(Trace& trace);

  const ChatLabelerOptions& options() const { return options_; }

  struct Stats {
    std::int64_t requests = 0;  // label() calls
    std::int64_t attempts = 0;  // HTTP attempts (requests + retries)
    std::int64_t retries = 0;   // attempts that failed in a retryable way
  };
  Stats stats() const;

  // True when this build has cpp-httplib.
  static bool available();

 private:
  struct Impl;
  ChatLabelerOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace anchors::rollout
