#pragma once
// Internal to src/torch/rollout: the heads an attention intervention method
// acts on (head_ablation.h, attention_steering.h) -- the `heads` option, or
// the trace's top-k receiver heads -- and every sentence's receiver score
// under them (receiver_heads.h, one forward pass over prompt + trace).
#include <map>
#include <string>
#include <vector>

#include "anchors/core/trace.h"
#include "anchors/core/value.h"
#include "anchors/methods/method.h"
#include "anchors/model/head_index.h"

namespace anchors::rollout::detail {

// heads ([] = the receiver heads), top_k, proximity_ignore, exclude_layer0 with defaults and docs.
ValueMap receiver_selection_options();
std::map<std::string, std::string> receiver_selection_option_docs();

struct ReceiverSelection {
  std::vector<model::HeadIndex> heads;  // sorted by (layer, head)
  std::vector<double> sentence_scores;  // [S]: mean vertical score under `heads`
};

// anchors::Error "<who>: ..." without context.model, for bad options, or
// given heads outside the model or repeated.
ReceiverSelection select_heads(const ValueMap& o, const Trace& trace, const Context& context, const std::string& who);

}  // namespace anchors::rollout::detail
