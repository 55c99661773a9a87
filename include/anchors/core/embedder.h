#pragma once
// Sentence embeddings and similarity for the counterfactual metrics.
// A real MiniLM embedder (anchors::model) implements Embedder; until one is
// loaded, metrics accept precomputed similarities through SentenceSimilarity.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace anchors {

class Embedder {
 public:
  virtual ~Embedder() = default;
  // One embedding per input text; all of the same dimension.
  virtual std::vector<std::vector<float>> embed(const std::vector<std::string>& texts) = 0;
  virtual std::string name() const = 0;
};

// Cosine similarity; 0 when either vector has zero norm. Error on size mismatch.
double cosine_similarity(const std::vector<float>& a, const std::vector<float>& b);

// Similarity between two sentences, in [-1, 1].
class SentenceSimilarity {
 public:
  virtual ~SentenceSimilarity() = default;
  // Batch form: result[k] = similarity(pairs[k].first, pairs[k].second).
  virtual std::vector<double> similarities(
      const std::vector<std::pair<std::string, std::string>>& pairs) = 0;
  double similarity(const std::string& a, const std::string& b) {
    return similarities({{a, b}}).front();
  }
};

// Cosine similarity of an Embedder's embeddings, each distinct text embedded once.
class EmbeddingSimilarity : public SentenceSimilarity {
 public:
  explicit EmbeddingSimilarity(std::shared_ptr<Embedder> embedder, std::size_t batch_size = 64);
  std::vector<double> similarities(
      const std::vector<std::pair<std::string, std::string>>& pairs) override;

 private:
  const std::vector<float>& embedding(const std::string& text);
  void embed_missing(const std::vector<std::string>& texts);
  std::shared_ptr<Embedder> embedder_;
  std::size_t batch_size_;
  std::map<std::string, std::vector<float>> cache_;
};

// Precomputed similarities looked up by (a, b) (symmetric). A missing pair is
// an anchors::Error naming it, unless a fallback function is given.
class TableSimilarity : public SentenceSimilarity {
 public:
  TableSimilarity() = default;
  explicit TableSimilarity(std::function<double(const std::string&, const std::string&)> fallback)
      : fallback_(std::move(fallback)) {}
  // Reads a JSON list of [sentence_a, sentence_b, cosine] triples (the
  // `anchors metrics --similarities` file). Errors name the file and the
  // entry: unreadable or malformed JSON, an entry that is no such triple.
  static std::shared_ptr<TableSimilarity> read_file(const std::string& path);
  void set(const std::string& a, const std::string& b, double value);
  std::vector<double> similarities(
      const std::vector<std::pair<std::string, std::string>>& pairs) override;

 private:
  std::map<std::pair<std::string, std::string>, double> table_;
  std::function<double(const std::string&, const std::string&)> fallback_;
};

}  // namespace anchors
