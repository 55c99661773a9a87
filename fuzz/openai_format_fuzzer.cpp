// The OpenAI wire format (rollout/openai_format.h): request bodies as
// `anchors serve` reads them, response bodies as OpenAIProvider reads them.
// Every bad body must be an anchors::Error (the server answers 400 with its
// message). A request that parses must pass validate_request, and must read
// back the same after OpenAIProvider writes it.
//
// Input: mode byte, then the body
//   '0' POST /v1/completions body        -> parse_request_body
//   '1' POST /v1/chat/completions body   -> parse_chat_request_body
//   '2' a completions answer             -> parse_response_body (n from the next byte)
//   '3' an error answer                  -> error_message (never fails)
#include <cstdint>
#include <string>
#include <vector>

#include "anchors/rollout/openai_format.h"
#include "fuzz_common.h"

namespace {

using namespace anchors;
using namespace anchors::rollout;

// A stand-in tokenizer: one id per byte.
std::vector<std::int64_t> tokenize(const std::string& text) {
  return std::vector<std::int64_t>(text.begin(), text.end());
}

openai::ChatPrompt render(const std::vector<ChatMessage>& messages, bool continue_final) {
  openai::ChatPrompt prompt;
  for (const auto& m : messages) prompt.text += "<" + m.role + ">" + m.content;
  if (!continue_final) prompt.text += "<assistant>";
  for (const char c : prompt.text) prompt.ids.push_back(static_cast<unsigned char>(c));
  return prompt;
}

bool same_sampling(const CompletionRequest& a, const CompletionRequest& b) {
  return a.n == b.n && a.temperature == b.temperature && a.top_p == b.top_p && a.top_k == b.top_k &&
         a.max_tokens == b.max_tokens && a.stop == b.stop && a.min_p == b.min_p &&
         a.repetition_penalty == b.repetition_penalty && a.presence_penalty == b.presence_penalty &&
         a.frequency_penalty == b.frequency_penalty && a.seed == b.seed && a.attention_control == b.attention_control;
}

void check_request(const openai::ParsedRequest& parsed, bool chat) {
  fuzz::expect_no_exception("a parsed request", [&] {
    validate_request(parsed.request, "parsed request", PromptForm::kIds);
    // What OpenAIProvider would send for it reads back the same.
    const CompletionRequest& r = parsed.request;
    const openai::ParsedRequest again =
        chat ? openai::parse_chat_request_body(openai::chat_request_body(r, parsed.model), render)
             : openai::parse_request_body(openai::request_body(r, parsed.model), tokenize);
    FUZZ_CHECK(same_sampling(again.request, r), "sampling fields changed on the way back");
    FUZZ_CHECK(again.model == parsed.model, "model changed on the way back");
    if (chat) FUZZ_CHECK(again.request.messages == r.messages, "messages changed on the way back");
    else FUZZ_CHECK(again.request.prompt_ids == r.prompt_ids, "prompt ids changed on the way back");
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = fuzz::split_mode(data, size, 4);
  std::string body(input.rest);
  switch (input.mode) {
    case 0:
    case 1: {
      const bool chat = input.mode == 1;
      std::optional<openai::ParsedRequest> parsed;
      fuzz::expect_only_anchors_errors([&] {
        parsed = chat ? openai::parse_chat_request_body(body, render) : openai::parse_request_body(body, tokenize);
      });
      if (parsed) check_request(*parsed, chat);
      break;
    }
    case 2: {
      const std::int64_t n = body.empty() ? 1 : static_cast<std::int64_t>(static_cast<unsigned char>(body[0]) % 8);
      if (!body.empty()) body.erase(0, 1);
      fuzz::expect_only_anchors_errors([&] {
        const auto completions = openai::parse_response_body(body, n);
        FUZZ_CHECK(static_cast<std::int64_t>(completions.size()) == n, "not n completions");
      });
      break;
    }
    default:
      fuzz::expect_no_exception("error_message", [&] { openai::error_message(body); });
      break;
  }
  return 0;
}
