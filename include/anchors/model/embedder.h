#pragma once
// Sentence embeddings from a BERT encoder run in LibTorch, computed the way
// sentence-transformers computes them: all-MiniLM-L6-v2 (the embedder of the
// counterfactual metrics) gives the same vectors as
// SentenceTransformer("all-MiniLM-L6-v2").encode(texts) (cosine > 0.9999).
//
// A model folder holds config.json (BertModel), model.safetensors (tensor
// names with or without a "bert." prefix), tokenizer.json (WordPiece) and the
// sentence-transformers files: modules.json (Transformer -> Pooling ->
// optional Normalize), 1_Pooling/config.json (mean pooling is the one
// supported mode) and sentence_bert_config.json (max_seq_length). A folder
// without modules.json is read as sentence-transformers reads a plain HF
// model: mean pooling, no normalisation. Everything else (other pooling
// modes, Dense layers, ...) is an anchors::Error naming the file and option.
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "anchors/core/embedder.h"
#include "anchors/model/config.h"

namespace anchors::model {

class Tokenizer;

class BertEmbedder : public anchors::Embedder {
 public:
  // Reads the folder and loads the weights as float32 on `device`.
  static std::shared_ptr<BertEmbedder> load(const std::string& dir, torch::Device device = torch::kCPU);
  ~BertEmbedder() override;
  BertEmbedder(const BertEmbedder&) = delete;
  BertEmbedder& operator=(const BertEmbedder&) = delete;

  // One embedding (dimension() floats) per text, in input order. Texts are
  // tokenised, truncated to max_seq_length() tokens (special tokens
  // included, as sentence-transformers does), and run in padded batches of
  // batch_size() texts of similar length.
  std::vector<std::vector<float>> embed(const std::vector<std::string>& texts) override;
  // The same as a [texts.size(), dimension()] float32 tensor on device().
  torch::Tensor embed_tensor(const std::vector<std::string>& texts);
  // The ids the encoder sees for `text`: [CLS] ... [SEP], truncated.
  std::vector<std::int64_t> token_ids(const std::string& text) const;
  // "BertEmbedder(<folder>)".
  std::string name() const override;

  const ModelConfig& config() const;
  const Tokenizer& tokenizer() const;
  torch::Device device() const;
  std::int64_t dimension() const;       // hidden_size: 384 for all-MiniLM-L6-v2
  std::int64_t max_seq_length() const;  // 256 for all-MiniLM-L6-v2
  bool normalizes() const;              // a Normalize module follows the pooling
  std::size_t batch_size() const;
  void set_batch_size(std::size_t batch_size);  // default 32; Error for 0

 private:
  struct State;
  explicit BertEmbedder(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace anchors::model
