// ChatJudge: an Outcome read by a chat model (chat_judge.h). Shares the HTTP
// plumbing of OpenAIProvider and ChatLabeler (http_client.h).
#include "anchors/rollout/chat_judge.h"

#include <atomic>
#include <cctype>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/rollout/chat_labeler.h"
#include "http_client.h"

namespace anchors::rollout {
namespace {

std::string lower_trimmed(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  std::string t = s.substr(first, last - first + 1);
  for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return t;
}

http::RetryPolicy retry_policy(const ChatJudgeOptions& o) {
  return {o.timeout_seconds, o.max_retries, o.backoff_base_seconds, o.backoff_max_seconds};
}

}  // namespace

std::optional<std::string> judge_label(const std::string& answer, const std::vector<std::string>& labels) {
  // A reasoning judge may think out loud first.
  std::string text = answer;
  if (const auto think = text.rfind("</think>"); think != std::string::npos) text = text.substr(think + 8);
  const auto first = text.find_first_not_of(" \t\r\n\"'*`");
  if (first == std::string::npos) return std::nullopt;
  text = text.substr(first);
  const auto last = text.find_last_not_of(" \t\r\n\"'*`.");
  text = last == std::string::npos ? std::string() : text.substr(0, last + 1);
  if (text.empty()) return std::nullopt;
  if (labels.empty()) return text;
  const std::string lowered = lower_trimmed(text);
  for (const auto& label : labels) {
    const std::string l = lower_trimmed(label);
    if (lowered.compare(0, l.size(), l) != 0) continue;
    // "no" must not match "none": the label ends at a non-alphanumeric character.
    if (lowered.size() > l.size() && std::isalnum(static_cast<unsigned char>(lowered[l.size()]))) continue;
    return label;
  }
  return std::nullopt;
}

struct ChatJudge::Impl {
  std::string origin, path, api_key;
  std::atomic<std::int64_t> requests{0};
  mutable std::mutex mutex;  // cache and rng
  std::map<std::string, OutcomeLabel> cache;
  std::mt19937_64 rng{std::random_device{}()};
};

ChatJudge::ChatJudge(ChatJudgeOptions options) : options_(std::move(options)) {
  if (!http::available())
    throw Error("ChatJudge: this build of the library has no HTTP client (built without cpp-httplib; "
                "install libcpp-httplib-dev and rebuild)");
  if (options_.prompt.find("{text}") == std::string::npos)
    throw Error("ChatJudge: the prompt has no \"{text}\" placeholder for the rollout's text");
  for (const auto& l : options_.labels)
    if (lower_trimmed(l).empty()) throw Error("ChatJudge: an allowed label is empty");
  http::check_retry_policy(retry_policy(options_), "ChatJudge");
  const http::Endpoint endpoint = http::parse_base_url(options_.base_url, "ChatJudge");
  http::ignore_sigpipe();
  impl_ = std::make_unique<Impl>();
  impl_->origin = endpoint.origin;
  impl_->path = endpoint.api + "/chat/completions";
  impl_->api_key = http::resolve_api_key(options_.api_key);
}

ChatJudge::~ChatJudge() = default;

std::int64_t ChatJudge::requests() const { return impl_->requests.load(); }

OutcomeLabel ChatJudge::classify(const std::string& text) const {
  {
    std::lock_guard lock(impl_->mutex);
    if (auto it = impl_->cache.find(text); it != impl_->cache.end()) return it->second;
  }
  std::string user = options_.prompt;
  user.replace(user.find("{text}"), 6, text);
  nlohmann::json body = {{"model", options_.model}, {"temperature", options_.temperature}};
  nlohmann::json messages = nlohmann::json::array();
  if (!options_.system.empty()) messages.push_back({{"role", "system"}, {"content", options_.system}});
  messages.push_back({{"role", "user"}, {"content", user}});
  body["messages"] = std::move(messages);
  if (options_.max_tokens > 0) body["max_tokens"] = options_.max_tokens;
  // Invalid UTF-8 in a rollout is replaced rather than failing the request.
  const std::string payload = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const std::string what = fmt::format("ChatJudge {}{}", impl_->origin, impl_->path);
  ++impl_->requests;
  const std::string answer = http::run_with_retries(
      retry_policy(options_), what,
      [&] { return http::attempt_once(options_.timeout_seconds, impl_->origin, impl_->api_key, impl_->path, &payload); },
      [] {}, [] {},
      [&](double bound) {
        if (bound <= 0) return 0.0;
        std::lock_guard lock(impl_->mutex);
        return std::uniform_real_distribution<double>(0.0, bound)(impl_->rng);
      });
  const std::string content = chat_answer_content(answer, what);
  OutcomeLabel out{judge_label(content, options_.labels), content};
  std::lock_guard lock(impl_->mutex);
  impl_->cache.emplace(text, out);
  return out;
}

bool ChatJudge::matches(const std::string& label, const std::string& target) const {
  return lower_trimmed(label) == lower_trimmed(target);
}

std::string ChatJudge::distribution_key(const std::string& label) const { return lower_trimmed(label); }

std::shared_ptr<const Outcome> outcome_from_spec(const std::string& spec, const ChatJudgeOptions& judge) {
  if (spec.rfind("judge:", 0) == 0) {
    ChatJudgeOptions o = judge;
    o.base_url = spec.substr(6);
    return std::make_shared<ChatJudge>(std::move(o));
  }
  return anchors::outcome_from_spec(spec);
}

}  // namespace anchors::rollout
