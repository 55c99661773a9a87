#pragma once
// Receiver heads (docs/design.md §3 "Receiver heads"; docs/receiver-heads.md): the
// attention heads whose attention concentrates on a few "broadcasting"
// sentences, and every sentence's score under them.
//
// Per trace, one forward pass (sentence_attention) gives each layer and head's
// S×S block means M; v = vertical_scores(M, proximity_ignore) is how much later
// sentences attend to each sentence; a head's kurtosis is fisher_kurtosis(v),
// averaged over the traces. The receiver heads are the top_k heads by that mean
// kurtosis (layer 0 excluded), or the heads the caller names; a sentence's
// receiver score is the mean of v over the receiver heads.
//
//   anchors::model::ReceiverHeadsOptions opts;   // top 20, proximity 4
//   auto result = anchors::model::receiver_heads(*model, {token_trace}, opts);
//   result.sentence_scores[0];                    // one score per sentence of the trace
#include <cstddef>
#include <functional>
#include <vector>

#include "anchors/core/run_control.h"
#include "anchors/core/matrix.h"
#include "anchors/core/receiver_statistics.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/head_index.h"
#include "anchors/model/token_trace.h"

namespace anchors::model {

struct ReceiverHeadsOptions {
  std::size_t top_k = 20;            // receiver heads selected by kurtosis (>= 1, checked even with `heads`)
  std::size_t proximity_ignore = 4;  // v[j] averages rows i >= j + proximity_ignore
  bool exclude_layer0 = true;        // layer 0 is never selected by kurtosis
  // User-given receiver heads; when non-empty, used instead of the top-k
  // selection (layer 0 allowed; no duplicates).
  std::vector<HeadIndex> heads;
};

struct ReceiverHeadsResult {
  Matrix kurtosis;                                    // [L x H]: per-trace kurtosis, mean over traces (NaN skipped)
  std::vector<ReceiverHead> heads;                    // receiver heads used (top-k or user-given), kurtosis filled
  std::vector<std::vector<double>> sentence_scores;   // per trace [S]: mean of v over the receiver heads (NaN skipped)
  std::vector<Matrix> vertical;                       // per trace [(L*H) x S]: v of every head, row = layer*H + head
};

// One forward pass per trace (batch 1, positions 0..T-1); control: progress
// (traces done, traces, "traces") after each trace, cancellation after each layer. Memory beyond a forward pass: the block means of one trace
// (L·H·S² floats) and the results (L·H·S doubles per trace).
// anchors::Error for no traces, top_k == 0, user heads outside the model's
// layers / query heads or repeated, an invalid trace (validate_token_trace:
// empty ids, ids outside the vocabulary, too many tokens, bad sentence spans),
// or -- top-k selection only -- no eligible head with a finite kurtosis (e.g.
// every trace has fewer than proximity_ignore + 2 sentences), or cancellation.
ReceiverHeadsResult receiver_heads(const CausalLM& model, const std::vector<TokenTrace>& traces,
                                   const ReceiverHeadsOptions& options = {}, const RunControl& control = {});

}  // namespace anchors::model
