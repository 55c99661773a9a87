#include "anchors/core/embedder.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "json_fields.h"

namespace anchors {
namespace {

// Long sentences make unreadable error messages; show the start only.
std::string preview(const std::string& text) {
  constexpr std::size_t kMax = 60;
  if (text.size() <= kMax) return text;
  std::size_t cut = kMax;
  // Do not cut inside a UTF-8 sequence.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

}  // namespace

double cosine_similarity(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) {
    throw Error(fmt::format("cosine_similarity: vectors of different sizes ({} and {})", a.size(),
                            b.size()));
  }
  // Accumulate in double: embeddings are float, but 384-dim float sums lose
  // digits that matter near the similarity threshold.
  double dot = 0.0, norm_a = 0.0, norm_b = 0.0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    dot += static_cast<double>(a[k]) * b[k];
    norm_a += static_cast<double>(a[k]) * a[k];
    norm_b += static_cast<double>(b[k]) * b[k];
  }
  if (norm_a == 0.0 || norm_b == 0.0) return 0.0;
  return dot / (std::sqrt(norm_a) * std::sqrt(norm_b));
}

// ---------------------------------------------------------------------------
// EmbeddingSimilarity
// ---------------------------------------------------------------------------

EmbeddingSimilarity::EmbeddingSimilarity(std::shared_ptr<Embedder> embedder, std::size_t batch_size)
    : embedder_(std::move(embedder)), batch_size_(batch_size == 0 ? 1 : batch_size) {
  if (!embedder_) throw Error("EmbeddingSimilarity: embedder is null");
}

void EmbeddingSimilarity::embed_missing(const std::vector<std::string>& texts) {
  // Distinct texts not yet cached, in first-seen order (deterministic batches).
  std::vector<std::string> missing;
  std::set<std::string> seen;
  for (const auto& text : texts) {
    if (cache_.count(text) == 0 && seen.insert(text).second) missing.push_back(text);
  }
  for (std::size_t start = 0; start < missing.size(); start += batch_size_) {
    const std::size_t end = std::min(missing.size(), start + batch_size_);
    std::vector<std::string> batch(missing.begin() + static_cast<std::ptrdiff_t>(start),
                                   missing.begin() + static_cast<std::ptrdiff_t>(end));
    std::vector<std::vector<float>> vectors = embedder_->embed(batch);
    if (vectors.size() != batch.size()) {
      throw Error(fmt::format("embedder '{}' returned {} embeddings for {} texts", embedder_->name(),
                              vectors.size(), batch.size()));
    }
    for (std::size_t k = 0; k < batch.size(); ++k) {
      if (!cache_.empty() && vectors[k].size() != cache_.begin()->second.size()) {
        throw Error(fmt::format("embedder '{}' returned an embedding of dimension {} (expected {})",
                                embedder_->name(), vectors[k].size(),
                                cache_.begin()->second.size()));
      }
      cache_.emplace(std::move(batch[k]), std::move(vectors[k]));
    }
  }
}

const std::vector<float>& EmbeddingSimilarity::embedding(const std::string& text) {
  auto it = cache_.find(text);
  if (it == cache_.end()) {
    embed_missing({text});
    it = cache_.find(text);
  }
  return it->second;
}

std::vector<double> EmbeddingSimilarity::similarities(
    const std::vector<std::pair<std::string, std::string>>& pairs) {
  // Embed every missing text of the request in batches first: one embedder
  // call per batch instead of one per pair.
  std::vector<std::string> texts;
  texts.reserve(pairs.size() * 2);
  for (const auto& [a, b] : pairs) {
    texts.push_back(a);
    texts.push_back(b);
  }
  embed_missing(texts);
  std::vector<double> result;
  result.reserve(pairs.size());
  for (const auto& [a, b] : pairs) result.push_back(cosine_similarity(embedding(a), embedding(b)));
  return result;
}

// ---------------------------------------------------------------------------
// TableSimilarity
// ---------------------------------------------------------------------------

namespace {
// Symmetric lookups: store each pair under its ordered key.
std::pair<std::string, std::string> ordered_key(const std::string& a, const std::string& b) {
  return a <= b ? std::make_pair(a, b) : std::make_pair(b, a);
}
}  // namespace

std::shared_ptr<TableSimilarity> TableSimilarity::read_file(const std::string& path) {
  const nlohmann::json doc = json_fields::read_file(path, kDataFileLimit);
  if (!doc.is_array()) throw Error(fmt::format("{}: expected a JSON list of [sentence_a, sentence_b, cosine]", path));
  auto table = std::make_shared<TableSimilarity>();
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& t = doc[i];
    if (!t.is_array() || t.size() != 3 || !t[0].is_string() || !t[1].is_string() || !t[2].is_number())
      throw Error(fmt::format("{}: entry {} is not [sentence_a, sentence_b, cosine]", path, i));
    table->set(t[0].get<std::string>(), t[1].get<std::string>(), t[2].get<double>());
  }
  return table;
}

void TableSimilarity::set(const std::string& a, const std::string& b, double value) {
  table_[ordered_key(a, b)] = value;
}

std::vector<double> TableSimilarity::similarities(
    const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::vector<double> result;
  result.reserve(pairs.size());
  for (const auto& [a, b] : pairs) {
    const auto it = table_.find(ordered_key(a, b));
    if (it != table_.end()) {
      result.push_back(it->second);
    } else if (fallback_) {
      result.push_back(fallback_(a, b));
    } else {
      throw Error(fmt::format("TableSimilarity: no similarity for the pair (\"{}\", \"{}\")",
                              preview(a), preview(b)));
    }
  }
  return result;
}

}  // namespace anchors
