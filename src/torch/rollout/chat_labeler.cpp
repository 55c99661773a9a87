// ChatLabeler: the HTTP half of chat_labeler.h (the prompt and the parsing
// are in chat_labels.cpp). Built next to OpenAIProvider, with whose
// requests it shares http_client.h.
#include "anchors/rollout/chat_labeler.h"

#include <atomic>
#include <mutex>
#include <random>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "http_client.h"

namespace anchors::rollout {

struct ChatLabeler::Impl {
  std::string origin;  // scheme://host[:port]
  std::string path;    // /v1/chat/completions (after any prefix)
  std::string api_key;
  std::atomic<std::int64_t> requests{0}, attempts{0}, retries{0};
  std::mutex rng_mutex;
  std::mt19937_64 rng{std::random_device{}()};

  double jitter(double bound) {
    if (bound <= 0) return 0;
    std::lock_guard lock(rng_mutex);
    return std::uniform_real_distribution<double>(0.0, bound)(rng);
  }
};

namespace {
http::RetryPolicy retry_policy(const ChatLabelerOptions& o) {
  return {o.timeout_seconds, o.max_retries, o.backoff_base_seconds, o.backoff_max_seconds};
}
}  // namespace

bool ChatLabeler::available() { return http::available(); }

ChatLabeler::ChatLabeler(ChatLabelerOptions options) : options_(std::move(options)) {
  if (!available())
    throw Error("ChatLabeler: this build of the library has no HTTP client (built without cpp-httplib; "
                "install libcpp-httplib-dev and rebuild)");
  http::check_retry_policy(retry_policy(options_), "ChatLabeler");
  const http::Endpoint endpoint = http::parse_base_url(options_.base_url, "ChatLabeler");
  http::ignore_sigpipe();
  impl_ = std::make_unique<Impl>();
  impl_->origin = endpoint.origin;
  impl_->path = endpoint.api + "/chat/completions";
  impl_->api_key = http::resolve_api_key(options_.api_key);
}

ChatLabeler::~ChatLabeler() = default;

ChatLabeler::Stats ChatLabeler::stats() const {
  Stats s;
  s.requests = impl_->requests.load();
  s.attempts = impl_->attempts.load();
  s.retries = impl_->retries.load();
  return s;
}

ChatLabels ChatLabeler::label(const Trace& trace) {
  const std::string what = fmt::format("ChatLabeler {}{}", impl_->origin, impl_->path);
  const std::string body = chat_label_request_body(trace, options_);  // checked before any network
  ++impl_->requests;
  const std::string answer = http::run_with_retries(
      retry_policy(options_), what,
      [&] { return http::attempt_once(options_.timeout_seconds, impl_->origin, impl_->api_key, impl_->path, &body); },
      [&] { ++impl_->attempts; }, [&] { ++impl_->retries; }, [&](double bound) { return impl_->jitter(bound); });
  std::string model;
  const std::string content = chat_answer_content(answer, what, &model);
  ChatLabels labels = parse_chat_labels(content, trace.sentences.size(), options_.strict, what);
  labels.model = std::move(model);
  return labels;
}

ChatLabels ChatLabeler::label_trace(Trace& trace) {
  ChatLabels labels = label(trace);
  for (std::size_t i = 0; i < trace.sentences.size(); ++i) trace.sentences[i].tags = labels.sentences[i].function_tags;
  return labels;
}

}  // namespace anchors::rollout
