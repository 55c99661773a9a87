#pragma once
// What every white-box method reads: the model's input ids of prompt + trace
// and each sentence's token span [begin, end) in them.
#include <cstdint>
#include <vector>

#include "anchors/core/span.h"
#include "anchors/core/trace.h"

namespace anchors::model {

class CausalLM;
class Tokenizer;

struct TokenTrace {
  std::vector<std::int64_t> ids;       // input ids, positions 0..T-1
  std::vector<TokenSpan> sentences;    // one per analysed sentence, token positions in ids
};

// anchors::Error (message prefixed with `what`) for empty ids, more ids than
// the model's max_position_embeddings, ids outside [0, vocab_size), no
// sentences, or sentence spans that are empty, out of order, overlapping or past
// the end of ids.
void validate_token_trace(const TokenTrace& trace, const CausalLM& model, const char* what);

// ids = tokenizer.encode(trace.prompt + trace.text, add_special_tokens) and each
// sentence's span by prefix tokenisation (docs/design.md §3 "Segmentation"): its
// char span in trace.text shifted by the prompt, begin = #ids of the text before
// it (specials included). anchors::Error for a trace with no sentences or an
// invalid trace (Trace::validate).
TokenTrace tokenize_trace(const Tokenizer& tokenizer, const Trace& trace, bool add_special_tokens = true);

// Per token of trace.ids, the score of the sentence whose token span holds it
// (scores[i] for sentences[i]), and `fill` for tokens in no sentence (the
// prompt, whitespace between sentences) or whose sentence's score is NaN: the
// per-token form of any per-sentence attribution, e.g. RL credit weights
// 1 + λ·importance (docs/attention-rhythm.md "Credit strategies"). O(T).
// anchors::Error when scores.size() != sentences.size() or a span lies
// outside ids.
std::vector<double> sentence_scores_to_tokens(const TokenTrace& trace, const std::vector<double>& scores, double fill);

}  // namespace anchors::model
