#include "anchors/model/token_trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include <string>

#include "anchors/core/error.h"
#include "anchors/core/segmentation.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/sentence_pooling.h"
#include "anchors/model/tokenizer.h"

namespace anchors::model {

void validate_token_trace(const TokenTrace& trace, const CausalLM& model, const char* what) {
  const ModelConfig& config = model.config();
  const auto T = static_cast<std::int64_t>(trace.ids.size());
  if (T == 0) throw Error(fmt::format("{}: empty token ids (an empty trace)", what));
  if (T > config.max_position_embeddings)
    throw Error(fmt::format("{}: {} tokens exceed the model's max_position_embeddings of {}", what, T,
                            config.max_position_embeddings));
  for (std::size_t i = 0; i < trace.ids.size(); ++i)
    if (trace.ids[i] < 0 || trace.ids[i] >= config.vocab_size)
      throw Error(fmt::format("{}: token id {} at position {} is outside the vocabulary [0, {})", what, trace.ids[i],
                              i, config.vocab_size));
  validate_sentence_spans(trace.sentences, T, what);
}

TokenTrace tokenize_trace(const Tokenizer& tokenizer, const Trace& trace, bool add_special_tokens) {
  if (trace.sentences.empty()) throw Error("tokenize_trace: the trace has no sentences");
  trace.validate();
  const std::string full = trace.prompt + trace.text;
  TokenTrace out;
  out.ids = tokenizer.encode(full, add_special_tokens).ids;
  const auto prefix = static_cast<std::int64_t>(add_special_tokens ? tokenizer.special_prefix_ids().size() : 0);
  std::vector<Sentence> sentences = trace.sentences;
  const std::string_view full_view(full);
  const std::string_view text = full_view.substr(trace.prompt.size());
  // Prefixes handed to the counter live inside `text`; count the whole input up to their end.
  const auto count = [&](std::string_view piece) {
    const auto end = static_cast<std::size_t>(piece.data() + piece.size() - full_view.data());
    return tokenizer.count_tokens(full_view.substr(0, end));
  };
  assign_token_spans(sentences, text, count, prefix);
  for (const Sentence& s : sentences) out.sentences.push_back(*s.tokens);
  return out;
}

std::vector<double> sentence_scores_to_tokens(const TokenTrace& trace, const std::vector<double>& scores, double fill) {
  if (scores.size() != trace.sentences.size())
    throw Error(fmt::format("sentence_scores_to_tokens: {} scores for {} sentences", scores.size(),
                            trace.sentences.size()));
  std::vector<double> out(trace.ids.size(), fill);
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const TokenSpan& span = trace.sentences[i];
    if (span.begin < 0 || span.end < span.begin || span.end > static_cast<std::int64_t>(out.size()))
      throw Error(fmt::format("sentence_scores_to_tokens: sentence {} spans tokens [{}, {}) outside the {} ids", i,
                              span.begin, span.end, out.size()));
    if (std::isnan(scores[i])) continue;
    std::fill(out.begin() + span.begin, out.begin() + span.end, scores[i]);
  }
  return out;
}

}  // namespace anchors::model
