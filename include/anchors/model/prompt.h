#pragma once
// Prompt formats: the text a reasoning model sees before its chain of thought,
// rendered and tokenised together with the reasoning, with the byte and token
// span of the reasoning inside it. See docs/tokenizers.md.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "anchors/core/sentence.h"
#include "anchors/core/span.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/provider.h"

namespace anchors::model {

enum class PromptFormat {
  // The reference code's completion prompt (docs/design.md §3 "Resampling"):
  // "Solve this math problem step by step. You MUST put your final answer in
  // \boxed{}. Problem: {p} Solution: \n<think>\n" + reasoning.
  kRaw,
  // DeepSeek-R1 (and its Qwen / Llama distills) chat template with a
  // generation prompt: "<｜begin▁of▁sentence｜><｜User｜>{p}<｜Assistant｜><think>\n" + reasoning.
  kDeepSeekR1,
  // Qwen3 chat template, thinking on: "<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n<think>\n" + reasoning.
  kQwen3,
};

// "raw", "deepseek_r1", "qwen3".
std::string prompt_format_name(PromptFormat format);
// Inverse of prompt_format_name; anchors::Error listing the names otherwise.
PromptFormat parse_prompt_format(std::string_view name);

struct PromptOptions {
  // kRaw only: wrap the ids with the tokenizer's post-processor specials, as
  // HF's `tokenizer(text)` does (the BOS of R1-Distill models). The chat
  // formats write their BOS into the text and never add specials.
  bool add_special_tokens = true;
};

struct RenderedPrompt {
  PromptFormat format = PromptFormat::kRaw;
  std::string text;                  // prompt followed by the reasoning, exactly what was tokenised
  std::vector<std::int64_t> ids;     // the model's input ids for `text`
  CharSpan reasoning;                // bytes of `text` holding the reasoning
  // Token positions of the reasoning in `ids`, by prefix tokenisation:
  // begin = ids before text[0, reasoning.begin), end = ids before text[0, reasoning.end).
  TokenSpan reasoning_tokens;
  std::int64_t special_prefix = 0;   // specials the post-processor put before the text (kRaw)
};

// The prompt text alone (what precedes the reasoning).
std::string render_prompt_text(PromptFormat format, std::string_view problem);

// A conversation (scenario files, chat requests to `anchors serve`) before
// the assistant's new turn, as the format's chat template renders it with a
// generation prompt. Roles: "system" (first only), "user", "assistant"; at
// least one user message. One user message renders exactly as
// render_prompt_text(format, content).
//   kDeepSeekR1  BOS, the system text (no marker, as the R1 template), then
//                "<｜User｜>" + content and "<｜Assistant｜>" + content +
//                "<｜end▁of▁sentence｜>", then "<｜Assistant｜><think>\n";
//   kQwen3       "<|im_start|>" + role + "\n" + content + "<|im_end|>\n" per
//                message, then "<|im_start|>assistant\n<think>\n";
//   kRaw         the reference's completion prompt has no turns: exactly one
//                user message.
// A prior assistant turn keeps only what follows its last "</think>" (both
// templates drop earlier turns' reasoning; Qwen3 also its leading newlines).
// anchors::Error naming the roles for anything else.
std::string render_chat_prompt_text(PromptFormat format, const std::vector<rollout::ChatMessage>& messages);

// Renders and tokenises prompt + reasoning. For the chat formats the control
// tokens they use must be tokens of `tokenizer` (anchors::Error naming the
// missing one otherwise: they would silently become several ordinary tokens).
RenderedPrompt render_prompt(const Tokenizer& tokenizer, PromptFormat format, std::string_view problem,
                             std::string_view reasoning = "", const PromptOptions& options = {});
// The same for a conversation (render_chat_prompt_text); render_prompt is the
// one-user-message case.
RenderedPrompt render_chat_prompt(const Tokenizer& tokenizer, PromptFormat format,
                                  const std::vector<rollout::ChatMessage>& messages, std::string_view reasoning = "",
                                  const PromptOptions& options = {});

// Sets each sentence's token span in `prompt.ids` positions. The sentences'
// char spans index the reasoning (prompt.text[prompt.reasoning], i.e. the
// `reasoning` given to render_prompt, as split_sentences returns them); token
// spans follow prefix-tokenisation semantics over the whole rendered text
// (anchors::assign_token_spans): begin = special_prefix + count(text[0, reasoning.begin + chars.begin)).
void assign_sentence_token_spans(const Tokenizer& tokenizer, const RenderedPrompt& prompt,
                                 std::vector<Sentence>& sentences);

}  // namespace anchors::model
