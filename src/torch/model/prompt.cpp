#include "anchors/model/prompt.h"

#include <algorithm>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/core/segmentation.h"

namespace anchors::model {
namespace {

constexpr std::string_view kRawPrefix =
    "Solve this math problem step by step. You MUST put your final answer in \\boxed{}. Problem: ";
constexpr std::string_view kRawSuffix = " Solution: \n<think>\n";

// DeepSeek-R1's control tokens (fullwidth bars, U+2581 for the space).
constexpr std::string_view kDeepSeekBos = "<｜begin▁of▁sentence｜>";
constexpr std::string_view kDeepSeekUser = "<｜User｜>";
constexpr std::string_view kDeepSeekAssistant = "<｜Assistant｜>";
constexpr std::string_view kDeepSeekEos = "<｜end▁of▁sentence｜>";

constexpr std::string_view kQwenImStart = "<|im_start|>";
constexpr std::string_view kQwenImEnd = "<|im_end|>";
constexpr std::string_view kThink = "<think>";

// The control tokens a chat format writes into the text of `messages`.
std::vector<std::string_view> control_tokens(PromptFormat format, const std::vector<rollout::ChatMessage>& messages) {
  switch (format) {
    case PromptFormat::kRaw:
      return {};
    case PromptFormat::kDeepSeekR1: {
      std::vector<std::string_view> tokens = {kDeepSeekBos, kDeepSeekUser, kDeepSeekAssistant, kThink};
      for (const auto& m : messages)
        if (m.role == "assistant") return tokens.push_back(kDeepSeekEos), tokens;
      return tokens;
    }
    case PromptFormat::kQwen3:
      return {kQwenImStart, kQwenImEnd, kThink};
  }
  return {};
}

std::string roles_of(const std::vector<rollout::ChatMessage>& messages) {
  std::string out;
  for (const auto& m : messages) out += (out.empty() ? "" : ", ") + m.role;
  return out.empty() ? "none" : out;
}

// What a prior assistant turn keeps: the answer after its reasoning.
std::string_view answer_part(std::string_view content) {
  const auto end = content.rfind("</think>");
  return end == std::string_view::npos ? content : content.substr(end + 8);
}

}  // namespace

std::string prompt_format_name(PromptFormat format) {
  switch (format) {
    case PromptFormat::kRaw:
      return "raw";
    case PromptFormat::kDeepSeekR1:
      return "deepseek_r1";
    case PromptFormat::kQwen3:
      return "qwen3";
  }
  return "?";
}

PromptFormat parse_prompt_format(std::string_view name) {
  for (PromptFormat f : {PromptFormat::kRaw, PromptFormat::kDeepSeekR1, PromptFormat::kQwen3}) {
    if (name == prompt_format_name(f)) return f;
  }
  throw Error(fmt::format("prompt format \"{}\" is unknown (known: raw, deepseek_r1, qwen3)", name));
}

std::string render_prompt_text(PromptFormat format, std::string_view problem) {
  return render_chat_prompt_text(format, {{"user", std::string(problem)}});
}

std::string render_chat_prompt_text(PromptFormat format, const std::vector<rollout::ChatMessage>& messages) {
  const std::string name = prompt_format_name(format);
  bool has_user = false;
  for (std::size_t k = 0; k < messages.size(); ++k) {
    const std::string& role = messages[k].role;
    if (role != "system" && role != "user" && role != "assistant")
      throw Error(fmt::format("prompt format {}: message {} has role \"{}\" (system, user or assistant)", name, k, role));
    if (role == "system" && k > 0)
      throw Error(fmt::format("prompt format {}: a system message comes first only; got roles {}", name,
                              roles_of(messages)));
    has_user = has_user || role == "user";
  }
  if (!has_user)
    throw Error(fmt::format("prompt format {}: the conversation has no user message (roles {})", name,
                            roles_of(messages)));
  std::string text;
  switch (format) {
    case PromptFormat::kRaw:
      if (messages.size() != 1)
        throw Error(fmt::format("prompt format raw renders one user message (the reference's completion prompt has "
                                "no turns); got roles {}",
                                roles_of(messages)));
      text.append(kRawPrefix).append(messages[0].content).append(kRawSuffix);
      break;
    case PromptFormat::kDeepSeekR1:
      // The distills' template: {{bos_token}}{{system}}, '<｜User｜>' + content,
      // '<｜Assistant｜>' + answer + '<｜end▁of▁sentence｜>', and the generation
      // prompt '<｜Assistant｜><think>\n'.
      text.append(kDeepSeekBos);
      for (const auto& m : messages) {
        if (m.role == "system") text.append(m.content);
        if (m.role == "user") text.append(kDeepSeekUser).append(m.content);
        if (m.role == "assistant") text.append(kDeepSeekAssistant).append(answer_part(m.content)).append(kDeepSeekEos);
      }
      text.append(kDeepSeekAssistant).append(kThink).append("\n");
      break;
    case PromptFormat::kQwen3:
      for (const auto& m : messages) {
        std::string_view content = m.content;
        if (m.role == "assistant") {
          content = answer_part(content);
          content.remove_prefix(std::min(content.size(), content.find_first_not_of('\n')));
        }
        text.append(kQwenImStart).append(m.role).append("\n").append(content).append(kQwenImEnd).append("\n");
      }
      text.append(kQwenImStart).append("assistant\n").append(kThink).append("\n");
      break;
  }
  return text;
}

RenderedPrompt render_prompt(const Tokenizer& tokenizer, PromptFormat format, std::string_view problem,
                             std::string_view reasoning, const PromptOptions& options) {
  return render_chat_prompt(tokenizer, format, {{"user", std::string(problem)}}, reasoning, options);
}

RenderedPrompt render_chat_prompt(const Tokenizer& tokenizer, PromptFormat format,
                                  const std::vector<rollout::ChatMessage>& messages, std::string_view reasoning,
                                  const PromptOptions& options) {
  for (std::string_view token : control_tokens(format, messages)) {
    if (!tokenizer.token_to_id(token)) {
      throw Error(fmt::format("prompt format {}: tokenizer {} has no token \"{}\"", prompt_format_name(format),
                              tokenizer.source(), token));
    }
  }
  RenderedPrompt out;
  out.format = format;
  out.text = render_chat_prompt_text(format, messages);
  out.reasoning.begin = out.text.size();
  out.text.append(reasoning);
  out.reasoning.end = out.text.size();

  const bool add_specials = format == PromptFormat::kRaw && options.add_special_tokens;
  std::vector<std::int64_t> prefix, suffix;
  if (add_specials) {
    prefix = tokenizer.special_prefix_ids();
    suffix = tokenizer.special_suffix_ids();
  }
  out.special_prefix = static_cast<std::int64_t>(prefix.size());
  const std::vector<std::int64_t> body = tokenizer.encode(out.text, false).ids;
  out.ids = prefix;
  out.ids.insert(out.ids.end(), body.begin(), body.end());
  out.ids.insert(out.ids.end(), suffix.begin(), suffix.end());

  const auto prompt_count =
      static_cast<std::int64_t>(tokenizer.count_tokens(std::string_view(out.text).substr(0, out.reasoning.begin)));
  out.reasoning_tokens = {out.special_prefix + prompt_count,
                          out.special_prefix + static_cast<std::int64_t>(body.size())};
  return out;
}

void assign_sentence_token_spans(const Tokenizer& tokenizer, const RenderedPrompt& prompt,
                                 std::vector<Sentence>& sentences) {
  const std::string_view full(prompt.text);
  const std::string_view reasoning = full.substr(prompt.reasoning.begin, prompt.reasoning.size());
  // assign_token_spans hands us prefixes of `reasoning`, which lives inside
  // `full`: count the whole rendered text up to the prefix's end.
  const auto count = [&](std::string_view prefix) {
    const auto end = static_cast<std::size_t>(prefix.data() + prefix.size() - full.data());
    return tokenizer.count_tokens(full.substr(0, end));
  };
  assign_token_spans(sentences, reasoning, count, prompt.special_prefix);
}

}  // namespace anchors::model
