#include "rollout_batches.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/core/segmentation.h"
#include "anchors/model/prompt.h"
#include "anchors/rollout/analyze.h"

namespace anchors::rollout::detail {

std::string first_sentence(const std::string& text) {
  const auto sentences = split_sentences(text);
  return sentences.empty() ? std::string() : sentences.front().text;
}

void check_sampling(const std::string& who, const SamplingSettings& s, std::int64_t num_rollouts,
                    std::int64_t max_tokens) {
  if (num_rollouts < 1) throw Error(fmt::format("{}: num_rollouts must be >= 1, got {}", who, num_rollouts));
  if (s.batch < 1) throw Error(fmt::format("{}: batch must be >= 1, got {}", who, s.batch));
  if (max_tokens < 1) throw Error(fmt::format("{}: max_tokens must be >= 1, got {}", who, max_tokens));
  if (!(s.temperature >= 0)) throw Error(fmt::format("{}: temperature must be >= 0", who));
  if (!(s.top_p > 0 && s.top_p <= 1)) throw Error(fmt::format("{}: top_p must be in (0, 1]", who));
}

std::int64_t capped_max_tokens(std::int64_t wanted, std::size_t prompt_tokens, std::int64_t max_positions) {
  if (max_positions <= 0) return wanted;
  return std::min<std::int64_t>(wanted, max_positions - static_cast<std::int64_t>(prompt_tokens));
}

std::optional<Problem> trace_scenario(const Trace& trace) {
  const auto scenario = trace.metadata.find("scenario");
  if (scenario == trace.metadata.end() || scenario->second.empty()) return std::nullopt;
  return parse_scenario(scenario->second, "the trace's metadata \"scenario\"");
}

std::string trace_prompt(const Trace& trace, const std::string& given, const std::string& who) {
  if (!given.empty()) return given;
  if (!trace.prompt.empty()) return trace.prompt;
  if (const auto scenario = trace_scenario(trace)) return analysis_prompt(*scenario, "");
  const auto problem = trace.metadata.find("problem");
  if (problem == trace.metadata.end() || problem->second.empty())
    throw Error(fmt::format("{}: no prompt: the trace has none and names neither a problem (metadata \"problem\") "
                            "nor a scenario (metadata \"scenario\")",
                            who));
  return model::render_prompt_text(model::PromptFormat::kRaw, problem->second);
}

CompletionRequest prefix_request(const Trace& trace, const std::string& prompt, const std::string& prefix,
                                 const model::Tokenizer& tokenizer, const SamplingSettings& sampling, std::int64_t n,
                                 std::int64_t max_tokens, std::int64_t max_positions) {
  CompletionRequest request;
  request.prompt_text = prompt + prefix;
  request.prompt_ids = tokenizer.encode(request.prompt_text, true).ids;
  request.messages = chat_messages(trace, prefix);
  request.n = n;
  request.temperature = sampling.temperature;
  request.top_p = sampling.top_p;
  request.min_p = sampling.min_p;
  request.repetition_penalty = sampling.repetition_penalty;
  request.attention_control = sampling.attention_control;
  request.max_tokens = capped_max_tokens(max_tokens, request.prompt_ids.size(), max_positions);
  return request;
}

std::vector<ChatMessage> chat_messages(const Trace& trace, const std::string& assistant_prefix) {
  std::vector<ChatMessage> messages;
  if (const auto scenario = trace_scenario(trace)) {
    messages = problem_messages(*scenario);
  } else if (const auto problem = trace.metadata.find("problem"); problem != trace.metadata.end()) {
    messages = {{"user", problem->second}};
  } else {
    return {};
  }
  messages.push_back({"assistant", assistant_prefix});
  return messages;
}

void label_rollout(const Outcome& outcome, const std::string& text, const std::string& target, Rollout& rollout) {
  OutcomeLabel l = outcome.classify(text);
  rollout.answer = l.label.value_or("");
  rollout.outcome_raw = std::move(l.raw);
  if (target.empty()) {
    rollout.is_correct.reset();
  } else {
    rollout.is_correct = l.label.has_value() && outcome.matches(*l.label, target);
  }
}

void generate_missing(RolloutProvider& provider, RolloutStore& store, const RolloutTask& task,
                      const SamplingSettings& sampling, const Outcome& outcome, const std::string& target,
                      std::int64_t wanted, const std::function<std::uint64_t(std::int64_t)>& seed,
                      RolloutCounts& counts, const std::function<void()>& check_cancel,
                      const std::function<void(std::int64_t)>& after_batch) {
  const std::vector<std::int64_t> missing =
      store.missing_indices(task.chunk, task.forced, static_cast<std::size_t>(wanted));
  std::map<std::int64_t, std::vector<std::int64_t>> batches;  // batch index -> sample indices
  for (std::int64_t index : missing) batches[index / sampling.batch].push_back(index);
  for (const auto& [b, indices] : batches) {
    check_cancel();
    std::vector<RolloutRecord> records;
    std::string broken;
    try {
      if (task.max_tokens < 1) throw Error(task.no_room);
      CompletionRequest request;
      // The prompt in every form: each provider sends the one its mode needs
      // (ids are exact; text and chat are re-tokenised by the server).
      request.prompt_ids = task.ids;
      request.prompt_text = task.head;
      request.messages = task.messages;
      request.min_p = sampling.min_p;
      request.repetition_penalty = sampling.repetition_penalty;
      request.presence_penalty = sampling.presence_penalty;
      request.frequency_penalty = sampling.frequency_penalty;
      request.attention_control = sampling.attention_control;
      request.n = indices.back() - b * sampling.batch + 1;  // lanes 0..last missing (lanes do not depend on n)
      request.temperature = sampling.temperature;
      request.top_p = sampling.top_p;
      request.max_tokens = task.max_tokens;
      request.seed = seed(b);
      const auto completions = provider.complete(request);
      if (static_cast<std::int64_t>(completions.size()) != request.n) {
        broken = fmt::format("{} returned {} completions for n = {}", provider.name(), completions.size(), request.n);
        throw Error(broken);
      }
      for (std::int64_t index : indices) {
        const Completion& c = completions[static_cast<std::size_t>(index - b * sampling.batch)];
        RolloutRecord record;
        record.sample_index = index;
        Rollout& r = record.rollout;
        r.chunk_removed = task.chunk_removed;
        r.prefix_without_chunk = task.prefix;
        r.rollout = c.text;
        r.chunk_resampled = first_sentence(c.text);
        r.full_cot = task.head + c.text;
        label_rollout(outcome, task.stub + c.text, target, r);
        records.push_back(std::move(record));
      }
      counts.generated += static_cast<std::int64_t>(indices.size());
    } catch (const Error& e) {
      if (!broken.empty()) throw;
      if (counts.first_failure.empty()) counts.first_failure = e.what();
      records.clear();
      for (std::int64_t index : indices)
        records.push_back(RolloutRecord::failure(e.what(), task.chunk_removed, task.prefix, index));
      counts.failed += static_cast<std::int64_t>(indices.size());
    }
    store.append_rollouts(task.chunk, task.forced, records);
    after_batch(static_cast<std::int64_t>(indices.size()));
  }
}

}  // namespace anchors::rollout::detail
