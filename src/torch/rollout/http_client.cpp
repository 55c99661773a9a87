#include "http_client.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <regex>
#include <thread>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/rollout/openai_format.h"

#ifndef ANCHORS_WITH_HTTPLIB
#define ANCHORS_WITH_HTTPLIB 0
#endif
#if ANCHORS_WITH_HTTPLIB
#include <httplib.h>
#endif

namespace anchors::rollout::http {

bool available() { return ANCHORS_WITH_HTTPLIB != 0; }

Endpoint parse_base_url(const std::string& base_url, const std::string& who) {
  static const std::regex kUrl(R"(^(https?://[^/?#\s]+)(/[^?#\s]*)?$)", std::regex::icase);
  std::smatch m;
  if (!std::regex_match(base_url, m, kUrl))
    throw Error(fmt::format("{}: base_url \"{}\" is not of the form http(s)://host[:port][/prefix]", who, base_url));
  Endpoint e;
  e.origin = m[1].str();
  std::string prefix = m[2].str();
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  const bool has_v1 = prefix.size() >= 3 && prefix.compare(prefix.size() - 3, 3, "/v1") == 0;
  e.api = has_v1 ? prefix : prefix + "/v1";
  return e;
}

std::string resolve_api_key(const std::string& key, const std::string& env_name) {
  if (!key.empty() || env_name.empty()) return key;
  const char* env = std::getenv(env_name.c_str());
  return env != nullptr ? std::string(env) : std::string();
}

void ignore_sigpipe() {
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) std::signal(SIGPIPE, SIG_IGN);
}

void check_retry_policy(const RetryPolicy& p, const std::string& who) {
  if (p.max_retries < 0) throw Error(fmt::format("{}: max_retries {} < 0", who, p.max_retries));
  if (!(p.timeout_seconds > 0) || !std::isfinite(p.timeout_seconds))
    throw Error(fmt::format("{}: timeout_seconds {} must be > 0", who, p.timeout_seconds));
  if (!(p.backoff_base_seconds >= 0) || !(p.backoff_max_seconds >= 0) || !std::isfinite(p.backoff_max_seconds) ||
      !std::isfinite(p.backoff_base_seconds))
    throw Error(fmt::format("{}: backoff_base_seconds and backoff_max_seconds must be finite and >= 0", who));
}

#if ANCHORS_WITH_HTTPLIB
namespace {

bool retryable_transport_error(httplib::Error e) {
  switch (e) {
    case httplib::Error::BindIPAddress:
    case httplib::Error::ExceedRedirectCount:
    case httplib::Error::SSLLoadingCerts:
    case httplib::Error::SSLServerVerification:
    case httplib::Error::UnsupportedMultipartBoundaryChars:
      return false;
    default:
      return true;
  }
}

void set_timeouts(httplib::Client& client, double seconds) {
  const auto whole = static_cast<time_t>(seconds);
  const auto micros = static_cast<time_t>(std::llround((seconds - static_cast<double>(whole)) * 1e6));
  client.set_connection_timeout(whole, micros);
  client.set_read_timeout(whole, micros);
  client.set_write_timeout(whole, micros);
}

}  // namespace

Outcome attempt_once(double timeout_seconds, const std::string& origin, const std::string& api_key,
                     const std::string& path, const std::string* body) {
  Outcome out;
  httplib::Client client(origin);
  if (!client.is_valid()) {
    out.failure = fmt::format("cannot create an HTTP client for {}", origin);
    return out;
  }
  set_timeouts(client, timeout_seconds);
  client.set_keep_alive(false);
  httplib::Headers headers;
  if (!api_key.empty()) headers.emplace("Authorization", "Bearer " + api_key);
  httplib::Result res = body != nullptr ? client.Post(path, headers, *body, "application/json")
                                        : client.Get(path, headers);
  if (!res) {
    out.retryable = retryable_transport_error(res.error());
    out.failure = fmt::format("{} ({})", httplib::to_string(res.error()),
                              res.error() == httplib::Error::Read
                                  ? "no answer within the timeout, or the connection dropped"
                                  : "request failed");
    return out;
  }
  const int status = res->status;
  if (status >= 200 && status < 300) {
    out.ok = true;
    out.body = std::move(res->body);
    return out;
  }
  out.retryable = status == 429 || status >= 500;
  out.failure = fmt::format("HTTP {}: {}", status, openai::error_message(res->body));
  if (res->has_header("Retry-After")) {
    try {
      out.retry_after = std::stod(res->get_header_value("Retry-After"));
    } catch (const std::exception&) {
      out.retry_after = 0;  // an HTTP date: fall back to the backoff
    }
  }
  return out;
}

#else  // no cpp-httplib: every attempt fails for good

Outcome attempt_once(double, const std::string&, const std::string&, const std::string&, const std::string*) {
  Outcome out;
  out.failure = "built without cpp-httplib";
  return out;
}

#endif

std::string run_with_retries(const RetryPolicy& p, const std::string& what, const std::function<Outcome()>& attempt,
                             const std::function<void()>& count_attempt, const std::function<void()>& count_retry,
                             const std::function<double(double)>& jitter) {
  std::string last;
  for (int r = 0;; ++r) {
    count_attempt();
    Outcome out = attempt();
    if (out.ok) return std::move(out.body);
    if (!out.retryable) throw Error(fmt::format("{}: {}", what, out.failure));
    last = out.failure;
    if (r >= p.max_retries) break;
    count_retry();
    const double cap = std::min(p.backoff_max_seconds, p.backoff_base_seconds * std::ldexp(1.0, std::min(r, 60)));
    double wait = jitter(cap);
    if (out.retry_after > wait) wait = std::min(out.retry_after, p.backoff_max_seconds);
    if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  }
  throw Error(fmt::format("{}: giving up after {} attempt{}; last failure: {}", what, p.max_retries + 1,
                          p.max_retries == 0 ? "" : "s", last));
}

}  // namespace anchors::rollout::http
