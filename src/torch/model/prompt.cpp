#include "anchors/model/prompt.h"

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

constexpr std::string_view kQwenImStart = "<|im_start|>";
constexpr std::string_view kQwenImEnd = "<|im_end|>";
constexpr std::string_view kThink = "<think>";

// The control tokens a chat format writes into the text.
std::vector<std::string_view> control_tokens(PromptFormat format) {
  switch (format) {
    case PromptFormat::kRaw:
      return {};
    case PromptFormat::kDeepSeekR1:
      return {kDeepSeekBos, kDeepSeekUser, kDeepSeekAssistant, kThink};
    case PromptFormat::kQwen3:
      return {kQwenImStart, kQwenImEnd, kThink};
  }
  return {};
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
  std::string text;
  switch (format) {
    case PromptFormat::kRaw:
      text.append(kRawPrefix).append(problem).append(kRawSuffix);
      break;
    case PromptFormat::kDeepSeekR1:
      // The distills' template: {{bos_token}}, '<｜User｜>' + content, and the
      // generation prompt '<｜Assistant｜><think>\n'.
      text.append(kDeepSeekBos).append(kDeepSeekUser).append(problem).append(kDeepSeekAssistant).append(kThink).append("\n");
      break;
    case PromptFormat::kQwen3:
      text.append(kQwenImStart).append("user\n").append(problem).append(kQwenImEnd).append("\n");
      text.append(kQwenImStart).append("assistant\n").append(kThink).append("\n");
      break;
  }
  return text;
}

RenderedPrompt render_prompt(const Tokenizer& tokenizer, PromptFormat format, std::string_view problem,
                             std::string_view reasoning, const PromptOptions& options) {
  for (std::string_view token : control_tokens(format)) {
    if (!tokenizer.token_to_id(token)) {
      throw Error(fmt::format("prompt format {}: tokenizer {} has no token \"{}\"", prompt_format_name(format),
                              tokenizer.source(), token));
    }
  }
  RenderedPrompt out;
  out.format = format;
  out.text = render_prompt_text(format, problem);
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
