#include "anchors/rollout/chat_similarity.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "anchors/core/error.h"

namespace anchors::rollout {
namespace {

// The pair's text inside the prompt; each placeholder is filled once, so a
// sentence that itself contains "{b}" stays as written.
std::string fill(const std::string& prompt, const std::string& a, const std::string& b) {
  const std::size_t at_a = prompt.find("{a}"), at_b = prompt.find("{b}");
  if (at_a < at_b)
    return prompt.substr(0, at_a) + a + prompt.substr(at_a + 3, at_b - at_a - 3) + b + prompt.substr(at_b + 3);
  return prompt.substr(0, at_b) + b + prompt.substr(at_b + 3, at_a - at_b - 3) + a + prompt.substr(at_a + 3);
}

std::string opening(const std::string& s) { return s.size() <= 60 ? s : s.substr(0, 60) + "..."; }

}  // namespace

ChatSimilarity::ChatSimilarity(ChatSimilarityOptions options) : options_(std::move(options)) {
  if (options_.prompt.find("{a}") == std::string::npos || options_.prompt.find("{b}") == std::string::npos)
    throw Error("ChatSimilarity: the prompt needs both placeholders {a} and {b} (the two sentences)");
  if (options_.labels.size() < 2)
    throw Error("ChatSimilarity: labels need at least two entries (the first means \"the same content\")");
  ChatJudgeOptions judge = options_.judge;
  judge.prompt = "{text}";  // the whole user message is the filled-in pair prompt
  judge.labels = options_.labels;
  judge_ = std::make_shared<ChatJudge>(std::move(judge));
}

std::vector<double> ChatSimilarity::similarities(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::vector<double> out;
  out.reserve(pairs.size());
  for (const auto& [a, b] : pairs) {
    const OutcomeLabel answer = judge_->classify(fill(options_.prompt, a, b));
    if (!answer.label)
      throw Error(fmt::format("ChatSimilarity {}: the judge answered \"{}\" to the pair (\"{}\", \"{}\"); expected one "
                              "of the labels {}",
                              options_.judge.base_url, opening(answer.raw), opening(a), opening(b),
                              fmt::join(options_.labels, ", ")));
    out.push_back(judge_->matches(*answer.label, options_.labels.front()) ? 1.0 : 0.0);
  }
  return out;
}

}  // namespace anchors::rollout
