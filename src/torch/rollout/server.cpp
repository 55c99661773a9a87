#include "anchors/rollout/server.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/http_server.h"
#include "anchors/rollout/openai_format.h"

namespace anchors::rollout {

namespace {
constexpr const char* kHost = "127.0.0.1";

ServerResponse error_response(int status, const std::string& message) {
  const char* type = status == 400 ? "invalid_request_error" : status == 404 ? "not_found_error" : "server_error";
  return {status, openai::error_body(message, type)};
}

// The transport's errors ("http::Server: cannot bind ...") as this class's.
Error renamed(const Error& e) {
  std::string message = e.what();
  const std::string prefix = "http::Server: ";
  if (message.rfind(prefix, 0) == 0) message.erase(0, prefix.size());
  return Error("CompletionServer: " + message);
}

anchors::http::ServerOptions transport_options(const ServerOptions& o) {
  anchors::http::ServerOptions h;
  h.host = kHost;
  h.port = o.port;
  h.workers = o.workers;
  h.max_connections = o.max_connections;
  h.max_queue = o.max_queue;
  h.header_timeout_seconds = o.header_timeout_seconds;
  h.body_timeout_seconds = o.body_timeout_seconds;
  h.idle_timeout_seconds = o.idle_timeout_seconds;
  h.write_timeout_seconds = o.write_timeout_seconds;
  h.max_body_bytes = o.max_body_bytes;
  h.log = o.log;
  return h;
}
}  // namespace

openai::ChatRenderer chat_renderer(std::shared_ptr<const model::Tokenizer> tokenizer, model::PromptFormat format) {
  if (!tokenizer) throw Error("chat_renderer: no tokenizer");
  return [tokenizer, format](const std::vector<ChatMessage>& messages, bool continue_final) {
    const bool partial = !messages.empty() && messages.back().role == "assistant";
    if (partial && !continue_final)
      throw Error("a final assistant message is continued only with \"continue_final_message\": true (this server "
                  "does not render a new turn after it)");
    const std::vector<ChatMessage> conversation(messages.begin(), messages.end() - (partial ? 1 : 0));
    model::RenderedPrompt rendered = model::render_chat_prompt(*tokenizer, format, conversation,
                                                               partial ? messages.back().content : std::string());
    return openai::ChatPrompt{std::move(rendered.text), std::move(rendered.ids)};
  };
}

struct CompletionServer::Impl {
  std::shared_ptr<RolloutProvider> provider;
  ServerOptions options;
  std::mutex provider_mutex;             // serialize_requests
  std::atomic<std::int64_t> counter{0};  // completion requests
  std::atomic<std::int64_t> next_id{0};

  // Lifecycle.
  std::mutex state_mutex;
  std::condition_variable state_cv;  // stopping / finished
  bool started = false;
  bool stopping = false;
  bool finished = false;
  // The transport (core/http_server.h): made by the constructor (which so
  // checks its options), started by start(). Its handler calls handle().
  std::unique_ptr<anchors::http::Server> http;

  // Sleeps up to `seconds`, cut short by stop().
  void stall(double seconds) {
    std::unique_lock lock(state_mutex);
    state_cv.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return stopping; });
  }

  ServerResponse models() const {
    nlohmann::ordered_json model = {{"id", options.model_name},
                                    {"object", "model"},
                                    {"created", 0},
                                    {"owned_by", "anchors"}};
    nlohmann::ordered_json list = {{"object", "list"}, {"data", nlohmann::ordered_json::array({model})}};
    return {200, list.dump()};
  }

  ServerResponse completions(const std::string& body, bool chat) {
    const std::int64_t k = ++counter;
    if (options.fail_every > 0 && k % options.fail_every == 0)
      return error_response(500, fmt::format("injected failure of request {} (fail_every = {}, a test setting)", k,
                                             options.fail_every));
    if (options.stall_every > 0 && k % options.stall_every == 0) stall(options.stall_seconds);

    openai::ParsedRequest parsed;
    try {
      parsed = chat ? openai::parse_chat_request_body(body, options.render_chat)
                    : openai::parse_request_body(body, options.tokenize);
    } catch (const Error& e) {
      return error_response(400, e.what());
    }
    if (parsed.request.n > options.max_n)
      return error_response(400, fmt::format("n {} exceeds this server's limit of {}", parsed.request.n, options.max_n));
    if (!parsed.seed) parsed.request.seed = std::random_device{}() * 0x100000000ULL + std::random_device{}();

    std::vector<Completion> completions;
    try {
      std::unique_lock<std::mutex> lock(provider_mutex, std::defer_lock);
      if (options.serialize_requests) lock.lock();
      completions = provider->complete(parsed.request);
    } catch (const Error& e) {
      return error_response(400, e.what());
    } catch (const std::exception& e) {
      return error_response(500, fmt::format("the provider failed: {}", e.what()));
    }
    if (static_cast<std::int64_t>(completions.size()) != parsed.request.n)
      return error_response(500, fmt::format("the provider returned {} completions for n = {}", completions.size(),
                                             parsed.request.n));
    const std::string& model = parsed.model.empty() ? options.model_name : parsed.model;
    const auto created = static_cast<std::int64_t>(std::time(nullptr));
    const auto prompt_tokens = static_cast<std::int64_t>(parsed.request.prompt_ids.size());
    // Every provider applies a request's control or throws (provider.h), so
    // an answer here means it was applied.
    const bool controlled = !parsed.request.attention_control.empty();
    if (parsed.echo) {
      // Prompt scoring: the log-probabilities of the prompt's and the completion's tokens, in one pass.
      const Completion& c = completions.front();
      CompletionRequest scored;
      scored.attention_control = parsed.request.attention_control;
      scored.prompt_ids = parsed.request.prompt_ids;
      scored.prompt_ids.insert(scored.prompt_ids.end(), c.ids.begin(), c.ids.end());
      std::vector<double> logprobs;
      try {
        std::unique_lock<std::mutex> lock(provider_mutex, std::defer_lock);
        if (options.serialize_requests) lock.lock();
        logprobs = provider->prompt_logprobs(scored);
      } catch (const Error& e) {
        return error_response(400, e.what());
      } catch (const std::exception& e) {
        return error_response(500, fmt::format("the provider failed: {}", e.what()));
      }
      std::vector<std::string> texts;
      for (std::int64_t id : scored.prompt_ids)
        texts.push_back(options.token_text ? options.token_text(id) : std::to_string(id));
      std::string prompt_text = parsed.request.prompt_text;
      if (prompt_text.empty())
        for (std::size_t k = 0; k < parsed.request.prompt_ids.size(); ++k) prompt_text += texts[k];
      return {200, openai::echo_response_body(c, prompt_text, texts, logprobs, model,
                                              fmt::format("cmpl-{}", ++next_id), created, prompt_tokens, controlled)};
    }
    if (chat)
      return {200, openai::chat_response_body(completions, model, fmt::format("chatcmpl-{}", ++next_id), created,
                                              prompt_tokens, controlled)};
    return {200, openai::response_body(completions, model, fmt::format("cmpl-{}", ++next_id), created, prompt_tokens,
                                       controlled)};
  }
};

CompletionServer::CompletionServer(std::shared_ptr<RolloutProvider> provider, ServerOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (!provider) throw Error("CompletionServer: no provider");
  if (options.port < 0 || options.port > 65535)
    throw Error(fmt::format("CompletionServer: port {} outside [0, 65535]", options.port));
  if (options.max_n < 1) throw Error(fmt::format("CompletionServer: max_n {} < 1", options.max_n));
  if (options.fail_every < 0 || options.stall_every < 0 || !(options.stall_seconds >= 0) ||
      !std::isfinite(options.stall_seconds))
    throw Error("CompletionServer: fail_every, stall_every and stall_seconds must be >= 0");
  impl_->provider = std::move(provider);
  impl_->options = std::move(options);
  const auto serve = [this](const anchors::http::Request& request) {
    const auto begin = std::chrono::steady_clock::now();
    // HEAD is answered as GET without the body (the transport drops it).
    ServerResponse answer = handle(request.method == "HEAD" ? "GET" : request.method, request.path, request.body);
    if (impl_->options.log) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
      impl_->options.log(fmt::format("{} {} {} {:.2f}s", request.method, request.path, answer.status, seconds));
    }
    return anchors::http::Response{answer.status, std::move(answer.body), "application/json", {}};
  };
  try {
    impl_->http = std::make_unique<anchors::http::Server>(serve, transport_options(impl_->options));
  } catch (const Error& e) {
    throw renamed(e);
  }
}

CompletionServer::~CompletionServer() {
  try {
    stop();
  } catch (...) {
  }
}

ServerResponse CompletionServer::handle(const std::string& method, const std::string& path, const std::string& body) {
  try {
    if (path == "/v1/completions" || path == "/v1/chat/completions") {
      if (method != "POST") return error_response(405, fmt::format("use POST for {}", path));
      return impl_->completions(body, path == "/v1/chat/completions");
    }
    if (path == "/v1/models") {
      if (method != "GET") return error_response(405, "use GET for /v1/models");
      return impl_->models();
    }
    return error_response(404, fmt::format("no route {} {} (this server answers POST /v1/completions, POST "
                                           "/v1/chat/completions and GET /v1/models)",
                                           method, path));
  } catch (const std::exception& e) {
    return error_response(500, e.what());
  } catch (...) {
    return error_response(500, "unknown failure");
  }
}

std::int64_t CompletionServer::completion_requests() const { return impl_->counter.load(); }

int CompletionServer::port() const { return impl_->http->port(); }

std::string CompletionServer::url() const { return fmt::format("http://{}:{}", kHost, port()); }

bool CompletionServer::running() const {
  std::lock_guard lock(impl_->state_mutex);
  return impl_->started && !impl_->finished && impl_->http->running();
}

void CompletionServer::wait() {
  {
    std::lock_guard lock(impl_->state_mutex);
    if (!impl_->started) return;
  }
  impl_->http->wait();  // until stop(), or a failure of the transport (logged)
  {
    std::lock_guard lock(impl_->state_mutex);
    impl_->finished = true;
  }
  impl_->state_cv.notify_all();
}

void CompletionServer::start() {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.state_mutex);
    if (impl.started) throw Error("CompletionServer: already started");
  }
  try {
    impl.http->start();  // binds 127.0.0.1:port (SO_REUSEADDR only, never SO_REUSEPORT)
  } catch (const Error& e) {
    throw renamed(e);
  }
  std::lock_guard lock(impl.state_mutex);
  impl.started = true;
  impl.stopping = false;
  impl.finished = false;
}

void CompletionServer::stop() {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.state_mutex);
    if (!impl.started) return;
    impl.stopping = true;
  }
  impl.state_cv.notify_all();  // cuts stalls short, so that the requests in progress finish
  impl.http->stop();           // stops accepting; answers the requests in progress; joins
  {
    std::lock_guard lock(impl.state_mutex);
    impl.finished = true;
  }
  impl.state_cv.notify_all();
}

}  // namespace anchors::rollout
