// The OpenAI completions JSON both ends agree on (anchors/rollout/openai_format.h):
// the request OpenAIProvider sends parses back to the same request on the
// server side, answers round-trip, and invalid input is a clear anchors::Error.
#include "anchors/rollout/openai_format.h"

#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "anchors/core/error.h"

namespace anchors::rollout::openai {
namespace {
using json = nlohmann::json;

CompletionRequest sample_request() {
  CompletionRequest r;
  r.prompt_ids = {5, 0, 17, 255};
  r.n = 3;
  r.temperature = 0.6;
  r.top_p = 0.95;
  r.top_k = 0;
  r.max_tokens = 64;
  r.stop = {"\n\n", "}"};
  r.seed = 18446744073709551557ULL;  // above 2^63: must survive as an unsigned JSON number
  return r;
}

void expect_same(const CompletionRequest& a, const CompletionRequest& b) {
  EXPECT_EQ(a.prompt_ids, b.prompt_ids);
  EXPECT_EQ(a.n, b.n);
  EXPECT_EQ(a.temperature, b.temperature);
  EXPECT_EQ(a.top_p, b.top_p);
  EXPECT_EQ(a.top_k, b.top_k);
  EXPECT_EQ(a.max_tokens, b.max_tokens);
  EXPECT_EQ(a.stop, b.stop);
  EXPECT_EQ(a.seed, b.seed);
}

TEST(OpenAIFormatTest, RequestBodyHasTheDocumentedFields) {
  const json body = json::parse(request_body(sample_request(), "tiny"));
  EXPECT_EQ(body["model"], "tiny");
  EXPECT_EQ(body["prompt"], json({5, 0, 17, 255}));
  EXPECT_EQ(body["n"], 3);
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(body["top_p"].get<double>(), 0.95);
  EXPECT_FALSE(body.contains("top_k"));  // only when > 0
  EXPECT_EQ(body["max_tokens"], 64);
  EXPECT_EQ(body["stop"], json({"\n\n", "}"}));
  EXPECT_EQ(body["seed"].get<std::uint64_t>(), 18446744073709551557ULL);
  EXPECT_TRUE(body.contains("logprobs") && body["logprobs"].is_null());
  EXPECT_FALSE(body.contains("return_token_ids"));

  CompletionRequest r = sample_request();
  r.top_k = 40;
  r.stop.clear();
  const json with_k = json::parse(request_body(r, "m", /*return_token_ids=*/true));
  EXPECT_EQ(with_k["top_k"], 40);
  EXPECT_FALSE(with_k.contains("stop"));
  EXPECT_EQ(with_k["return_token_ids"], true);
}

TEST(OpenAIFormatTest, RequestRoundTrip) {
  for (const std::int64_t top_k : {0, 7}) {
    CompletionRequest r = sample_request();
    r.top_k = top_k;
    const ParsedRequest parsed = parse_request_body(request_body(r, "tiny"));
    expect_same(parsed.request, r);
    EXPECT_EQ(parsed.model, "tiny");
    ASSERT_TRUE(parsed.seed.has_value());
    EXPECT_EQ(*parsed.seed, r.seed);
  }
}

TEST(OpenAIFormatTest, ServerDefaultsAndPromptForms) {
  const ParsedRequest d = parse_request_body(R"({"prompt": [1, 2, 3]})");
  EXPECT_EQ(d.request.n, 1);
  EXPECT_EQ(d.request.temperature, 1.0);
  EXPECT_EQ(d.request.top_p, 1.0);
  EXPECT_EQ(d.request.max_tokens, 16);
  EXPECT_FALSE(d.seed.has_value());
  EXPECT_TRUE(d.model.empty());

  const auto tokenize = [](const std::string& text) {
    std::vector<std::int64_t> ids;
    for (const unsigned char c : text) ids.push_back(c);
    return ids;
  };
  EXPECT_EQ(parse_request_body(R"({"prompt": "ab"})", tokenize).request.prompt_ids, (std::vector<std::int64_t>{97, 98}));
  EXPECT_EQ(parse_request_body(R"({"prompt": ["ab"]})", tokenize).request.prompt_ids,
            (std::vector<std::int64_t>{97, 98}));
  EXPECT_EQ(parse_request_body(R"({"prompt": [[4, 5]]})").request.prompt_ids, (std::vector<std::int64_t>{4, 5}));
  EXPECT_EQ(parse_request_body(R"({"prompt": [1], "stop": "x", "top_k": -1})").request.stop,
            (std::vector<std::string>{"x"}));
  EXPECT_EQ(parse_request_body(R"({"prompt": [1], "top_k": -1, "stop": null, "logprobs": null})").request.top_k, 0);
}

TEST(OpenAIFormatTest, InvalidRequestsAreErrors) {
  const auto message = [](const std::string& body) -> std::string {
    try {
      parse_request_body(body);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message("{not json").find("malformed JSON"), std::string::npos);
  EXPECT_NE(message("[1, 2]").find("JSON object"), std::string::npos);
  EXPECT_NE(message("{}").find("missing \"prompt\""), std::string::npos);
  EXPECT_NE(message(R"({"prompt": "text"})").find("no tokenizer"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [[1], [2]]})").find("batched"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": []})").find("empty"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1, 2.5]})").find("prompt[1]"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1, -4]})").find("negative"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "n": 0})").find("n 0"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "n": "3"})").find("\"n\" must be an integer"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "top_p": 0})").find("top_p"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "temperature": -1})").find("temperature"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "stop": [""]})").find("empty stop"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "stop": 3})").find("\"stop\""), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "stream": true})").find("stream"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "echo": true})").find("echo"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "logprobs": 5})").find("logprobs"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "n": 2, "best_of": 4})").find("best_of"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "presence_penalty": "a"})").find("presence_penalty"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "min_p": 2})").find("min_p"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "repetition_penalty": 0})").find("repetition_penalty"), std::string::npos);
  EXPECT_NE(message(R"({"messages": [{"role": "user", "content": "x"}]})").find("/v1/chat/completions"),
            std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "logit_bias": {"5": 100}})").find("logit_bias"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "seed": 1.5})").find("seed"), std::string::npos);
  // A negative seed used to wrap to a huge unsigned one (Python refuses seed=-1 too).
  EXPECT_NE(message(R"({"prompt": [1], "seed": -1})").find("\"seed\" must be a non-negative integer, got -1"),
            std::string::npos);
}

// nlohmann throws out_of_range, not parse_error, for a number no double
// holds: it used to escape the parser and be a 500 at the server (also found
// by fuzzing: fuzz/corpus/openai_format/number_overflow.json).
// Prompt scoring: the request OpenAIProvider::prompt_logprobs sends, a server
// reading it, the echo answer, and the client reading the answer back (vLLM's
// extra entry for the generated token dropped).
// Our extension: the request carries the control, the answer confirms it, and
// a client that sent one refuses an answer that does not (a vLLM server would
// ignore the field and sample the unchanged model).
TEST(OpenAIFormatTest, AttentionControlTravelsAndIsConfirmed) {
  CompletionRequest r = sample_request();
  EXPECT_FALSE(json::parse(request_body(r, "m")).contains("attention_control"));
  r.attention_control.ablate_heads(2, {0, 3}, /*from=*/4).suppress_keys({1, 3}, /*from=*/9);
  const json body = json::parse(request_body(r, "m"));
  ASSERT_TRUE(body.contains("attention_control"));
  EXPECT_EQ(body["attention_control"]["regions"][0]["effect"], "ablate");
  EXPECT_EQ(parse_request_body(body.dump()).request.attention_control, r.attention_control);
  EXPECT_EQ(parse_request_body(score_request_body(r, "m")).request.attention_control, r.attention_control);
  r.messages = {{"user", "hi"}, {"assistant", "so"}};
  EXPECT_TRUE(json::parse(chat_request_body(r, "m")).contains("attention_control"));

  const std::vector<Completion> completions = {{{1}, "a", "length"}};
  const std::string plain = response_body(completions, "m", "id", 1, 4);
  const std::string confirmed = response_body(completions, "m", "id", 1, 4, /*attention_control_applied=*/true);
  EXPECT_FALSE(json::parse(plain).contains("attention_control"));
  EXPECT_EQ(json::parse(confirmed)["attention_control"], "applied");
  EXPECT_EQ(parse_response_body(confirmed, 1, "srv", true).front(), completions.front());
  EXPECT_EQ(parse_response_body(plain, 1, "srv", false).front(), completions.front());
  try {
    parse_response_body(plain, 1, "srv", /*attention_control_expected=*/true);
    FAIL() << "an unconfirmed control was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("srv: the server did not confirm the request's attention_control"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(json::parse(chat_response_body(completions, "m", "id", 1, 4, true))["attention_control"], "applied");
  const std::string scored = echo_response_body(completions.front(), "p", {"p", "a"}, {std::nan(""), -1.0}, "m", "id",
                                                1, 1, /*attention_control_applied=*/true);
  EXPECT_EQ(parse_score_response(scored, 1, "srv", true).size(), 1u);
  EXPECT_THROW(parse_score_response(echo_response_body(completions.front(), "p", {"p", "a"}, {std::nan(""), -1.0},
                                                       "m", "id", 1, 1),
                                    1, "srv", true),
               Error);

  // A server refuses a malformed control (HTTP 400), naming the field, and one for a single lane.
  json bad = body;
  bad["attention_control"]["regions"][0]["effect"] = "mute";
  EXPECT_THROW(parse_request_body(bad.dump()), Error);
  bad = body;
  bad["attention_control"]["regions"][0]["lane"] = 0;
  try {
    parse_request_body(bad.dump());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("every lane"), std::string::npos) << e.what();
  }
}

TEST(OpenAIFormatTest, PromptScoringRoundTrip) {
  CompletionRequest r;
  r.prompt_ids = {5, 6, 7};
  const json body = json::parse(score_request_body(r, "m"));
  EXPECT_EQ(body["prompt"], json::array({5, 6, 7}));
  EXPECT_EQ(body["echo"], true);
  EXPECT_EQ(body["logprobs"], 1);
  EXPECT_EQ(body["max_tokens"], 1);
  const ParsedRequest parsed = parse_request_body(body.dump());
  EXPECT_TRUE(parsed.echo);
  EXPECT_EQ(parsed.request.prompt_ids, r.prompt_ids);
  EXPECT_FALSE(parse_request_body(R"({"prompt": [1]})").echo);
  EXPECT_THROW(score_request_body(CompletionRequest{}, "m"), Error);

  Completion c{{9}, "!", "length"};
  const std::string answer =
      echo_response_body(c, "abc", {"a", "b\xc3\xa9", "c", "!"}, {std::nan(""), -0.5, -1.25, -2.0}, "m", "id", 1, 3);
  const json doc = json::parse(answer);
  EXPECT_EQ(doc["choices"][0]["text"], "abc!");
  EXPECT_TRUE(doc["choices"][0]["logprobs"]["token_logprobs"][0].is_null());
  EXPECT_EQ(doc["choices"][0]["logprobs"]["text_offset"], json::array({0, 1, 3, 4}));  // code points: "bé" is 2
  const std::vector<double> values = parse_score_response(answer, 3);
  ASSERT_EQ(values.size(), 3u);
  EXPECT_TRUE(std::isnan(values[0]));
  EXPECT_EQ(values[1], -0.5);
  EXPECT_EQ(values[2], -1.25);
  // Too few values, a null after the first, no logprobs at all: errors naming the source.
  EXPECT_THROW(parse_score_response(answer, 5, "srv"), Error);
  EXPECT_THROW(parse_score_response(R"({"choices": [{"logprobs": {"token_logprobs": [null, null]}}]})", 2), Error);
  try {
    parse_score_response(R"({"choices": [{"text": "x", "logprobs": null}]})", 1, "srv");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("srv: no choices[0].logprobs"), std::string::npos) << e.what();
  }
  // Echo is for scoring only: it needs integer logprobs and n = 1; logprobs alone stay refused.
  const auto message = [](const std::string& b) {
    try {
      parse_request_body(b);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message(R"({"prompt": [1], "echo": true, "logprobs": 1, "n": 2})").find("n = 1"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "echo": true, "logprobs": -1})").find("integer"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1], "logprobs": 2})").find("only with"), std::string::npos);
  EXPECT_EQ(message(R"({"prompt": [1], "echo": true, "logprobs": 0})"), "");
}

TEST(OpenAIFormatTest, NumbersOutOfRangeAreMalformedJson) {
  const auto render = [](const std::vector<ChatMessage>&, bool) { return ChatPrompt{"x", {1}}; };
  for (const std::string body : {R"({"prompt": [1], "temperature": 1e309})", R"({"prompt": [1], "top_p": -1e400})",
                                 R"({"prompt": [1e309]})", R"({"prompt": [1], "n": 1e999})"}) {
    try {
      parse_request_body(body);
      ADD_FAILURE() << "no error for " << body;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("malformed JSON"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("number overflow"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(parse_chat_request_body(R"({"messages": [{"role": "user", "content": "x"}], "temperature": 1e309})",
                                       render),
               Error);
  EXPECT_THROW(parse_response_body(R"({"created": 1e309, "choices": [{"text": "a"}]})", 1), Error);
}

TEST(OpenAIFormatTest, ResponseRoundTripAndOrdering) {
  const std::vector<Completion> completions = {{{1, 2}, "ab", "stop"}, {{}, "", "length"}, {{3}, "c\xE2\x82\xAC", "length"}};
  const std::string body = response_body(completions, "tiny", "cmpl-1", 1700000000, 4);
  const json doc = json::parse(body);
  EXPECT_EQ(doc["object"], "text_completion");
  EXPECT_EQ(doc["usage"]["completion_tokens"], 3);
  EXPECT_EQ(doc["usage"]["total_tokens"], 7);
  EXPECT_EQ(doc["choices"][2]["token_ids"], json({3}));
  EXPECT_EQ(parse_response_body(body, 3), completions);

  // Choices out of order are put back by index; absent token_ids leave ids empty;
  // a null finish_reason reads as "".
  const std::string shuffled =
      R"({"choices": [{"index": 1, "text": "b", "finish_reason": null}, {"index": 0, "text": "a", "finish_reason": "stop"}]})";
  const auto parsed = parse_response_body(shuffled, 2);
  EXPECT_EQ(parsed[0], (Completion{{}, "a", "stop"}));
  EXPECT_EQ(parsed[1], (Completion{{}, "b", ""}));

  EXPECT_THROW(parse_response_body(body, 2), Error);                                   // count
  EXPECT_THROW(parse_response_body("<html>", 1), Error);                               // not JSON
  EXPECT_THROW(parse_response_body(R"({"choices": [{"index": 3, "text": "a"}]})", 1), Error);
  EXPECT_THROW(parse_response_body(R"({"choices": [{"index": 0, "text": 5}]})", 1), Error);
  EXPECT_THROW(parse_response_body(R"({"choices": [{"text": "a"}, {"index": 0, "text": "b"}]})", 2), Error);
  EXPECT_THROW(parse_response_body(R"({"choices": [{"text": "a", "token_ids": [1.5]}]})", 1), Error);
}

TEST(OpenAIFormatTest, ErrorMessages) {
  EXPECT_EQ(error_message(error_body("bad n", "invalid_request_error")), "bad n");
  EXPECT_EQ(json::parse(error_body("x", "server_error"))["error"]["type"], "server_error");
  EXPECT_EQ(error_message(R"({"detail": "Not Found"})"), "Not Found");
  EXPECT_EQ(error_message(R"({"error": "plain"})"), "plain");
  EXPECT_EQ(error_message("Bad Gateway"), "Bad Gateway");
  EXPECT_EQ(error_message(std::string(600, 'x')).size(), 503u);
}

}  // namespace
}  // namespace anchors::rollout::openai

namespace anchors::rollout::openai {
namespace {

TEST(OpenAIFormatTest, TextPromptsAndSamplingExtrasRoundTrip) {
  CompletionRequest r = sample_request();
  r.prompt_text = "Solve: 2 + 3. Partial";
  r.min_p = 0.1;
  r.repetition_penalty = 1.2;
  r.presence_penalty = 0.4;
  r.frequency_penalty = -0.3;
  const json body = json::parse(request_body(r, "tiny", false, PromptForm::kText));
  EXPECT_EQ(body["prompt"], "Solve: 2 + 3. Partial");
  EXPECT_DOUBLE_EQ(body["min_p"].get<double>(), 0.1);
  // The server keeps the text and tokenises it; the extras come back as sent.
  const auto tokenize = [](const std::string& text) {
    std::vector<std::int64_t> ids;
    for (const unsigned char c : text) ids.push_back(c);
    return ids;
  };
  const ParsedRequest parsed = parse_request_body(body.dump(), tokenize);
  EXPECT_EQ(parsed.request.prompt_text, r.prompt_text);
  EXPECT_EQ(parsed.request.prompt_ids, tokenize(r.prompt_text));
  EXPECT_EQ(parsed.request.min_p, 0.1);
  EXPECT_EQ(parsed.request.repetition_penalty, 1.2);
  EXPECT_EQ(parsed.request.presence_penalty, 0.4);
  EXPECT_EQ(parsed.request.frequency_penalty, -0.3);
  EXPECT_EQ(parsed.request.n, r.n);
  // Neutral extras are left out of the body (strict servers reject unknown fields).
  const json neutral = json::parse(request_body(sample_request(), "tiny"));
  for (const char* key : {"min_p", "repetition_penalty", "presence_penalty", "frequency_penalty"})
    EXPECT_FALSE(neutral.contains(key)) << key;
  // A mode without its form of the prompt is an error naming the mode.
  CompletionRequest ids_only = sample_request();
  try {
    request_body(ids_only, "m", false, PromptForm::kText);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"text\" needs the request's prompt_text"), std::string::npos) << e.what();
  }
  EXPECT_THROW(chat_request_body(ids_only, "m"), Error);
}

TEST(OpenAIFormatTest, ChatRequestsAndAnswers) {
  CompletionRequest r = sample_request();
  r.messages = {{"user", "What is 2 + 3?"}, {"assistant", "First,"}};
  const json body = json::parse(chat_request_body(r, "tiny", true));
  EXPECT_FALSE(body.contains("prompt"));
  EXPECT_FALSE(body.contains("logprobs"));
  EXPECT_EQ(body["messages"][1]["content"], "First,");
  EXPECT_EQ(body["continue_final_message"], true);
  EXPECT_EQ(body["add_generation_prompt"], false);
  EXPECT_EQ(body["return_token_ids"], true);
  // A final user message asks for a new assistant turn: no continuation flags.
  CompletionRequest turn = sample_request();
  turn.messages = {{"user", "hi"}};
  const json turn_body = json::parse(chat_request_body(turn, "tiny"));
  EXPECT_FALSE(turn_body.contains("continue_final_message"));
  EXPECT_FALSE(turn_body.contains("add_generation_prompt"));

  // The server side: messages (text parts joined), the flag, and the renderer's prompt.
  std::vector<ChatMessage> seen;
  bool seen_continue = false;
  const ChatRenderer render = [&](const std::vector<ChatMessage>& messages, bool continue_final) {
    seen = messages;
    seen_continue = continue_final;
    return ChatPrompt{"rendered", {1, 2, 3}};
  };
  json with_parts = body;
  with_parts["messages"][0]["content"] = json::array({{{"type", "text"}, {"text", "What is "}},
                                                      {{"type", "text"}, {"text", "2 + 3?"}}});
  with_parts.erase("max_tokens");
  with_parts["max_completion_tokens"] = 9;
  const ParsedRequest parsed = parse_chat_request_body(with_parts.dump(), render);
  EXPECT_EQ(seen, r.messages);
  EXPECT_TRUE(seen_continue);
  EXPECT_EQ(parsed.request.messages, r.messages);
  EXPECT_EQ(parsed.request.prompt_text, "rendered");
  EXPECT_EQ(parsed.request.prompt_ids, (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(parsed.request.max_tokens, 9);
  EXPECT_EQ(parsed.request.n, r.n);
  EXPECT_EQ(parsed.request.stop, r.stop);
  EXPECT_EQ(*parsed.seed, r.seed);
  EXPECT_EQ(parsed.model, "tiny");
  parse_chat_request_body(turn_body.dump(), render);
  EXPECT_FALSE(seen_continue);

  const auto message = [&](const std::string& text, const ChatRenderer& renderer) -> std::string {
    try {
      parse_chat_request_body(text, renderer);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message(body.dump(), ChatRenderer{}).find("cannot render chat"), std::string::npos);
  EXPECT_NE(message(R"({"prompt": [1]})", render).find("not a chat field"), std::string::npos);
  EXPECT_NE(message(R"({"messages": []})", render).find("non-empty"), std::string::npos);
  EXPECT_NE(message(R"({"messages": [{"content": "x"}]})", render).find("messages[0]"), std::string::npos);
  EXPECT_NE(message(R"({"messages": [{"role": "user", "content": 3}]})", render).find("messages[0].content"),
            std::string::npos);
  EXPECT_NE(message(R"({"messages": [{"role": "user", "content": "x"}], "continue_final_message": true})", render)
                .find("the assistant's"),
            std::string::npos);
  EXPECT_NE(message(R"({"messages": [{"role": "assistant", "content": "x"}], "continue_final_message": true,
                        "add_generation_prompt": true})",
                    render)
                .find("cannot both"),
            std::string::npos);
  EXPECT_NE(message(R"({"messages": [{"role": "user", "content": "x"}], "tools": []})", render).find("tools"),
            std::string::npos);

  // Answers: chat.completion round-trips through the same parser as text completions.
  const std::vector<Completion> completions = {{{1, 2}, "ab", "stop"}, {{3}, "c", "length"}};
  const std::string answer = chat_response_body(completions, "tiny", "chatcmpl-1", 1700000000, 3);
  const json doc = json::parse(answer);
  EXPECT_EQ(doc["object"], "chat.completion");
  EXPECT_EQ(doc["choices"][0]["message"]["content"], "ab");
  EXPECT_FALSE(doc["choices"][0].contains("text"));
  EXPECT_EQ(parse_response_body(answer, 2), completions);
  // A reasoning parser's split answer is not the continuation: a clear error, not half the text.
  const std::string split =
      R"({"choices": [{"index": 0, "message": {"role": "assistant", "reasoning_content": "think", "content": "5"}}]})";
  try {
    parse_response_body(split, 1, "server");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reasoning parser"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_response_body(R"({"choices": [{"message": {"content": null}}]})", 1), Error);
}

TEST(OpenAIFormatTest, ValidateRequestNamesTheMissingPromptForm) {
  CompletionRequest r;
  r.prompt_text = "text only";
  EXPECT_NO_THROW(validate_request(r, "p"));
  EXPECT_NO_THROW(validate_request(r, "p", PromptForm::kText));
  const auto message = [&](PromptForm form) -> std::string {
    try {
      validate_request(r, "p", form);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message(PromptForm::kIds).find("needs the prompt as token ids"), std::string::npos);
  EXPECT_NE(message(PromptForm::kMessages).find("no messages"), std::string::npos);
  r.prompt_text.clear();
  EXPECT_NE(message(PromptForm::kAny).find("empty prompt"), std::string::npos);
  r.messages = {{"", "no role"}};
  EXPECT_NE(message(PromptForm::kAny).find("messages[0] has no role"), std::string::npos);
  r.messages = {{"user", "x"}};
  r.min_p = -0.1;
  EXPECT_NE(message(PromptForm::kAny).find("min_p"), std::string::npos);
  r.min_p = 0;
  r.presence_penalty = std::nan("");
  EXPECT_NE(message(PromptForm::kAny).find("presence_penalty"), std::string::npos);
}

}  // namespace
}  // namespace anchors::rollout::openai
