// anchors::anchors' register_builtins() (anchors/methods/builtins.h): this
// file is compiled with ANCHORS_WITH_WHITE_BOX_METHODS=1, so the definition
// below is anchors::with_white_box::register_builtins, the one every target
// linking anchors::anchors calls. The core's built-ins need nothing here:
// register_method creates the registry, which seeds them; "resampling" is
// replaced by its generating version (rollout/analyze.h).
#include "anchors/methods/builtins.h"

#include <memory>
#include <mutex>

#include "anchors/methods/registry.h"
#include "anchors/methods/white_box.h"
#include "anchors/rollout/analyze.h"
#include "anchors/rollout/attention_steering.h"
#include "anchors/rollout/head_ablation.h"
#include "anchors/rollout/off_policy.h"
#include "anchors/rollout/on_policy.h"
#include "anchors/rollout/resilience.h"

#if !defined(ANCHORS_WITH_WHITE_BOX_METHODS) || !ANCHORS_WITH_WHITE_BOX_METHODS
#error "anchors::anchors must be compiled with ANCHORS_WITH_WHITE_BOX_METHODS=1 (see builtins.h)"
#endif

namespace anchors {
inline namespace with_white_box {

void register_builtins() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Replaces the core's scoring-only "resampling" with the one that also generates.
    register_method("resampling", [] { return std::make_unique<rollout::GeneratingResamplingMethod>(); });
    register_method("sentence_attention", [] { return std::make_unique<SentenceAttentionMethod>(); });
    register_method("receiver_heads", [] { return std::make_unique<ReceiverHeadsMethod>(); });
    register_method("attention_suppression", [] { return std::make_unique<AttentionSuppressionMethod>(); });
    register_method("attention_rhythm", [] { return std::make_unique<AttentionRhythmMethod>(); });
    register_method("head_influence", [] { return std::make_unique<HeadInfluenceMethod>(); });
    register_method("resilience", [] { return std::make_unique<rollout::ResilienceMethod>(); });
    register_method("off_policy", [] { return std::make_unique<rollout::OffPolicyMethod>(); });
    register_method("on_policy", [] { return std::make_unique<rollout::OnPolicyMethod>(); });
    register_method("head_ablation", [] { return std::make_unique<rollout::HeadAblationMethod>(); });
    register_method("attention_steering", [] { return std::make_unique<rollout::AttentionSteeringMethod>(); });
  });
}

}  // namespace with_white_box

void register_white_box_methods() { register_builtins(); }

}  // namespace anchors
