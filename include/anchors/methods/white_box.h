#pragma once
// The white-box attribution methods (docs/design.md §3): they read one forward pass
// (or a few) of the model over prompt + trace instead of rollouts.
//
//   "sentence_attention"     per layer and head S×S block means, averaged (receiver_heads' raw material)
//   "receiver_heads"         vertical scores, head kurtosis, top-k receiver heads, sentence receiver scores
//   "attention_suppression"  the S×S log-KL matrix of suppressing each sentence's keys
//   "attention_rhythm"       WAAD / FAI per token, preplan and anchor tokens, γ credit weights
//   "head_influence"         per head, the loss increase over the trace when the head is ablated
//
// They live in anchors::anchors (LibTorch). anchors::methods() lists only the
// core methods until anchors::register_builtins() (methods/builtins.h) has
// run: the CLI and the Python module call it at start-up; a C++ program calls
// it once itself (a static library cannot register on its own).
//
// Input: context.model (required) and the token ids of prompt + trace with each
// sentence's token span -- context.token_trace when given, otherwise the trace
// tokenised with the model's tokenizer (white_box_input).
#include <memory>
#include <string>

#include "anchors/methods/method.h"
#include "anchors/model/attention_rhythm.h"
#include "anchors/model/token_trace.h"

namespace anchors {

// Deprecated alias of register_builtins(), which registers these four methods
// and every other built-in (idempotent, thread-safe).
[[deprecated("use anchors::register_builtins() from anchors/methods/builtins.h")]]
void register_white_box_methods();

// The token input of a white-box method: context.token_trace when set (checked
// against the trace's sentence count), else tokenize_trace(model tokenizer, trace).
// anchors::Error when there is no model, the model has no tokenizer and no
// token_trace was given, or the input is invalid (validate_token_trace).
model::TokenTrace white_box_input(const Trace& trace, const Context& context, const char* method);

class SentenceAttentionMethod : public AttributionMethod {
 public:
  std::string name() const override { return "sentence_attention"; }
  std::string description() const override;
  // layers ([] = every layer, else e.g. [0, 3, 5]), proximity_ignore.
  ValueMap default_options() const override;
  std::map<std::string, std::string> option_docs() const override;
  std::vector<std::string> headline_scores() const override { return {"attention_received"}; }
  MethodNeeds needs() const override { return {/*model=*/true}; }
  // matrices: "sentence_attention" (S×S mean over the layers and heads of the block means);
  // scores: "attention_received" (vertical score of that mean matrix).
  Attribution run(const Trace& trace, const Context& context) const override;
};

class ReceiverHeadsMethod : public AttributionMethod {
 public:
  std::string name() const override { return "receiver_heads"; }
  std::string description() const override;
  // top_k, proximity_ignore, exclude_layer0, heads ([] = top-k by kurtosis, else
  // (layer, head) pairs written flat: [2, 3, 5, 0]).
  ValueMap default_options() const override;
  std::map<std::string, std::string> option_docs() const override;
  std::vector<std::string> headline_scores() const override { return {"receiver_score"}; }
  MethodNeeds needs() const override { return {/*model=*/true}; }
  // scores: "receiver_score"; matrices: "head_kurtosis" (L×H), "receiver_vertical"
  // (one row per receiver head, S columns); metadata: "receiver_heads" ("l:h,...").
  Attribution run(const Trace& trace, const Context& context) const override;
};

class AttentionSuppressionMethod : public AttributionMethod {
 public:
  std::string name() const override { return "attention_suppression"; }
  std::string description() const override;
  // temperature, top_p, max_kept, batch_lanes, reuse_prefix.
  ValueMap default_options() const override;
  std::map<std::string, std::string> option_docs() const override;
  std::vector<std::string> headline_scores() const override { return {"suppression_effect"}; }
  MethodNeeds needs() const override { return {/*model=*/true}; }
  // matrices: "suppression_raw" (S[j,i], every entry), "suppression" (NaN for j <= i,
  // rows centred); scores: "suppression_effect" (mean over j > i of the raw
  // matrix: how much suppressing i moves every later sentence's predictions),
  // "suppression_effect_centred" (the same over the reported matrix).
  Attribution run(const Trace& trace, const Context& context) const override;
};

class AttentionRhythmMethod : public AttributionMethod {
 public:
  std::string name() const override { return "attention_rhythm"; }
  std::string description() const override;
  // waad_window, fai_near, fai_far, local_fraction, global_fraction, layers, top_fraction, gamma, credit,
  // coupled_k, coupled_alpha, tau_waad, tau_delta.
  ValueMap default_options() const override;
  // The model::AttentionRhythmOptions of `given` (resolved against
  // default_options(); anchors::Error for unknown names or wrong types);
  // response_begin is left at 0. ta.token_weights reads its options this way too.
  static model::AttentionRhythmOptions rhythm_options(const ValueMap& given);
  std::map<std::string, std::string> option_docs() const override;
  std::vector<std::string> headline_scores() const override { return {"fai"}; }
  MethodNeeds needs() const override { return {/*model=*/true}; }
  // scores (means over each sentence's tokens): "waad", "fai", "gamma",
  // "preplan_fraction", "anchor_fraction"; matrices: "head_span" (analysed layers × H),
  // "token_waad", "token_fai", "token_gamma" (1×T, the response tokens' per-token values,
  // T = every input token, prompt included); metadata: "layers", "local_heads", "global_heads".
  Attribution run(const Trace& trace, const Context& context) const override;
};

class HeadInfluenceMethod : public AttributionMethod {
 public:
  std::string name() const override { return "head_influence"; }
  std::string description() const override;
  // layers ([] = every layer), batch_lanes.
  ValueMap default_options() const override;
  std::map<std::string, std::string> option_docs() const override;
  MethodNeeds needs() const override { return {/*model=*/true}; }
  std::vector<std::string> headline_scores() const override { return {"mean_head_influence", "max_head_influence"}; }
  // head_influence.h over the trace's tokens (from its first sentence on).
  // scores: "mean_head_influence" / "max_head_influence" (per sentence, the
  // mean / largest over the measured heads of the loss increase over its
  // tokens). matrices: "head_influence" (L×H: mean loss increase in nats with the head
  // ablated), "head_influence_by_sentence" ((L·H)×S, row = layer·H + head:
  // the same over each sentence's tokens); metadata: "plain_loss" (mean nats
  // per token), "top_heads" (the ten most influential, "l:h,...").
  Attribution run(const Trace& trace, const Context& context) const override;
};

}  // namespace anchors
