// The network-free half of the chat labeller (chat_labeler.h): the prompt,
// the request body and the reading of answers. The HTTP client is tested in
// tests/cpp/model/chat_labeler_test.cpp against a loopback server.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/function_tags.h"
#include "anchors/core/segmentation.h"
#include "anchors/rollout/chat_labeler.h"

namespace anchors::rollout {
namespace {

using json = nlohmann::json;

Trace three_sentences() {
  Trace t;
  t.text = "First we add the numbers. 2 + 3 = 5. So the answer is 5.";
  t.sentences = split_sentences(t.text);
  return t;
}

std::string error_of(const std::string& content, std::size_t n = 3) {
  try {
    parse_chat_labels(content, n);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ChatLabelsTest, PromptNumbersSentencesAndDefinesEveryCategory) {
  Trace trace = three_sentences();
  trace.metadata["problem"] = "What is 2 + 3?";
  const auto messages = chat_label_messages(trace);
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].role, "system");
  EXPECT_EQ(messages[1].role, "user");
  const std::string& user = messages[1].content;
  EXPECT_NE(user.find("[0] First we add the numbers.\n[1] 2 + 3 = 5.\n[2] So the answer is 5.\n"), std::string::npos)
      << user;
  EXPECT_NE(user.find("Problem:\nWhat is 2 + 3?"), std::string::npos);
  for (const std::string& tag : function_tag_names()) EXPECT_NE(user.find("- " + tag + ": "), std::string::npos) << tag;
  EXPECT_NE(user.find("\"depends_on\""), std::string::npos);
  // An explicit problem wins over the metadata; none at all leaves the section out.
  EXPECT_NE(chat_label_messages(trace, "Other problem")[1].content.find("Problem:\nOther problem"), std::string::npos);
  EXPECT_EQ(chat_label_messages(three_sentences())[1].content.find("Problem:"), std::string::npos);
}

TEST(ChatLabelsTest, RequestBody) {
  ChatLabelerOptions o;
  o.model = "m";
  const json body = json::parse(chat_label_request_body(three_sentences(), o));
  EXPECT_EQ(body["model"], "m");
  EXPECT_EQ(body["temperature"], 0.0);
  EXPECT_FALSE(body.contains("max_tokens"));
  EXPECT_FALSE(body.contains("response_format"));
  EXPECT_EQ(body["messages"].size(), 2u);
  o.model.clear();
  o.max_tokens = 100;
  o.json_mode = true;
  const json other = json::parse(chat_label_request_body(three_sentences(), o));
  EXPECT_FALSE(other.contains("model"));
  EXPECT_EQ(other["max_tokens"], 100);
  EXPECT_EQ(other["response_format"]["type"], "json_object");
  EXPECT_THROW(chat_label_request_body(Trace{}, o), Error);
}

TEST(ChatLabelsTest, ReadsJsonAloneInFencesAfterThinkingOrInProse) {
  const std::string labels =
      R"({"0": {"function_tags": ["plan_generation"], "depends_on": []},
          "1": {"function_tags": ["active_computation"], "depends_on": ["0"]},
          "2": {"function_tags": ["final_answer_emission"], "depends_on": [1, 1]}})";
  for (const std::string& content :
       {labels, "```json\n" + labels + "\n```", "Sure! Here you go:\n```\n" + labels + "\n```\nAnything else?",
        "<think>Sentence {0} plans. [1] computes.</think>\n" + labels,
        "The labels are " + labels + " as requested."}) {
    const ChatLabels parsed = parse_chat_labels(content, 3);
    ASSERT_EQ(parsed.sentences.size(), 3u) << content;
    EXPECT_EQ(parsed.sentences[0], (SentenceLabels{{"plan_generation"}, {}})) << content;
    EXPECT_EQ(parsed.sentences[1], (SentenceLabels{{"active_computation"}, {0}})) << content;
    EXPECT_EQ(parsed.sentences[2], (SentenceLabels{{"final_answer_emission"}, {1}})) << content;  // duplicate dropped
    EXPECT_EQ(parsed.content, content);
  }
}

TEST(ChatLabelsTest, ToleratesSpellingAndListForm) {
  const ChatLabels parsed = parse_chat_labels(
      R"([{"chunk_idx": 2, "function_tags": "Final Answer Emission"},
          {"chunk_idx": "0", "function_tags": ["Plan-Generation", "fact_retrieval"], "depends_on": null},
          {"index": 1, "function_tags": ["ACTIVE_COMPUTATION"], "depends_on": 0}])",
      3);
  EXPECT_EQ(parsed.sentences[0].function_tags, (std::vector<std::string>{"plan_generation", "fact_retrieval"}));
  EXPECT_EQ(parsed.sentences[1], (SentenceLabels{{"active_computation"}, {0}}));
  EXPECT_EQ(parsed.sentences[2].function_tags, (std::vector<std::string>{"final_answer_emission"}));
}

TEST(ChatLabelsTest, StrictErrorsNameTheProblemAndQuoteTheAnswer) {
  const std::string ok1 = R"("1": {"function_tags": ["active_computation"]})";
  const std::string ok2 = R"("2": {"function_tags": ["final_answer_emission"]})";
  EXPECT_NE(error_of("no labels here").find("no JSON object of per-sentence labels"), std::string::npos);
  EXPECT_NE(error_of("no labels here").find("(answer: \"no labels here\")"), std::string::npos);
  EXPECT_NE(error_of(R"({"a": 1})").find("no JSON object"), std::string::npos);
  EXPECT_NE(error_of(R"({"0": {"function_tags": ["vibes"]}, )" + ok1 + ", " + ok2 + "}")
                .find("sentence 0: \"vibes\" is not a function tag (problem_setup, plan_generation"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"0": {"function_tags": ["unknown"]}, "3": {"function_tags": ["unknown"]}, )" + ok1 + ", " +
                     ok2 + "}")
                .find("key \"3\" is not a sentence index 0..2"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"0": {"function_tags": ["unknown"], "depends_on": [5]}, )" + ok1 + ", " + ok2 + "}")
                .find("sentence 0 depends on 5, not a sentence index 0..2"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"0": {"function_tags": ["unknown"], "depends_on": [-1]}, )" + ok1 + ", " + ok2 + "}")
                .find("depends on -1"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"0": {"function_tags": []}, )" + ok1 + ", " + ok2 + "}").find("sentence 0 has no function_tags"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"0": "plan_generation", )" + ok1 + ", " + ok2 + "}").find("are not an object"),
            std::string::npos);
  EXPECT_NE(error_of("{" + ok1 + "}").find("no labels for sentences 0, 2"), std::string::npos);
  EXPECT_NE(error_of("{" + ok1 + "}", 40).find("and 29 more"), std::string::npos);
  const std::string named = [] {
    try {
      parse_chat_labels("nothing", 1, true, "ChatLabeler http://h/v1/chat/completions");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_EQ(named.rfind("ChatLabeler http://h/v1/chat/completions: ", 0), 0u) << named;
}

TEST(ChatLabelsTest, LenientMapsToUnknownAndDrops) {
  const ChatLabels parsed = parse_chat_labels(
      R"({"0": {"function_tags": ["vibes", "self_checking"], "depends_on": [7, "x", 1]},
          "9": {"function_tags": ["unknown"]}, "2": "oops"})",
      3, /*strict=*/false);
  EXPECT_EQ(parsed.sentences[0], (SentenceLabels{{"unknown", "self_checking"}, {1}}));
  EXPECT_EQ(parsed.sentences[1], (SentenceLabels{{"unknown"}, {}}));  // no entry
  EXPECT_EQ(parsed.sentences[2], (SentenceLabels{{"unknown"}, {}}));  // not an object
  // Without any JSON there is nothing to be lenient about.
  EXPECT_THROW(parse_chat_labels("no json", 3, false), Error);
}

// Found while writing the chat_labels fuzz target (its input:
// fuzz/corpus/chat_labels/float_index_beyond_size_t.txt): a float index of
// 2^64 or more was converted to size_t, which is undefined behaviour (UBSan
// reports it in the fuzz build; a plain build happens to give no sentence);
// it is simply not a sentence index.
TEST(ChatLabelsTest, FloatIndicesBeyondSizeTAreNoSentences) {
  EXPECT_NE(error_of(R"({"0": {"function_tags": ["unknown"], "depends_on": [1e30]}})", 1).find("depends on 1e+30"),
            std::string::npos);
  const ChatLabels parsed = parse_chat_labels(
      R"([{"chunk_idx": 1.8446744073709552e19, "function_tags": ["unknown"]},
          {"chunk_idx": 0.0, "function_tags": ["self_checking"], "depends_on": [1e300, 0]}])",
      1, /*strict=*/false);
  EXPECT_EQ(parsed.sentences[0], (SentenceLabels{{"self_checking"}, {0}}));
}

TEST(ChatLabelsTest, AnswerContent) {
  std::string model;
  EXPECT_EQ(chat_answer_content(R"({"model": "m", "choices": [{"message": {"role": "assistant", "content": "hi"}}]})",
                                "r", &model),
            "hi");
  EXPECT_EQ(model, "m");
  EXPECT_THROW(chat_answer_content("{", "r"), Error);
  EXPECT_THROW(chat_answer_content(R"({"choices": [{"message": {"content": null}}]})", "r"), Error);
  EXPECT_THROW(chat_answer_content(R"({"choices": "x"})", "r"), Error);
  EXPECT_THROW(chat_answer_content("[]", "r"), Error);
}

}  // namespace
}  // namespace anchors::rollout
