#include "anchors/rollout/provider.h"

#include <cmath>

#include <fmt/format.h>

#include "anchors/core/error.h"

namespace anchors::rollout {

std::string prompt_form_name(PromptForm form) {
  switch (form) {
    case PromptForm::kAny:
      return "any";
    case PromptForm::kIds:
      return "ids";
    case PromptForm::kText:
      return "text";
    case PromptForm::kMessages:
      return "messages";
  }
  return "?";
}

std::vector<double> RolloutProvider::prompt_logprobs(const CompletionRequest&) {
  throw Error(fmt::format("{}: cannot score prompts (log-probabilities need a LocalProvider, or a server that answers "
                          "/v1/completions with echo and logprobs, such as vLLM or `anchors serve`)",
                          name()));
}

SpanLogprob span_logprob(const std::vector<double>& logprobs, const std::vector<std::pair<std::size_t, std::size_t>>& spans,
                         std::size_t span_begin, std::size_t span_end) {
  if (logprobs.size() != spans.size())
    throw Error(fmt::format("span_logprob: {} log-probabilities for {} token spans", logprobs.size(), spans.size()));
  SpanLogprob out;
  for (std::size_t k = 0; k < spans.size(); ++k) {
    const auto [begin, end] = spans[k];
    if (begin >= end || end <= span_begin || begin >= span_end || std::isnan(logprobs[k])) continue;
    out.sum += logprobs[k];
    ++out.tokens;
  }
  out.mean = out.tokens > 0 ? out.sum / static_cast<double>(out.tokens) : std::nan("");
  return out;
}

void validate_request(const CompletionRequest& r, const std::string& where, PromptForm needs) {
  const bool has_ids = !r.prompt_ids.empty();
  const bool has_text = !r.prompt_text.empty();
  const bool has_messages = !r.messages.empty();
  switch (needs) {
    case PromptForm::kAny:
      if (!has_ids && !has_text && !has_messages)
        throw Error(fmt::format("{}: empty prompt (give prompt_ids, prompt_text or messages)", where));
      break;
    case PromptForm::kIds:
      if (!has_ids)
        throw Error(fmt::format("{}: empty prompt: this provider needs the prompt as token ids (prompt_ids){}", where,
                                has_text || has_messages ? "; only text / messages were given" : ""));
      break;
    case PromptForm::kText:
      if (!has_text)
        throw Error(fmt::format("{}: no prompt_text: this provider sends the prompt as text{}", where,
                                has_ids || has_messages ? "; only ids / messages were given" : ""));
      break;
    case PromptForm::kMessages:
      if (!has_messages)
        throw Error(fmt::format("{}: no messages: this provider sends the prompt as chat messages{}", where,
                                has_ids || has_text ? "; only ids / text were given" : ""));
      break;
  }
  for (std::size_t i = 0; i < r.prompt_ids.size(); ++i)
    if (r.prompt_ids[i] < 0) throw Error(fmt::format("{}: prompt id {} at index {} is negative", where, r.prompt_ids[i], i));
  for (std::size_t i = 0; i < r.messages.size(); ++i)
    if (r.messages[i].role.empty()) throw Error(fmt::format("{}: messages[{}] has no role", where, i));
  if (r.n < 1) throw Error(fmt::format("{}: n {} < 1", where, r.n));
  if (!std::isfinite(r.temperature) || r.temperature < 0)
    throw Error(fmt::format("{}: temperature {} must be finite and >= 0", where, r.temperature));
  if (!(r.top_p > 0.0 && r.top_p <= 1.0)) throw Error(fmt::format("{}: top_p {} outside (0, 1]", where, r.top_p));
  if (r.top_k < 0) throw Error(fmt::format("{}: top_k {} < 0", where, r.top_k));
  if (r.max_tokens < 0) throw Error(fmt::format("{}: max_tokens {} < 0", where, r.max_tokens));
  for (const auto& s : r.stop)
    if (s.empty()) throw Error(fmt::format("{}: empty stop string", where));
  if (!(r.min_p >= 0.0 && r.min_p <= 1.0)) throw Error(fmt::format("{}: min_p {} outside [0, 1]", where, r.min_p));
  if (!std::isfinite(r.repetition_penalty) || r.repetition_penalty <= 0)
    throw Error(fmt::format("{}: repetition_penalty {} must be finite and > 0", where, r.repetition_penalty));
  if (!std::isfinite(r.presence_penalty))
    throw Error(fmt::format("{}: presence_penalty {} must be finite", where, r.presence_penalty));
  if (!std::isfinite(r.frequency_penalty))
    throw Error(fmt::format("{}: frequency_penalty {} must be finite", where, r.frequency_penalty));
  if (!r.attention_control.every_lane())
    throw Error(fmt::format("{}: attention_control regions must apply to every lane (lane -1): a request's lanes "
                            "are the provider's",
                            where));
  try {
    r.attention_control.validate(/*batch=*/1);  // heads and layers: the model checks them
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", where, e.what()));
  }
}

}  // namespace anchors::rollout
