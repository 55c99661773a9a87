#include "anchors/rollout/openai_provider.h"

#include <cmath>
#include <condition_variable>
#include <mutex>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/rollout/openai_format.h"
#include "http_client.h"

namespace anchors::rollout {

namespace {

// A counting semaphore that any number of threads can share.
class Slots {
 public:
  explicit Slots(int count) : free_(count) {}
  void acquire() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return free_ > 0; });
    --free_;
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      ++free_;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int free_;
};

class SlotGuard {
 public:
  explicit SlotGuard(Slots& slots) : slots_(slots) { slots_.acquire(); }
  ~SlotGuard() { slots_.release(); }
  SlotGuard(const SlotGuard&) = delete;
  SlotGuard& operator=(const SlotGuard&) = delete;

 private:
  Slots& slots_;
};

}  // namespace

struct OpenAIProvider::Impl {
  std::string origin;            // scheme://host[:port]
  std::string completions_path;  // /v1/completions or /v1/chat/completions (after any prefix)
  PromptForm form = PromptForm::kIds;
  std::string models_path;       // /v1/models
  std::string api_key;
  Slots slots;
  std::atomic<std::int64_t> requests{0}, attempts{0}, retries{0};
  std::mutex rng_mutex;
  std::mt19937_64 rng{std::random_device{}()};

  explicit Impl(int concurrency) : slots(concurrency) {}

  double jitter(double bound) {
    if (bound <= 0) return 0;
    std::lock_guard lock(rng_mutex);
    return std::uniform_real_distribution<double>(0.0, bound)(rng);
  }
};

bool OpenAIProvider::available() { return http::available(); }

namespace {
http::RetryPolicy retry_policy(const OpenAIOptions& o) {
  return {o.timeout_seconds, o.max_retries, o.backoff_base_seconds, o.backoff_max_seconds};
}
}  // namespace

OpenAIProvider::OpenAIProvider(OpenAIOptions options) : options_(std::move(options)) {
  const OpenAIOptions& o = options_;
  if (!available())
    throw Error("OpenAIProvider: this build of the library has no HTTP client (built without cpp-httplib; "
                "install libcpp-httplib-dev and rebuild)");
  if (o.max_concurrency < 1) throw Error(fmt::format("OpenAIProvider: max_concurrency {} < 1", o.max_concurrency));
  if (o.prompt_mode != "ids" && o.prompt_mode != "text" && o.prompt_mode != "chat")
    throw Error(fmt::format("OpenAIProvider: prompt_mode \"{}\" is unknown (ids, text or chat)", o.prompt_mode));
  http::check_retry_policy(retry_policy(o), "OpenAIProvider");
  const http::Endpoint endpoint = http::parse_base_url(o.base_url, "OpenAIProvider");
  http::ignore_sigpipe();

  impl_ = std::make_unique<Impl>(o.max_concurrency);
  impl_->origin = endpoint.origin;
  const bool chat = o.prompt_mode == "chat";
  impl_->form = chat ? PromptForm::kMessages : o.prompt_mode == "text" ? PromptForm::kText : PromptForm::kIds;
  impl_->completions_path = endpoint.api + (chat ? "/chat/completions" : "/completions");
  impl_->models_path = endpoint.api + "/models";
  impl_->api_key = http::resolve_api_key(o.api_key, o.api_key_env);
}

OpenAIProvider::~OpenAIProvider() = default;

std::string OpenAIProvider::name() const {
  return options_.model.empty() ? fmt::format("openai:{}", options_.base_url)
                                : fmt::format("openai:{} ({})", options_.base_url, options_.model);
}

OpenAIProvider::Stats OpenAIProvider::stats() const {
  Stats s;
  s.requests = impl_->requests.load();
  s.attempts = impl_->attempts.load();
  s.retries = impl_->retries.load();
  return s;
}

std::vector<Completion> OpenAIProvider::complete(const CompletionRequest& request) {
  const std::string what = fmt::format("OpenAIProvider {}{}", impl_->origin, impl_->completions_path);
  validate_request(request, fmt::format("{} (prompt_mode \"{}\")", what, options_.prompt_mode), impl_->form);
  ++impl_->requests;
  const std::string body =
      impl_->form == PromptForm::kMessages
          ? openai::chat_request_body(request, options_.model, options_.return_token_ids)
          : openai::request_body(request, options_.model, options_.return_token_ids, impl_->form);
  const std::string answer = http::run_with_retries(
      retry_policy(options_), what,
      [&] {
        SlotGuard slot(impl_->slots);
        return http::attempt_once(options_.timeout_seconds, impl_->origin, impl_->api_key, impl_->completions_path,
                                  &body);
      },
      [&] { ++impl_->attempts; }, [&] { ++impl_->retries; }, [&](double bound) { return impl_->jitter(bound); });
  return openai::parse_response_body(answer, request.n, what, !request.attention_control.empty());
}

std::vector<double> OpenAIProvider::prompt_logprobs(const CompletionRequest& request) {
  const std::string path = impl_->completions_path.substr(0, impl_->completions_path.rfind('/')) + "/completions";
  const std::string what = fmt::format("OpenAIProvider {}{} (prompt scoring)", impl_->origin, path);
  if (request.prompt_ids.empty()) throw Error(fmt::format("{}: the request has no prompt_ids", what));
  ++impl_->requests;
  const std::string body = openai::score_request_body(request, options_.model);
  const std::string answer = http::run_with_retries(
      retry_policy(options_), what,
      [&] {
        SlotGuard slot(impl_->slots);
        return http::attempt_once(options_.timeout_seconds, impl_->origin, impl_->api_key, path, &body);
      },
      [&] { ++impl_->attempts; }, [&] { ++impl_->retries; }, [&](double bound) { return impl_->jitter(bound); });
  return openai::parse_score_response(answer, request.prompt_ids.size(), what, !request.attention_control.empty());
}

std::vector<std::string> OpenAIProvider::list_models() {
  const std::string what = fmt::format("OpenAIProvider {}{}", impl_->origin, impl_->models_path);
  ++impl_->requests;
  const std::string answer = http::run_with_retries(
      retry_policy(options_), what,
      [&] {
        SlotGuard slot(impl_->slots);
        return http::attempt_once(options_.timeout_seconds, impl_->origin, impl_->api_key, impl_->models_path,
                                  nullptr);
      },
      [&] { ++impl_->attempts; }, [&] { ++impl_->retries; }, [&](double bound) { return impl_->jitter(bound); });
  std::vector<std::string> ids;
  try {
    const auto doc = nlohmann::json::parse(answer);
    for (const auto& model : doc.at("data")) ids.push_back(model.at("id").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: malformed model list ({})", what, e.what()));
  }
  return ids;
}

}  // namespace anchors::rollout
