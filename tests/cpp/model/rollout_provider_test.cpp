// Rollout providers (anchors/rollout/): LocalProvider on a tiny random
// checkpoint equals model::sample and reuses its prefix cache; CompletionServer
// + OpenAIProvider over loopback give exactly LocalProvider's completions in
// all three prompt modes (ids, text, chat), and survive a server that fails
// and stalls requests; client errors are immediate; the concurrency bound
// holds; what goes over the wire in each mode (a recording httplib server);
// make_method("resampling") generates exactly what analyze_problem does, and
// refuses a folder that another writer holds or another seed wrote.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include <set>

#include <nlohmann/json.hpp>

#include "test_paths.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/prompt.h"
#include "anchors/model/sampler.h"
#include "anchors/model/tokenizer.h"
#include "anchors/methods/builtins.h"
#include "anchors/methods/registry.h"
#include "anchors/rollout/analyze.h"
#include "anchors/rollout/local_provider.h"
#include "anchors/rollout/openai_provider.h"
#include "anchors/rollout/server.h"
#include "rollout/rollout_batches.h"

#ifndef ANCHORS_WITH_HTTPLIB
#define ANCHORS_WITH_HTTPLIB 0
#endif
#if ANCHORS_WITH_HTTPLIB
#include <httplib.h>
#include <cstdlib>
#endif

namespace anchors::rollout {
namespace {
using json = nlohmann::json;

std::shared_ptr<model::CausalLM> tiny_model() {
  static const auto model = model::CausalLM::load(anchors::testing::data_dir() + "/tiny_models/qwen2_bias_tied");
  return model;
}

// The bundled Qwen2-style test tokenizer has 1000 ids; the tiny model has 256.
// Keep the ids below 256 (the byte alphabet, <|endoftext|> = 0 and the first
// merges) so that everything it encodes or decodes fits the model.
std::shared_ptr<const model::Tokenizer> tiny_tokenizer() {
  static const std::shared_ptr<const model::Tokenizer> tokenizer = [] {
    json doc = json::parse(
        read_text_file(anchors::testing::data_dir() + "/tokenizers/qwen2/tokenizer.json", kModelFileLimit));
    const std::int64_t vocab = tiny_model()->config().vocab_size;
    json kept = json::object();
    for (const auto& [token, id] : doc["model"]["vocab"].items())
      if (id.get<std::int64_t>() < vocab) kept[token] = id;
    json merges = json::array();
    for (const auto& merge : doc["model"]["merges"]) {
      std::string a, b;
      if (merge.is_array()) {
        a = merge[0].get<std::string>();
        b = merge[1].get<std::string>();
      } else {
        const std::string s = merge.get<std::string>();
        a = s.substr(0, s.find(' '));
        b = s.substr(s.find(' ') + 1);
      }
      if (kept.contains(a) && kept.contains(b) && kept.contains(a + b)) merges.push_back(merge);
    }
    json added = json::array();
    for (const auto& token : doc["added_tokens"])
      if (token["id"].get<std::int64_t>() < vocab) added.push_back(token);
    doc["model"]["vocab"] = kept;
    doc["model"]["merges"] = merges;
    doc["added_tokens"] = added;
    return model::Tokenizer::from_json(doc.dump(), "trimmed qwen2 test tokenizer");
  }();
  return tokenizer;
}

LocalProviderOptions tiny_options() {
  LocalProviderOptions o;
  // The tiny model has no eos; a sixth of the vocabulary stops lanes, so
  // they end at different lengths.
  for (std::int64_t id = 0; id < 40; ++id) o.stop_ids.push_back(id);
  return o;
}

std::shared_ptr<LocalProvider> local_provider(LocalProviderOptions o = tiny_options()) {
  return std::make_shared<LocalProvider>(tiny_model(), o, tiny_tokenizer());
}

const std::vector<std::int64_t> kBase = {72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 46, 32};

CompletionRequest request(std::vector<std::int64_t> prompt, std::int64_t n, std::uint64_t seed) {
  CompletionRequest r;
  r.prompt_ids = std::move(prompt);
  r.n = n;
  r.temperature = 1.0;
  r.top_p = 0.95;
  r.max_tokens = 12;
  r.seed = seed;
  return r;
}

std::vector<std::int64_t> with(std::vector<std::int64_t> ids, std::initializer_list<std::int64_t> more) {
  ids.insert(ids.end(), more);
  return ids;
}

TEST(LocalProviderTest, EqualsSampleAndIsReproducible) {
  const auto provider = local_provider();
  EXPECT_EQ(provider->name(), "local:" + tiny_model()->dir());
  const CompletionRequest r = request(kBase, 4, 77);
  const auto a = provider->complete(r);
  const auto b = provider->complete(r);  // now fully from the cache
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a, b);

  model::SamplingOptions o;
  o.temperature = r.temperature;
  o.top_p = r.top_p;
  o.max_new_tokens = r.max_tokens;
  o.stop_ids = tiny_options().stop_ids;
  o.seed = r.seed;
  const auto samples = model::sample(*tiny_model(), r.prompt_ids, r.n, o, tiny_tokenizer().get());
  std::set<std::size_t> lengths;
  for (std::size_t k = 0; k < samples.size(); ++k) {
    EXPECT_EQ(a[k].ids, samples[k].ids) << "lane " << k;
    EXPECT_EQ(a[k].finish_reason, samples[k].finish_reason);
    EXPECT_EQ(a[k].text, tiny_tokenizer()->decode(samples[k].ids, /*skip_special_tokens=*/true));
    lengths.insert(a[k].ids.size());
  }
  EXPECT_GT(lengths.size(), 1u) << "want lanes of different lengths";

  // Lane k does not depend on n; another seed gives other samples.
  const auto two = provider->complete(request(kBase, 2, 77));
  EXPECT_EQ(two[0], a[0]);
  EXPECT_EQ(two[1], a[1]);
  const auto other = provider->complete(request(kBase, 4, 78));
  EXPECT_NE(other, a);
}

TEST(LocalProviderTest, ReusesTheCommonPrefixOfTheLastPrompt) {
  const auto cached = local_provider();
  LocalProviderOptions no_reuse = tiny_options();
  no_reuse.reuse_prefix = false;
  const auto fresh = local_provider(no_reuse);
  // Sentence i's prompt, then sentence i+1's (shares the base and one more
  // token), then a prompt that extends it, then one that shares nothing.
  const std::vector<std::vector<std::int64_t>> prompts = {with(kBase, {84, 104, 101}), with(kBase, {84, 97}),
                                                          with(kBase, {84, 97, 33, 33}), {99, 98, 97}};
  const std::vector<std::int64_t> reused = {0, static_cast<std::int64_t>(kBase.size()) + 1,
                                            static_cast<std::int64_t>(kBase.size()) + 2, 0};
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    SCOPED_TRACE(p);
    const CompletionRequest r = request(prompts[p], 3, 5 + p);
    EXPECT_EQ(cached->complete(r), fresh->complete(r));
    EXPECT_EQ(cached->last_reused_tokens(), reused[p]);
    EXPECT_EQ(fresh->last_reused_tokens(), 0);
  }
  cached->clear_cache();
  cached->complete(request(prompts[0], 1, 1));
  EXPECT_EQ(cached->last_reused_tokens(), 0);
}

TEST(LocalProviderTest, StopStringsEndTheLaneThatContainsThem) {
  // No stop ids at all (the tiny model and the trimmed tokenizer have no eos).
  const LocalProviderOptions no_stops;
  const auto& tokenizer = *tiny_tokenizer();
  const auto decode = [&](const std::vector<std::int64_t>& ids, std::size_t count) {
    return tokenizer.decode(std::vector<std::int64_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(count)));
  };
  // Find a seed whose lane 0 starts with plain text (random byte tokens often
  // decode to partial UTF-8), then stop on the text its fifth token adds.
  const auto provider = local_provider(no_stops);
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    CompletionRequest r = request(kBase, 1, seed);
    r.max_tokens = 8;
    const auto free_run = provider->complete(r);
    const auto& ids = free_run[0].ids;
    ASSERT_EQ(ids.size(), 8u);
    const std::string upto4 = decode(ids, 4);
    const std::string upto5 = decode(ids, 5);
    if (upto5.find("\xEF\xBF\xBD") != std::string::npos || upto5.size() <= upto4.size() ||
        upto5.compare(0, upto4.size(), upto4) != 0)
      continue;
    const std::string stop = upto5.substr(upto4.size());
    if (upto4.find(stop) != std::string::npos) continue;
    SCOPED_TRACE(seed);
    r.stop = {stop};
    const auto stopped = provider->complete(r);
    EXPECT_EQ(stopped[0].finish_reason, "stop");
    EXPECT_EQ(stopped[0].ids, std::vector<std::int64_t>(ids.begin(), ids.begin() + 5));
    // The stop string is kept in the text, as the sampler keeps its token.
    EXPECT_EQ(stopped[0].text, upto5);
    EXPECT_EQ(free_run[0].finish_reason, "length");
    return;
  }
  FAIL() << "no seed gave a plain-text start";
}

TEST(LocalProviderTest, InvalidRequestsAreErrors) {
  const auto provider = local_provider();
  EXPECT_THROW(provider->complete(request({}, 1, 0)), Error);
  EXPECT_THROW(provider->complete(request(kBase, 0, 0)), Error);
  EXPECT_THROW(provider->complete(request({1, 256}, 1, 0)), Error);  // outside the vocabulary
  CompletionRequest long_request = request(kBase, 1, 0);
  long_request.max_tokens = 1000;  // beyond max_position_embeddings (256)
  EXPECT_THROW(provider->complete(long_request), Error);
  // The provider still works after a failed request.
  EXPECT_EQ(provider->complete(request(kBase, 1, 3)).size(), 1u);
  // Without a tokenizer: ids only, and stop strings are an error.
  const auto bare = std::make_shared<LocalProvider>(tiny_model(), tiny_options());
  ASSERT_EQ(bare->tokenizer(), nullptr);
  const auto ids_only = bare->complete(request(kBase, 2, 77));
  EXPECT_EQ(ids_only[0].ids, provider->complete(request(kBase, 2, 77))[0].ids);
  EXPECT_TRUE(ids_only[0].text.empty());
  CompletionRequest with_stop = request(kBase, 1, 0);
  with_stop.stop = {"x"};
  EXPECT_THROW(bare->complete(with_stop), Error);
  EXPECT_THROW(LocalProvider(tiny_model(), LocalProviderOptions{.stop_ids = {256}}), Error);
  EXPECT_THROW(LocalProvider(nullptr), Error);
}

TEST(LocalProviderTest, TextPromptsAreEncodedAndMessagesAloneAreRefused) {
  const auto provider = local_provider();
  const std::string text = "Hello, world. The";
  const auto ids = tiny_tokenizer()->encode(text, true).ids;
  CompletionRequest by_text = request({}, 3, 11);
  by_text.prompt_text = text;
  EXPECT_EQ(provider->complete(by_text), provider->complete(request(ids, 3, 11)));
  // Ids win when both are given (the text is only informative then).
  CompletionRequest both = request(ids, 3, 11);
  both.prompt_text = "something else entirely";
  EXPECT_EQ(provider->complete(both), provider->complete(request(ids, 3, 11)));

  CompletionRequest chat = request({}, 1, 0);
  chat.messages = {{"user", "hi"}, {"assistant", "Hello"}};
  try {
    provider->complete(chat);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only as chat messages"), std::string::npos) << e.what();
  }
  // No tokenizer: a text prompt cannot be encoded.
  const auto bare = std::make_shared<LocalProvider>(tiny_model(), tiny_options());
  EXPECT_THROW(bare->complete(by_text), Error);
}

TEST(LocalProviderTest, SamplingControlsReachTheSamplerAndVllmPenaltiesAreRefused) {
  const auto provider = local_provider();
  CompletionRequest r = request(kBase, 4, 21);
  r.min_p = 0.2;
  r.repetition_penalty = 1.7;
  model::SamplingOptions o;
  o.temperature = r.temperature;
  o.top_p = r.top_p;
  o.min_p = r.min_p;
  o.repetition_penalty = r.repetition_penalty;
  o.max_new_tokens = r.max_tokens;
  o.stop_ids = tiny_options().stop_ids;
  o.seed = r.seed;
  const auto samples = model::sample(*tiny_model(), r.prompt_ids, r.n, o, tiny_tokenizer().get());
  const auto completions = provider->complete(r);
  const auto plain = provider->complete(request(kBase, 4, 21));
  ASSERT_EQ(completions.size(), samples.size());
  for (std::size_t k = 0; k < samples.size(); ++k) EXPECT_EQ(completions[k].ids, samples[k].ids) << "lane " << k;
  EXPECT_NE(completions, plain) << "min_p / repetition_penalty changed nothing";

  for (const auto& [presence, frequency] : {std::pair{0.5, 0.0}, std::pair{0.0, -0.3}}) {
    CompletionRequest penalised = request(kBase, 1, 0);
    penalised.presence_penalty = presence;
    penalised.frequency_penalty = frequency;
    try {
      provider->complete(penalised);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not supported"), std::string::npos) << e.what();
    }
  }
  CompletionRequest bad = request(kBase, 1, 0);
  bad.min_p = 1.5;
  EXPECT_THROW(provider->complete(bad), Error);
  bad = request(kBase, 1, 0);
  bad.repetition_penalty = 0;
  EXPECT_THROW(provider->complete(bad), Error);
}

// ---------------------------------------------------------------- over HTTP

// scripts/setup.sh installs cpp-httplib: a build without it fails these tests
// (a missing dependency is an error, never a skip).
#define REQUIRE_HTTP()                      \
  ASSERT_TRUE(OpenAIProvider::available())       \
      << "built without cpp-httplib (apt-get install libcpp-httplib-dev)"

OpenAIOptions client_for(const CompletionServer& server) {
  OpenAIOptions o;
  o.base_url = server.url();
  o.model = "tiny";
  o.timeout_seconds = 30;
  o.backoff_base_seconds = 0.01;
  o.backoff_max_seconds = 0.05;
  return o;
}

ServerOptions server_options() {
  ServerOptions o;
  o.model_name = "tiny";
  const auto tokenizer = tiny_tokenizer();
  o.tokenize = [tokenizer](const std::string& text) { return tokenizer->encode(text).ids; };
  return o;
}

TEST(CompletionServerTest, ClientOverLoopbackEqualsLocalProvider) {
  REQUIRE_HTTP();
  CompletionServer server(local_provider(), server_options());
  server.start();
  EXPECT_TRUE(server.running());
  EXPECT_GT(server.port(), 0);
  OpenAIProvider client(client_for(server));
  EXPECT_EQ(client.list_models(), (std::vector<std::string>{"tiny"}));
  const auto reference = local_provider();
  // The same sequence of requests (so the same prefix reuse) on both sides.
  for (const auto& [prompt, seed] : std::vector<std::pair<std::vector<std::int64_t>, std::uint64_t>>{
           {with(kBase, {84, 104}), 1}, {with(kBase, {84, 97}), 2}, {with(kBase, {84, 97}), 3}, {{1, 2, 3}, 1}}) {
    CompletionRequest r = request(prompt, 3, seed);
    r.top_k = seed == 3 ? 20 : 0;
    const auto remote = client.complete(r);
    const auto local = reference->complete(r);
    ASSERT_EQ(remote.size(), local.size());
    for (std::size_t k = 0; k < local.size(); ++k) {
      EXPECT_EQ(remote[k].ids, local[k].ids) << "seed " << seed << " lane " << k;
      EXPECT_EQ(remote[k].text, local[k].text);
      EXPECT_EQ(remote[k].finish_reason, local[k].finish_reason);
    }
  }
  EXPECT_EQ(server.completion_requests(), 4);
  EXPECT_EQ(client.stats().retries, 0);
  server.stop();
  EXPECT_FALSE(server.running());
  server.stop();  // idempotent
}

TEST(CompletionServerTest, RetriesSurviveFailingAndStallingServer) {
  REQUIRE_HTTP();
  ServerOptions so = server_options();
  so.fail_every = 2;       // requests 2, 4, 6, ... answer 500
  so.stall_every = 3;      // requests 3, 6, 9, ... sleep past the client's timeout
  so.stall_seconds = 5.0;
  CompletionServer server(local_provider(), so);
  server.start();
  OpenAIOptions co = client_for(server);
  co.timeout_seconds = 0.5;  // far above a tiny request's time, far below the stall
  co.max_retries = 8;
  OpenAIProvider client(co);
  const auto reference = local_provider();
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    const CompletionRequest r = request(with(kBase, {static_cast<std::int64_t>(65 + seed)}), 2, seed);
    EXPECT_EQ(client.complete(r), reference->complete(r)) << "seed " << seed;
  }
  const auto stats = client.stats();
  EXPECT_EQ(stats.requests, 4);
  EXPECT_GE(stats.retries, 4);
  EXPECT_EQ(stats.attempts, server.completion_requests());
  const auto begin = std::chrono::steady_clock::now();
  server.stop();  // cuts the last stall short
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count(), 4.0);
}

TEST(CompletionServerTest, ClientErrorsAreImmediateAndServerErrorsExhaustRetries) {
  REQUIRE_HTTP();
  ServerOptions so = server_options();
  so.max_n = 4;
  CompletionServer server(local_provider(), so);
  server.start();
  OpenAIProvider client(client_for(server));
  // A prompt id outside the model's vocabulary: the provider's anchors::Error is a 400.
  try {
    client.complete(request({1, 999}, 1, 0));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("HTTP 400"), std::string::npos) << message;
    EXPECT_NE(message.find("outside"), std::string::npos) << message;
  }
  EXPECT_EQ(server.completion_requests(), 1);  // not retried
  EXPECT_THROW(client.complete(request(kBase, 5, 0)), Error);  // n above the server's max_n
  EXPECT_EQ(server.completion_requests(), 2);
  EXPECT_EQ(client.stats().retries, 0);
  server.stop();

  // Every request fails: max_retries + 1 attempts, then an error naming the last failure.
  so.fail_every = 1;
  CompletionServer failing(local_provider(), so);
  failing.start();
  OpenAIOptions co = client_for(failing);
  co.max_retries = 2;
  OpenAIProvider impatient(co);
  try {
    impatient.complete(request(kBase, 1, 0));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("giving up after 3 attempts"), std::string::npos) << message;
    EXPECT_NE(message.find("HTTP 500"), std::string::npos) << message;
    EXPECT_NE(message.find("injected failure"), std::string::npos) << message;
  }
  EXPECT_EQ(failing.completion_requests(), 3);
  const int dead_port = failing.port();
  failing.stop();

  // Nothing listening: connection errors are retried, then reported.
  OpenAIOptions nobody = co;
  nobody.base_url = "http://127.0.0.1:" + std::to_string(dead_port);
  nobody.max_retries = 1;
  OpenAIProvider lonely(nobody);
  EXPECT_THROW(lonely.complete(request(kBase, 1, 0)), Error);
  EXPECT_EQ(lonely.stats().attempts, 2);
}

// A provider that records how many calls run at once.
class SlowProvider : public RolloutProvider {
 public:
  std::string name() const override { return "slow"; }
  std::vector<Completion> complete(const CompletionRequest& r) override {
    const int now = ++in_flight;
    {
      std::lock_guard lock(mutex);
      peak = std::max(peak, now);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    --in_flight;
    return std::vector<Completion>(static_cast<std::size_t>(r.n), Completion{{r.prompt_ids[0]}, "x", "length"});
  }
  std::atomic<int> in_flight{0};
  std::mutex mutex;
  int peak = 0;
};

TEST(CompletionServerTest, ClientConcurrencyIsBounded) {
  REQUIRE_HTTP();
  const auto slow = std::make_shared<SlowProvider>();
  ServerOptions so;
  so.serialize_requests = false;  // let the client's bound show
  CompletionServer server(slow, so);
  server.start();
  OpenAIOptions co = client_for(server);
  co.max_concurrency = 2;
  OpenAIProvider client(co);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&, t] {
      const auto c = client.complete(request({t + 1}, 1, 0));
      if (c.size() == 1 && c[0].ids == std::vector<std::int64_t>{t + 1}) ++ok;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 6);
  EXPECT_EQ(slow->peak, 2);
}

// A control reaches the sampler through LocalProvider, and through `anchors
// serve` + OpenAIProvider unchanged (the answer confirms it); prompt scoring
// applies it too. The cached prefix never mixes controlled and plain slots.
TEST(CompletionServerTest, AttentionControlReachesTheSamplerOverTheWire) {
  REQUIRE_HTTP();
  CompletionServer server(local_provider(), server_options());
  server.start();
  OpenAIProvider client(client_for(server));
  const auto reference = local_provider();
  CompletionRequest plain = request(with(kBase, {84, 104}), 3, 5);
  plain.temperature = 0;
  CompletionRequest controlled = plain;
  controlled.attention_control.ablate_heads(0, {}).ablate_heads(1, {0}, /*from=*/4);
  const auto local_plain = reference->complete(plain);
  const auto local_controlled = reference->complete(controlled);
  EXPECT_EQ(reference->last_reused_tokens(), 0);  // the control starts at slot 0: nothing cached is usable
  EXPECT_NE(local_controlled[0].ids, local_plain[0].ids);
  EXPECT_EQ(reference->complete(plain)[0].ids, local_plain[0].ids);  // and the cache was not poisoned

  model::SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = plain.max_tokens;
  o.stop_ids = tiny_options().stop_ids;
  o.control = controlled.attention_control;
  EXPECT_EQ(local_controlled[0].ids, model::sample(*tiny_model(), controlled.prompt_ids, 1, o)[0].ids);

  const auto remote = client.complete(controlled);
  for (std::size_t k = 0; k < remote.size(); ++k) EXPECT_EQ(remote[k].ids, local_controlled[k].ids) << k;
  const auto remote_scores = client.prompt_logprobs(controlled);
  const auto local_scores = reference->prompt_logprobs(controlled);
  const auto plain_scores = reference->prompt_logprobs(plain);
  ASSERT_EQ(remote_scores.size(), local_scores.size());
  double changed = 0;
  for (std::size_t k = 1; k < local_scores.size(); ++k) {
    EXPECT_NEAR(remote_scores[k], local_scores[k], 1e-5) << k;  // the server scores one more token
    changed = std::max(changed, std::abs(local_scores[k] - plain_scores[k]));
  }
  EXPECT_GT(changed, 1e-4);
  server.stop();
}

TEST(CompletionServerTest, HandleAnswersWithoutHttp) {
  CompletionServer server(local_provider(), server_options());
  const auto models = server.handle("GET", "/v1/models", "");
  EXPECT_EQ(models.status, 200);
  EXPECT_EQ(json::parse(models.body)["data"][0]["id"], "tiny");
  EXPECT_EQ(server.handle("GET", "/nope", "").status, 404);
  EXPECT_EQ(server.handle("GET", "/v1/completions", "").status, 405);
  const auto bad = server.handle("POST", "/v1/completions", "{oops");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(json::parse(bad.body)["error"]["message"].get<std::string>().find("malformed JSON"), std::string::npos);

  // A text prompt is tokenised with ServerOptions::tokenize.
  const std::string text = "Hello, world. ";
  const auto ids = tiny_tokenizer()->encode(text).ids;
  const auto answer = server.handle(
      "POST", "/v1/completions",
      json{{"prompt", text}, {"n", 2}, {"temperature", 1.0}, {"top_p", 0.95}, {"max_tokens", 12}, {"seed", 9}}.dump());
  ASSERT_EQ(answer.status, 200) << answer.body;
  const json doc = json::parse(answer.body);
  EXPECT_EQ(doc["usage"]["prompt_tokens"], ids.size());
  const auto expected = local_provider()->complete(request(ids, 2, 9));
  for (std::size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(doc["choices"][k]["index"], k);
    EXPECT_EQ(doc["choices"][k]["token_ids"].get<std::vector<std::int64_t>>(), expected[k].ids);
    EXPECT_EQ(doc["choices"][k]["text"], expected[k].text);
    EXPECT_EQ(doc["choices"][k]["finish_reason"], expected[k].finish_reason);
  }
  // Without a tokenizer, text prompts are a 400.
  CompletionServer ids_only(local_provider());
  EXPECT_EQ(ids_only.handle("POST", "/v1/completions", R"({"prompt": "hi"})").status, 400);
  EXPECT_THROW(CompletionServer(nullptr), Error);
  EXPECT_THROW(CompletionServer(local_provider(), ServerOptions{.port = 70000}), Error);
  EXPECT_THROW(CompletionServer(local_provider(), ServerOptions{.header_timeout_seconds = 0}), Error);
  // A number no double holds is the client's error (it was a 500 "number overflow").
  const auto overflow = server.handle("POST", "/v1/completions", R"({"prompt": [1, 2], "temperature": 1e309})");
  EXPECT_EQ(overflow.status, 400) << overflow.body;
  EXPECT_NE(json::parse(overflow.body)["error"]["message"].get<std::string>().find("malformed JSON"),
            std::string::npos);
}

// Issue 17 item 4: twelve connections that trickle a header byte every 100 ms
// held cpp-httplib's workers and stalled every other request. Now completions
// go through while they trickle, and each of them is answered 408 at
// header_timeout.
TEST(CompletionServerTest, SlowClientsDoNotStarveTheServer) {
  REQUIRE_HTTP();
  ServerOptions so = server_options();
  so.workers = 2;
  so.header_timeout_seconds = 4.0;
  std::mutex log_mutex;
  std::vector<std::string> log;
  so.log = [&](const std::string& line) {
    std::lock_guard lock(log_mutex);
    log.push_back(line);
  };
  CompletionServer server(local_provider(), so);
  server.start();
  std::vector<int> slow;
  for (int k = 0; k < 12; ++k) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(server.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    slow.push_back(fd);
  }
  const auto begin = std::chrono::steady_clock::now();
  std::atomic<bool> stop_trickling{false};
  std::thread trickle([&] {
    const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    for (std::size_t i = 0; !stop_trickling; ++i) {
      const char byte = i < head.size() ? head[i] : 'a';
      for (const int fd : slow) ::send(fd, &byte, 1, MSG_NOSIGNAL);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  OpenAIProvider client(client_for(server));
  const auto reference = local_provider();
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    const CompletionRequest r = request(kBase, 2, seed);
    EXPECT_EQ(client.complete(r), reference->complete(r)) << "seed " << seed;
  }
  EXPECT_EQ(client.list_models(), (std::vector<std::string>{"tiny"}));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count(), 3.5)
      << "the requests waited behind the slow clients";
  for (const int fd : slow) {
    timeval wait{6, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    char answer[64] = {0};
    EXPECT_GT(::recv(fd, answer, sizeof answer - 1, 0), 12);
    EXPECT_EQ(std::string(answer).rfind("HTTP/1.1 408", 0), 0u) << answer;
  }
  stop_trickling = true;
  trickle.join();
  for (const int fd : slow) ::close(fd);
  std::lock_guard lock(log_mutex);
  EXPECT_TRUE(std::any_of(log.begin(), log.end(), [](const std::string& l) { return l.find(": 408 ") != l.npos; }));
  EXPECT_TRUE(std::any_of(log.begin(), log.end(),
                          [](const std::string& l) { return l.rfind("POST /v1/completions 200 ", 0) == 0; }));
}

TEST(CompletionServerTest, BusyPortIsAnError) {
  REQUIRE_HTTP();
  CompletionServer first(local_provider());
  first.start();
  ServerOptions so;
  so.port = first.port();
  CompletionServer second(local_provider(), so);
  EXPECT_THROW(second.start(), Error);
  EXPECT_THROW(first.start(), Error);  // already started
}

// The raw prompt the library builds for a problem, and a rollout prefix after it.
const std::string kProblem = "What is 2 + 3?";
const std::string kPrefix = "First, add. The";

TEST(CompletionServerTest, TextAndChatModesEqualIdsModeWhenTheTextTokenisesToTheSameIds) {
  REQUIRE_HTTP();
  ServerOptions so = server_options();
  so.render_chat = chat_renderer(tiny_tokenizer(), model::PromptFormat::kRaw);
  CompletionServer server(local_provider(), so);
  server.start();
  OpenAIOptions base = client_for(server);
  base.prompt_mode = "ids";
  OpenAIProvider ids_client(base);
  base.prompt_mode = "text";
  OpenAIProvider text_client(base);
  base.prompt_mode = "chat";
  OpenAIProvider chat_client(base);

  const std::string text = model::render_prompt_text(model::PromptFormat::kRaw, kProblem) + kPrefix;
  CompletionRequest r = request(tiny_tokenizer()->encode(text, true).ids, 3, 5);
  r.prompt_text = text;
  r.messages = {{"user", kProblem}, {"assistant", kPrefix}};
  // Every form of the prompt names the same tokens: the rollouts are identical.
  ASSERT_EQ(r.prompt_ids, model::render_prompt(*tiny_tokenizer(), model::PromptFormat::kRaw, kProblem, kPrefix).ids);
  const auto by_ids = ids_client.complete(r);
  const auto by_text = text_client.complete(r);
  const auto by_chat = chat_client.complete(r);
  EXPECT_EQ(by_text, by_ids);
  EXPECT_EQ(by_chat, by_ids);
  EXPECT_EQ(by_ids, local_provider()->complete(r));
  std::set<std::size_t> lengths;
  for (const auto& c : by_ids) lengths.insert(c.ids.size());
  EXPECT_GT(lengths.size(), 1u) << "want lanes of different lengths";

  // Each mode needs its own form of the prompt, checked before any network.
  const std::int64_t before = server.completion_requests();
  CompletionRequest ids_only = request(r.prompt_ids, 1, 0);
  for (OpenAIProvider* client : {&text_client, &chat_client}) {
    try {
      client->complete(ids_only);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("prompt_mode \"" + client->options().prompt_mode + "\""), std::string::npos) << message;
      EXPECT_NE(message.find(client == &text_client ? "no prompt_text" : "no messages"), std::string::npos) << message;
    }
  }
  CompletionRequest text_only = request({}, 1, 0);
  text_only.prompt_text = text;
  EXPECT_THROW(ids_client.complete(text_only), Error);
  EXPECT_EQ(server.completion_requests(), before);

  // A shape of messages the raw format cannot render is the server's 400, not retried.
  CompletionRequest two_users = request({}, 1, 0);
  two_users.messages = {{"user", "a"}, {"user", "b"}};
  try {
    chat_client.complete(two_users);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("HTTP 400"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("got roles user, user"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.completion_requests(), before + 1);

  // Without a renderer, chat requests are a 400 naming the problem.
  CompletionServer no_chat(local_provider(), server_options());
  const auto answer = no_chat.handle("POST", "/v1/chat/completions",
                                     json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}}.dump());
  EXPECT_EQ(answer.status, 400);
  EXPECT_NE(answer.body.find("cannot render chat"), std::string::npos) << answer.body;
}

TEST(CompletionServerTest, ChatEndpointAnswersChatCompletions) {
  ServerOptions so = server_options();
  so.render_chat = chat_renderer(tiny_tokenizer(), model::PromptFormat::kRaw);
  CompletionServer server(local_provider(), so);
  const json body = {{"messages", {{{"role", "user"}, {"content", kProblem}}, {{"role", "assistant"}, {"content", kPrefix}}}},
                     {"continue_final_message", true}, {"add_generation_prompt", false}, {"n", 2},
                     {"temperature", 1.0}, {"top_p", 0.95}, {"max_completion_tokens", 12}, {"seed", 4}};
  const auto answer = server.handle("POST", "/v1/chat/completions", body.dump());
  ASSERT_EQ(answer.status, 200) << answer.body;
  const json doc = json::parse(answer.body);
  EXPECT_EQ(doc["object"], "chat.completion");
  const auto rendered = model::render_prompt(*tiny_tokenizer(), model::PromptFormat::kRaw, kProblem, kPrefix);
  EXPECT_EQ(doc["usage"]["prompt_tokens"], rendered.ids.size());
  const auto expected = local_provider()->complete(request(rendered.ids, 2, 4));
  for (std::size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(doc["choices"][k]["message"]["role"], "assistant");
    EXPECT_EQ(doc["choices"][k]["message"]["content"], expected[k].text);
    EXPECT_EQ(doc["choices"][k]["token_ids"].get<std::vector<std::int64_t>>(), expected[k].ids);
  }
  // A final assistant message without continue_final_message would be a new turn: refused.
  json no_continue = body;
  no_continue.erase("continue_final_message");
  no_continue.erase("add_generation_prompt");
  const auto refused = server.handle("POST", "/v1/chat/completions", no_continue.dump());
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.body.find("continue_final_message"), std::string::npos) << refused.body;
  // A chat format whose control tokens the tokenizer lacks is a 400 naming the token.
  ServerOptions qwen = server_options();
  qwen.render_chat = chat_renderer(tiny_tokenizer(), model::PromptFormat::kQwen3);
  CompletionServer qwen_server(local_provider(), qwen);
  const auto missing = qwen_server.handle("POST", "/v1/chat/completions", body.dump());
  EXPECT_EQ(missing.status, 400);
  EXPECT_NE(missing.body.find("has no token"), std::string::npos) << missing.body;
}

TEST(CompletionServerTest, ChatRendererRendersConversations) {
  // A trimmed R1-distill tokenizer: the R1 format's control tokens but no
  // end-of-sentence token, so no prior assistant turn.
  const auto tokenizer = model::Tokenizer::load(std::string(ANCHORS_TEST_DATA_DIR) + "/tokenizers/llama3/tokenizer.json");
  const openai::ChatRenderer render = chat_renderer(tokenizer, model::PromptFormat::kDeepSeekR1);
  const std::vector<ChatMessage> scenario = {{"system", "You are an agent."}, {"user", "Decide."}};
  std::vector<ChatMessage> partial = scenario;
  partial.push_back({"assistant", "I will"});
  const openai::ChatPrompt prompt = render(partial, true);
  EXPECT_EQ(prompt.text, model::render_chat_prompt_text(model::PromptFormat::kDeepSeekR1, scenario) + "I will");
  EXPECT_EQ(prompt.ids, tokenizer->encode(prompt.text, false).ids);
  EXPECT_EQ(render(scenario, false).text, model::render_chat_prompt_text(model::PromptFormat::kDeepSeekR1, scenario));
  EXPECT_THROW(render(partial, false), Error);                                   // a new turn after it
  EXPECT_THROW(render({{"assistant", "x"}, {"user", "y"}, {"assistant", "z"}}, true), Error);  // no EOS token
}

#if ANCHORS_WITH_HTTPLIB
// A server on loopback that records the path, Authorization header and body of
// every POST and answers one canned choice per requested n, in either shape.
class RecordingServer {
 public:
  RecordingServer() {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      const json body = json::parse(req.body);
      {
        std::lock_guard lock(mutex_);
        paths_.push_back(req.path);
        bodies_.push_back(body);
        authorizations_.push_back(req.get_header_value("Authorization"));
      }
      const bool chat = req.path.find("/chat/") != std::string::npos;
      json choices = json::array();
      for (std::int64_t k = 0; k < body.value("n", 1); ++k) {
        json c = {{"index", k}, {"finish_reason", "length"}};
        if (chat) {
          c["message"] = {{"role", "assistant"}, {"content", "lane " + std::to_string(k)}};
        } else {
          c["text"] = "lane " + std::to_string(k);
        }
        choices.push_back(c);
      }
      res.set_content(json{{"choices", choices}}.dump(), "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~RecordingServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string path(std::size_t i) const { std::lock_guard lock(mutex_); return paths_.at(i); }
  json body(std::size_t i) const { std::lock_guard lock(mutex_); return bodies_.at(i); }
  std::string authorization(std::size_t i) const { std::lock_guard lock(mutex_); return authorizations_.at(i); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<std::string> paths_;
  std::vector<json> bodies_;
  std::vector<std::string> authorizations_;
};

TEST(OpenAIProviderTest, WhatEachPromptModeSendsOverTheWire) {
  REQUIRE_HTTP();
  RecordingServer server;
  CompletionRequest r = request({7, 8, 9}, 2, 3);
  r.prompt_text = "Problem text. Partial";
  r.messages = {{"system", "Be brief."}, {"user", "Problem text."}, {"assistant", "Partial"}};
  OpenAIOptions o;
  o.base_url = server.url();
  o.model = "m";
  o.api_key_env = "";  // never read the environment in this part

  o.prompt_mode = "ids";
  EXPECT_EQ(OpenAIProvider(o).complete(r)[1].text, "lane 1");
  EXPECT_EQ(server.path(0), "/v1/completions");
  EXPECT_EQ(server.body(0)["prompt"], json({7, 8, 9}));
  // Neutral extras are not sent, so strict servers never see them.
  for (const char* key : {"min_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "messages"})
    EXPECT_FALSE(server.body(0).contains(key)) << key;
  EXPECT_EQ(server.authorization(0), "");

  o.prompt_mode = "text";
  r.min_p = 0.05;
  r.repetition_penalty = 1.1;
  r.presence_penalty = 0.5;
  r.frequency_penalty = -0.25;
  EXPECT_EQ(OpenAIProvider(o).complete(r)[0].text, "lane 0");
  EXPECT_EQ(server.path(1), "/v1/completions");
  EXPECT_EQ(server.body(1)["prompt"], "Problem text. Partial");
  EXPECT_DOUBLE_EQ(server.body(1)["min_p"].get<double>(), 0.05);
  EXPECT_DOUBLE_EQ(server.body(1)["repetition_penalty"].get<double>(), 1.1);
  EXPECT_DOUBLE_EQ(server.body(1)["presence_penalty"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(server.body(1)["frequency_penalty"].get<double>(), -0.25);

  o.prompt_mode = "chat";
  const auto chat = OpenAIProvider(o).complete(r);
  EXPECT_EQ(chat[0].text, "lane 0");
  EXPECT_EQ(chat[1].text, "lane 1");
  EXPECT_EQ(server.path(2), "/v1/chat/completions");
  const json sent = server.body(2);
  EXPECT_FALSE(sent.contains("prompt"));
  EXPECT_EQ(sent["messages"], json({{{"role", "system"}, {"content", "Be brief."}},
                                    {{"role", "user"}, {"content", "Problem text."}},
                                    {{"role", "assistant"}, {"content", "Partial"}}}));
  EXPECT_EQ(sent["continue_final_message"], true);
  EXPECT_EQ(sent["add_generation_prompt"], false);
  EXPECT_EQ(sent["n"], 2);

  // API key: an environment variable named by api_key_env; an explicit key wins.
  ASSERT_EQ(setenv("ANCHORS_TEST_PROVIDER_KEY", "from-env", 1), 0);
  o.prompt_mode = "ids";
  o.api_key_env = "ANCHORS_TEST_PROVIDER_KEY";
  OpenAIProvider(o).complete(r);
  EXPECT_EQ(server.authorization(3), "Bearer from-env");
  o.api_key = "explicit";
  OpenAIProvider(o).complete(r);
  EXPECT_EQ(server.authorization(4), "Bearer explicit");
  unsetenv("ANCHORS_TEST_PROVIDER_KEY");
}
#endif

TEST(OpenAIProviderTest, OptionsAreChecked) {
  REQUIRE_HTTP();
  EXPECT_THROW(OpenAIProvider(OpenAIOptions{.base_url = "127.0.0.1:8000"}), Error);
  EXPECT_THROW(OpenAIProvider(OpenAIOptions{.base_url = "ftp://x"}), Error);
  EXPECT_THROW(OpenAIProvider(OpenAIOptions{.max_retries = -1}), Error);
  EXPECT_THROW(OpenAIProvider(OpenAIOptions{.max_concurrency = 0}), Error);
  EXPECT_THROW(OpenAIProvider(OpenAIOptions{.timeout_seconds = 0}), Error);
  try {
    OpenAIProvider(OpenAIOptions{.prompt_mode = "tokens"});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prompt_mode \"tokens\""), std::string::npos) << e.what();
  }
  EXPECT_EQ(OpenAIProvider(OpenAIOptions{.base_url = "http://h:1/v1", .model = "m"}).name(), "openai:http://h:1/v1 (m)");
  OpenAIProvider p(OpenAIOptions{});
  EXPECT_THROW(p.complete(request({}, 1, 0)), Error);  // checked before any network
  EXPECT_EQ(p.stats().attempts, 0);
}

// ---- make_method("resampling") with a provider: the engine behind the registry

// Needs no model: 1 for equal texts, 0 otherwise.
class ExactSimilarity : public SentenceSimilarity {
 public:
  std::vector<double> similarities(const std::vector<std::pair<std::string, std::string>>& pairs) override {
    std::vector<double> out;
    for (const auto& [a, b] : pairs) out.push_back(a == b ? 1.0 : 0.0);
    return out;
  }
};

// Labels every text, so the tiny model's rollouts (which never box an
// answer) give accuracies that vary by sentence.
class LengthParity : public Outcome {
 public:
  std::string name() const override { return "length-parity"; }
  std::optional<std::string> label(const std::string& text) const override {
    return text.size() % 2 ? "5" : "4";
  }
};

// Scores compared with NaN equal to NaN (Attribution's equality).
Attribution scores_only(const Attribution& a) {
  Attribution s;
  s.scores = a.scores;
  return s;
}

Problem tiny_problem() {
  Problem p;
  p.text = "What is 2 + 3?";
  p.gt_answer = "5";
  return p;
}

Trace tiny_trace() {
  return base_trace_of(tiny_problem(), "",
                       "I add 2 and 3 here. Then I check that it is five. So the answer is \\boxed{5}.", BoxedAnswer());
}

std::map<std::string, std::string> solutions_files(const std::string& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root))
    if (e.path().filename() == "solutions.json")
      files[std::filesystem::relative(e.path(), root).string()] = read_text_file(e.path().string(), kDataFileLimit);
  return files;
}

TEST(ResamplingMethodTest, GeneratesWhatAnalyzeGeneratesAndScoresIt) {
  register_builtins();
  testing::ScratchDir by_method("method"), by_analyze("analyze");
  const Trace trace = tiny_trace();
  ASSERT_EQ(trace.sentences.size(), 3u);
  Context context;
  context.provider = local_provider();
  context.tokenizer = tiny_tokenizer();
  context.output_dir = by_method.path();
  context.similarity = std::make_shared<ExactSimilarity>();
  context.outcome = std::make_shared<LengthParity>();
  context.options = {{"num_rollouts", std::int64_t{3}}, {"batch", std::int64_t{2}}, {"max_tokens", std::int64_t{6}},
                     {"forced", true}, {"seed", std::int64_t{5}}, {"forced_max_tokens", std::int64_t{4}}};
  std::size_t last_done = 0, last_total = 0;
  context.control.progress = [&](std::size_t done, std::size_t total, const std::string& unit) {
    EXPECT_EQ(unit, "rollouts");
    last_done = done;
    last_total = total;
  };
  const Attribution generated = make_method("resampling")->run(trace, context);
  EXPECT_EQ(last_total, 2u * 3u * trace.sentences.size());
  EXPECT_EQ(last_done, last_total);

  // analyze_problem with the same base solution and options: the same files, the same attribution.
  AnalyzeOptions options = analyze_options(context.options);
  options.base_solution = trace.text;
  options.outcome = context.outcome;
  ExactSimilarity similarity;
  const AnalyzeResult analyzed =
      analyze_problem(*context.provider, *tiny_tokenizer(), tiny_problem(), by_analyze.path(), similarity, options);
  EXPECT_EQ(analyzed.result.trace, trace);
  const auto files = solutions_files(by_method.path());
  EXPECT_EQ(files.size(), 2u * trace.sentences.size());
  EXPECT_EQ(files, solutions_files(by_analyze.path()));
  EXPECT_EQ(generated, analyzed.result.attribution("resampling"));
  EXPECT_EQ(std::get<std::int64_t>(generated.metadata.at("num_rollouts")), 3);
  EXPECT_EQ(std::get<std::string>(generated.metadata.at("outcome")), "length-parity");
  const auto& accuracy = generated.score("accuracy");
  EXPECT_TRUE(std::any_of(accuracy.begin(), accuracy.end(), [](double v) { return v > 0 && v < 1; }));
  EXPECT_EQ(generated.options.count("num_rollouts"), 0u);  // generation settings are metadata, not scoring options

  // Run again: nothing is missing, nothing is generated, the same scores.
  EXPECT_EQ(make_method("resampling")->run(trace, context), generated);
  EXPECT_EQ(files, solutions_files(by_method.path()));

  // Scoring what is on disk (Context::rollouts) gives the same scores.
  Context scoring;
  scoring.rollouts = std::make_shared<const ProblemRollouts>(read_problem_rollouts(analyzed.problem_dir));
  scoring.similarity = context.similarity;
  EXPECT_EQ(scores_only(make_method("resampling")->run(trace, scoring)), scores_only(generated));
}

TEST(ResamplingMethodTest, OptionsAndBadInput) {
  register_builtins();
  // The registry's generation defaults are AnalyzeOptions' defaults.
  const AnalyzeOptions d, o = analyze_options({});
  EXPECT_EQ(o.num_rollouts, d.num_rollouts);
  EXPECT_EQ(o.forced, d.forced);
  EXPECT_EQ(o.seed, d.seed);
  EXPECT_EQ(o.temperature, d.temperature);
  EXPECT_EQ(o.top_p, d.top_p);
  EXPECT_EQ(o.min_p, d.min_p);
  EXPECT_EQ(o.repetition_penalty, d.repetition_penalty);
  EXPECT_EQ(o.max_tokens, d.max_tokens);
  EXPECT_EQ(o.max_positions, d.max_positions);
  EXPECT_EQ(o.batch, d.batch);
  EXPECT_EQ(o.forced_max_tokens, d.forced_max_tokens);
  EXPECT_EQ(o.scoring, resampling_scoring_options());  // every scoring option, at its default
  EXPECT_TRUE(d.scoring.empty());
  // A scoring option given to AnalyzeOptions must be one (a generation name there is a mistake).
  AnalyzeOptions misplaced;
  misplaced.scoring = {{"num_rollouts", std::int64_t{3}}};
  misplaced.base_solution = tiny_trace().text;
  ExactSimilarity exact;
  testing::ScratchDir nowhere("misplaced");
  EXPECT_THROW(analyze_problem(*local_provider(), *tiny_tokenizer(), tiny_problem(), nowhere.path(), exact, misplaced),
               Error);
  EXPECT_THROW(analyze_options({{"num_rollouts", 3.0}}), Error);    // wrong type
  EXPECT_THROW(analyze_options({{"num_rolouts", std::int64_t{3}}}), Error);  // unknown

  testing::ScratchDir scratch("bad");
  Context context;
  context.provider = local_provider();
  context.tokenizer = tiny_tokenizer();
  context.output_dir = scratch.path();
  context.similarity = std::make_shared<ExactSimilarity>();
  context.options = {{"num_rollouts", std::int64_t{1}}, {"max_tokens", std::int64_t{2}}};
  const auto method = make_method("resampling");
  const auto fails_with = [&](const Trace& trace, const Context& c, const std::string& needle) {
    try {
      method->run(trace, c);
      ADD_FAILURE() << "no error; expected " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Trace anonymous = tiny_trace();
  anonymous.metadata.erase("problem");
  fails_with(anonymous, context, "names no problem");
  Trace short_sentence = tiny_trace();
  short_sentence.sentences[1].text = "Hm.";
  short_sentence.sentences[1].chars.end = short_sentence.sentences[1].chars.begin + 3;
  fails_with(short_sentence, context, "shorter than min_sentence_chars");
  Context no_dir = context;
  no_dir.output_dir.clear();
  fails_with(tiny_trace(), no_dir, "output_dir");
  Context no_tokenizer = context;
  no_tokenizer.tokenizer = nullptr;
  fails_with(tiny_trace(), no_tokenizer, "tokenizer");
  std::atomic<bool> stop{true};
  Context cancelled = context;
  cancelled.control.cancel = &stop;
  fails_with(tiny_trace(), cancelled, "cancelled");
  // Another base solution of the same problem in the folder is not mixed in.
  method->run(tiny_trace(), context);
  Trace other = tiny_trace();
  other = base_trace_of(tiny_problem(), "", "I add 3 and 2 this time. So the answer is \\boxed{5}.", BoxedAnswer());
  fails_with(other, context, "another base solution");
  // A later run with another seed is refused, not mixed in (the folder's manifest.json) ...
  Context reseeded = context;
  reseeded.options["seed"] = std::int64_t{9};
  fails_with(tiny_trace(), reseeded, "another seed");
  // ... and so is any run while another writer holds the folder (its lock).
  const std::string folder = scratch.path() + "/correct_base_solution/" + problem_folder_name(tiny_problem());
  const int held = open((folder + "/.anchors.lock").c_str(), O_RDWR);
  ASSERT_GE(held, 0);
  ASSERT_EQ(flock(held, LOCK_EX | LOCK_NB), 0);
  fails_with(tiny_trace(), context, "another writer holds this folder");
  close(held);
  method->run(tiny_trace(), context);  // the same settings resume
  // ... but an incorrect base of the same problem has a folder of its own beside the correct one (as
  // analyze_problem with base "incorrect" makes it after a run with base "correct").
  const Trace incorrect =
      base_trace_of(tiny_problem(), "", "I add 2 and 2 by mistake. So the answer is \\boxed{4}.", BoxedAnswer());
  EXPECT_EQ(method->run(incorrect, context).scores.at("accuracy").size(), incorrect.sentences.size());
  EXPECT_TRUE(std::filesystem::exists(scratch.path() + "/correct_base_solution"));
  EXPECT_TRUE(std::filesystem::exists(scratch.path() + "/incorrect_base_solution"));
}

// A scenario's prompt (analysis_prompt): the authors' text layout by default,
// a model format for a single user turn, and clear errors for what a format
// cannot hold; its outcome and target come from the file.
TEST(ScenarioTest, PromptFormatsTargetAndOutcome) {
  const Problem tb = parse_scenario(
      R"({"system_prompt": "You are an agent.", "user_prompt": "Decide.", "email_content": "From: Kyle"})", "s");
  EXPECT_EQ(tb.gt_answer, "yes");
  EXPECT_EQ(analysis_prompt(tb, ""), "You are an agent.\n\nUser: Decide.\n\nFrom: Kyle\n\nAssistant:\n<think>\n");
  EXPECT_EQ(analysis_prompt(tb, "given"), "given");
  EXPECT_EQ(scenario_outcome(tb), nullptr);

  const Problem raw = parse_scenario(
      R"j({"user_prompt": "What is 2 + 3?", "prompt_format": "raw", "target": "5", "outcome": "regex:=(\\d+)"})j", "s");
  EXPECT_EQ(raw.gt_answer, "5");
  EXPECT_EQ(analysis_prompt(raw, ""), model::render_prompt_text(model::PromptFormat::kRaw, "What is 2 + 3?"));
  const auto outcome = scenario_outcome(raw);
  ASSERT_NE(outcome, nullptr);
  EXPECT_EQ(outcome->label("so =5").value_or(""), "5");

  const Problem qwen = parse_scenario(R"({"system_prompt": "Be brief.", "user_prompt": "Hi", "prompt_format": "qwen3"})", "s");
  EXPECT_EQ(analysis_prompt(qwen, ""),
            "<|im_start|>system\nBe brief.<|im_end|>\n" + model::render_prompt_text(model::PromptFormat::kQwen3, "Hi"));

  const auto message = [](const std::string& json) {
    try {
      analysis_prompt(parse_scenario(json, "s"), "");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message(R"({"system_prompt": "x", "user_prompt": "y", "prompt_format": "raw"})").find("one user message"),
            std::string::npos);
  EXPECT_NE(message(R"({"user_prompt": "y", "prompt_format": "llama"})").find("llama"), std::string::npos);
  EXPECT_NE(message(R"({"system_prompt": "x", "prompt_format": "qwen3"})").find("no user message"), std::string::npos);

  // A multi-turn scenario in a model's format: its turns (problem_messages)
  // through the chat template; the chat-mode providers get the same turns.
  const Problem history = parse_scenario(
      R"({"conversation_history": [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
                                   {"role": "assistant", "content": ""}, {"role": "assistant", "content": "A1"},
                                   {"role": "user", "content": "U2"}], "prompt_format": "deepseek_r1"})",
      "s");
  const std::vector<ChatMessage> turns = {{"system", "S"}, {"user", "U1"}, {"assistant", "A1"}, {"user", "U2"}};
  EXPECT_EQ(problem_messages(history), turns);
  EXPECT_EQ(analysis_prompt(history, ""), model::render_chat_prompt_text(model::PromptFormat::kDeepSeekR1, turns));
  Trace trace = base_trace_of(history, "", "I think. So yes.", BoxedAnswer());
  EXPECT_EQ(trace.prompt, analysis_prompt(history, ""));
  std::vector<ChatMessage> continued = turns;
  continued.push_back({"assistant", "I think. "});
  EXPECT_EQ(detail::chat_messages(trace, "I think. "), continued);
  trace.prompt.clear();  // a trace that only names its scenario gets the scenario's prompt
  EXPECT_EQ(detail::trace_prompt(trace, "", "test"), analysis_prompt(history, ""));
  EXPECT_THROW(scenario_outcome(parse_scenario(R"({"user_prompt": "y", "outcome": "nonsense:1"})", "s")), Error);
  EXPECT_THROW(parse_scenario(R"({"user_prompt": "y", "target": 5})", "s"), Error);
}

}  // namespace
}  // namespace anchors::rollout
