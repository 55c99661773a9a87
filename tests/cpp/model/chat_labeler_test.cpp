// ChatLabeler against a real cpp-httplib server on loopback: the request it
// sends, the labels it reads back, retries, and the errors it reports.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/segmentation.h"
#include "anchors/rollout/chat_labeler.h"

#ifndef ANCHORS_WITH_HTTPLIB
#define ANCHORS_WITH_HTTPLIB 0
#endif
#if ANCHORS_WITH_HTTPLIB
#include <httplib.h>
#endif

namespace anchors::rollout {
namespace {

using json = nlohmann::json;

Trace apples() {
  Trace t;
  t.text = "We need to find how many apples Tom has left. A dozen is 12. 3 * 12 = 36. So the answer is 36.";
  t.sentences = split_sentences(t.text);
  t.metadata["problem"] = "Tom has 3 dozen apples. How many apples does he have?";
  return t;
}

std::string chat_answer(const std::string& content, const std::string& model = "labeller") {
  return json{{"id", "chatcmpl-1"},
              {"object", "chat.completion"},
              {"model", model},
              {"choices", json::array({{{"index", 0},
                                        {"message", {{"role", "assistant"}, {"content", content}}},
                                        {"finish_reason", "stop"}}})}}
      .dump();
}

const char* kLabels = R"({"0": {"function_tags": ["problem_setup"], "depends_on": []},
 "1": {"function_tags": ["fact_retrieval"], "depends_on": []},
 "2": {"function_tags": ["active_computation"], "depends_on": ["1"]},
 "3": {"function_tags": ["final_answer_emission"], "depends_on": [2]}})";

#if ANCHORS_WITH_HTTPLIB

// A chat server on an ephemeral loopback port that records what it receives
// and answers with `reply` (after `failures` 503s).
class FakeChatServer {
 public:
  explicit FakeChatServer(std::string prefix = "/v1") {
    server_.Post(prefix + "/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mutex_);
        bodies_.push_back(req.body);
        authorization_ = req.get_header_value("Authorization");
      }
      if (failures_ > 0) {
        --failures_;
        res.status = 503;
        res.set_content(R"({"error": {"message": "warming up"}})", "application/json");
        return;
      }
      res.status = status_;
      res.set_content(reply_, "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeChatServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void reply(std::string body, int status = 200) {
    reply_ = std::move(body);
    status_ = status;
  }
  void fail_next(int n) { failures_ = n; }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mutex_);
    return bodies_;
  }
  std::string authorization() {
    std::lock_guard lock(mutex_);
    return authorization_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mutex_;
  std::vector<std::string> bodies_;
  std::string authorization_;
  std::string reply_;
  int status_ = 200;
  std::atomic<int> failures_{0};
};

ChatLabelerOptions options_for(const std::string& url) {
  ChatLabelerOptions o;
  o.base_url = url;
  o.model = "labeller-7b";
  o.api_key = "sk-test";
  o.timeout_seconds = 10;
  o.backoff_base_seconds = 0.01;
  o.backoff_max_seconds = 0.05;
  return o;
}

TEST(ChatLabelerTest, SendsNumberedSentencesAndFillsTags) {
  FakeChatServer server;
  server.reply(chat_answer("Here are the labels:\n```json\n" + std::string(kLabels) + "\n```\nDone."));
  ChatLabeler labeler(options_for(server.url()));
  Trace trace = apples();
  ASSERT_EQ(trace.sentences.size(), 4u);
  const ChatLabels labels = labeler.label_trace(trace);

  // The request: one POST with the model, a system and a user message that
  // numbers every sentence and carries the problem and the categories.
  const auto bodies = server.bodies();
  ASSERT_EQ(bodies.size(), 1u);
  const json request = json::parse(bodies[0]);
  EXPECT_EQ(request["model"], "labeller-7b");
  EXPECT_EQ(request["temperature"], 0.0);
  EXPECT_FALSE(request.contains("response_format"));
  ASSERT_EQ(request["messages"].size(), 2u);
  EXPECT_EQ(request["messages"][0]["role"], "system");
  EXPECT_EQ(request["messages"][1]["role"], "user");
  const std::string user = request["messages"][1]["content"];
  for (std::size_t i = 0; i < trace.sentences.size(); ++i)
    EXPECT_NE(user.find("[" + std::to_string(i) + "] " + trace.sentences[i].text), std::string::npos) << user;
  EXPECT_NE(user.find("Tom has 3 dozen apples"), std::string::npos);
  EXPECT_NE(user.find("uncertainty_management"), std::string::npos);
  EXPECT_NE(user.find("depends_on"), std::string::npos);
  EXPECT_EQ(server.authorization(), "Bearer sk-test");

  // The answer: tags into the trace, dependencies in the result.
  EXPECT_EQ(trace.sentences[0].tags, (std::vector<std::string>{"problem_setup"}));
  EXPECT_EQ(trace.sentences[3].tags, (std::vector<std::string>{"final_answer_emission"}));
  ASSERT_EQ(labels.sentences.size(), 4u);
  EXPECT_EQ(labels.sentences[2].depends_on, (std::vector<std::size_t>{1}));
  EXPECT_EQ(labels.sentences[3].depends_on, (std::vector<std::size_t>{2}));
  EXPECT_EQ(labels.model, "labeller");
  EXPECT_NE(labels.content.find("```json"), std::string::npos);
  EXPECT_EQ(labeler.stats().requests, 1);
  EXPECT_EQ(labeler.stats().retries, 0);
}

TEST(ChatLabelerTest, PrefixEndingInV1AndJsonMode) {
  FakeChatServer server("/proxy/v1");
  server.reply(chat_answer(kLabels));
  ChatLabelerOptions o = options_for(server.url() + "/proxy/v1/");
  o.json_mode = true;
  o.max_tokens = 4096;
  ChatLabeler labeler(o);
  const Trace trace = apples();
  const ChatLabels labels = labeler.label(trace);
  EXPECT_TRUE(trace.sentences[0].tags.empty());  // label() leaves the trace alone
  EXPECT_EQ(labels.sentences[1].function_tags, (std::vector<std::string>{"fact_retrieval"}));
  const json request = json::parse(server.bodies().at(0));
  EXPECT_EQ(request["response_format"]["type"], "json_object");
  EXPECT_EQ(request["max_tokens"], 4096);
}

TEST(ChatLabelerTest, AServerFailingOnceIsRetried) {
  FakeChatServer server;
  server.reply(chat_answer(kLabels));
  server.fail_next(1);
  ChatLabeler labeler(options_for(server.url()));
  Trace trace = apples();
  labeler.label_trace(trace);
  EXPECT_EQ(trace.sentences[2].tags, (std::vector<std::string>{"active_computation"}));
  EXPECT_EQ(server.bodies().size(), 2u);
  EXPECT_EQ(labeler.stats().attempts, 2);
  EXPECT_EQ(labeler.stats().retries, 1);
}

TEST(ChatLabelerTest, MalformedAnswersAreErrorsAndNotRetried) {
  FakeChatServer server;
  ChatLabeler labeler(options_for(server.url()));
  Trace trace = apples();
  const auto expect_error = [&](const std::string& body, const std::string& fragment) {
    server.reply(body);
    try {
      labeler.label_trace(trace);
      ADD_FAILURE() << "no error for " << body;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("/v1/chat/completions"), std::string::npos) << e.what();
    }
  };
  expect_error("not json", "malformed JSON");
  expect_error(R"({"choices": []})", "choices[0].message.content");
  expect_error(chat_answer("I cannot label this."), "no JSON object");
  expect_error(chat_answer(R"({"0": {"function_tags": ["guessing"]}, "1": {"function_tags": ["fact_retrieval"]},
      "2": {"function_tags": ["active_computation"]}, "3": {"function_tags": ["final_answer_emission"]}})"),
               "\"guessing\" is not a function tag");
  expect_error(chat_answer(R"({"0": {"function_tags": ["problem_setup"]}, "7": {"function_tags": ["unknown"]}})"),
               "key \"7\" is not a sentence index 0..3");
  expect_error(chat_answer(R"({"0": {"function_tags": ["problem_setup"]}})"), "no labels for sentences 1, 2, 3");
  // A client error is reported at once, with the server's message.
  server.reply(R"({"error": {"message": "unknown model"}})", 404);
  try {
    labeler.label(trace);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("HTTP 404: unknown model"), std::string::npos) << e.what();
  }
  EXPECT_EQ(labeler.stats().retries, 0);
  EXPECT_EQ(static_cast<std::int64_t>(server.bodies().size()), labeler.stats().attempts);
  // Nothing was written into the trace by the failed calls.
  for (const Sentence& s : trace.sentences) EXPECT_TRUE(s.tags.empty());
}

TEST(ChatLabelerTest, LenientLabelsMapToUnknown) {
  FakeChatServer server;
  server.reply(chat_answer(R"(<think>sentence 2 is arithmetic</think>
{"0": {"function_tags": "Problem Setup"}, "2": {"function_tags": ["guessing"], "depends_on": [9, 0]},
 "5": {"function_tags": ["unknown"]}})"));
  ChatLabelerOptions o = options_for(server.url());
  o.strict = false;
  ChatLabeler labeler(o);
  Trace trace = apples();
  const ChatLabels labels = labeler.label_trace(trace);
  EXPECT_EQ(trace.sentences[0].tags, (std::vector<std::string>{"problem_setup"}));
  EXPECT_EQ(trace.sentences[1].tags, (std::vector<std::string>{"unknown"}));  // no entry
  EXPECT_EQ(trace.sentences[2].tags, (std::vector<std::string>{"unknown"}));  // unknown name
  EXPECT_EQ(labels.sentences[2].depends_on, (std::vector<std::size_t>{0}));   // 9 dropped
}

TEST(ChatLabelerTest, NobodyListeningIsAnErrorAfterTheRetries) {
  int port = 0;
  {
    FakeChatServer gone;
    port = std::stoi(gone.url().substr(gone.url().rfind(':') + 1));
  }
  ChatLabelerOptions o = options_for("http://127.0.0.1:" + std::to_string(port));
  o.max_retries = 1;
  ChatLabeler labeler(o);
  Trace trace = apples();
  EXPECT_THROW(labeler.label(trace), Error);
  EXPECT_EQ(labeler.stats().attempts, 2);
}

#else

TEST(ChatLabelerTest, NeedsCppHttplib) {
  FAIL() << "built without cpp-httplib (apt-get install libcpp-httplib-dev)";
}

#endif

TEST(ChatLabelerTest, OptionsAreChecked) {
  ASSERT_TRUE(ChatLabeler::available()) << "built without cpp-httplib (apt-get install libcpp-httplib-dev)";
  const auto with = [](auto change) {
    ChatLabelerOptions o;
    change(o);
    return o;
  };
  EXPECT_THROW(ChatLabeler(with([](ChatLabelerOptions& o) { o.base_url = "127.0.0.1:8000"; })), Error);
  EXPECT_THROW(ChatLabeler(with([](ChatLabelerOptions& o) { o.base_url = "ftp://x"; })), Error);
  EXPECT_THROW(ChatLabeler(with([](ChatLabelerOptions& o) { o.max_retries = -1; })), Error);
  EXPECT_THROW(ChatLabeler(with([](ChatLabelerOptions& o) { o.timeout_seconds = 0; })), Error);
  EXPECT_THROW(ChatLabeler(with([](ChatLabelerOptions& o) { o.backoff_base_seconds = -1; })), Error);
  ChatLabeler labeler(ChatLabelerOptions{});
  EXPECT_THROW(labeler.label(Trace{}), Error);  // no sentences: checked before any network
  EXPECT_EQ(labeler.stats().attempts, 0);
}

}  // namespace
}  // namespace anchors::rollout
