// How deeply outside JSON may nest (core/json_depth.h), and that every reader
// refuses deeper documents instead of overflowing the stack. Found with the
// fuzz targets: 100,000 levels of '[' (200 KB) killed the process wherever a
// parsed value was printed or copied -- an error message quoting a field, the
// chat endpoint of `anchors serve` copying the request body, the chat
// labeller copying a candidate answer, a tokenizer's nested Sequence decoders.
#include "anchors/core/json_depth.h"

#include <gtest/gtest.h>

#include <string>

#include "anchors/core/attribution.h"
#include "anchors/core/reference_schema.h"
#include "anchors/core/rollouts.h"
#include "anchors/rollout/chat_labeler.h"
#include "anchors/rollout/openai_format.h"
#include "expect_error.h"

namespace anchors {
namespace {

std::string nested(std::size_t levels, const std::string& inside = "") {
  return std::string(levels, '[') + inside + std::string(levels, ']');
}

TEST(JsonDepth, CountsArraysAndObjectsOutsideStrings) {
  EXPECT_FALSE(json_nests_deeper_than("", 0));
  EXPECT_FALSE(json_nests_deeper_than("1", 0));
  EXPECT_TRUE(json_nests_deeper_than("[]", 0));
  EXPECT_FALSE(json_nests_deeper_than(R"({"a": [1, {"b": []}], "c": {}})", 4));
  EXPECT_TRUE(json_nests_deeper_than(R"({"a": [1, {"b": []}], "c": {}})", 3));
  // Brackets inside strings, escaped quotes included, do not count.
  EXPECT_FALSE(json_nests_deeper_than(R"(["[[[{{{", "\"[[[", "\\"])", 1));
  EXPECT_TRUE(json_nests_deeper_than(R"(["\\", [[]]])", 2));
  EXPECT_FALSE(json_nests_deeper_than(nested(kMaxJsonDepth)));
  EXPECT_TRUE(json_nests_deeper_than(nested(kMaxJsonDepth + 1)));
  EXPECT_ANCHORS_ERROR(check_json_depth(nested(kMaxJsonDepth + 1), "x.json"), "x.json: JSON nests deeper than 512");
}

TEST(JsonDepth, EveryReaderRefusesDeepDocumentsInsteadOfOverflowingTheStack) {
  const std::string deep = nested(100000);
  EXPECT_ANCHORS_ERROR(result_from_json(R"({"format": "thought-anchors/result", "version": )" + deep + "}", "r.json"),
                       "r.json: JSON nests deeper than 512");
  EXPECT_ANCHORS_ERROR(parse_chunks_labeled(R"([{"chunk": "a", "chunk_idx": 0, "x": )" + deep + "}]", "c.json"),
                       "c.json: JSON nests deeper than 512");
  EXPECT_ANCHORS_ERROR(parse_sentence_rollouts(R"([{"answer": )" + deep + "}]", "s.json", 0), "s.json: JSON nests");

  namespace openai = rollout::openai;
  const auto render = [](const std::vector<rollout::ChatMessage>&, bool) { return openai::ChatPrompt{"x", {1}}; };
  EXPECT_ANCHORS_ERROR(openai::parse_chat_request_body(
                           R"({"messages": [{"role": "user", "content": "x"}], "n": )" + deep + "}", render),
                       "the body: JSON nests deeper than 512");
  EXPECT_ANCHORS_ERROR(openai::parse_request_body(R"({"prompt": [1], "n": )" + deep + "}"), "JSON nests");
  EXPECT_ANCHORS_ERROR(openai::parse_response_body(R"({"choices": )" + deep + "}", 1, "answer"),
                       "answer: JSON nests deeper than 512");
  const std::string deep_error = R"({"detail": )" + deep + "}";
  EXPECT_EQ(openai::error_message(deep_error), deep_error.substr(0, 500) + "...");

  EXPECT_ANCHORS_ERROR(rollout::chat_answer_content(R"({"choices": )" + deep + "}", "labels"),
                       "labels: JSON nests deeper than 512");
  // A deep candidate in a model's answer is skipped like any other non-labelling.
  EXPECT_ANCHORS_ERROR(rollout::parse_chat_labels(R"({"0": {"function_tags": )" + deep + "}}", 1),
                       "no JSON object of per-sentence labels");
  EXPECT_EQ(rollout::parse_chat_labels(R"({"0": )" + deep + R"(} then {"0": {"function_tags": ["unknown"]}})", 1)
                .sentences[0]
                .function_tags,
            std::vector<std::string>{"unknown"});
}

}  // namespace
}  // namespace anchors
