// The chat labeller's reading of a model's answer (rollout/chat_labeler.h):
// parse_chat_labels on the answer text, chat_answer_content on the HTTP body.
//
// Input: a byte (bits 0-4: sentence count, bit 5: lenient, bit 6: the rest is
// the HTTP body rather than the answer text), then the text.
#include <algorithm>
#include <cstdint>
#include <string>

#include "anchors/core/function_tags.h"
#include "anchors/rollout/chat_labeler.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace anchors;
  if (size == 0) return 0;
  const std::size_t sentences = data[0] % 32;
  const bool strict = (data[0] & 0x20) == 0;
  const bool http_body = (data[0] & 0x40) != 0;
  std::string text(fuzz::text_of(data + 1, size - 1));
  fuzz::expect_only_anchors_errors([&] {
    if (http_body) text = rollout::chat_answer_content(text);
    const rollout::ChatLabels labels = rollout::parse_chat_labels(text, sentences, strict);
    FUZZ_CHECK(labels.sentences.size() == sentences, "not one entry per sentence");
    for (const auto& s : labels.sentences) {
      FUZZ_CHECK(!s.function_tags.empty(), "a sentence without tags");
      for (const auto& tag : s.function_tags) FUZZ_CHECK(is_function_tag(tag), "not a function tag: " + tag);
      for (const std::size_t d : s.depends_on) FUZZ_CHECK(d < sentences, "a dependency outside the trace");
    }
  });
  return 0;
}
