#pragma once
// anchors::register_builtins(): puts every built-in attribution method of the
// libraries a program links into the registry (registry.h). Call it once at
// start-up, before anchors::methods() or anchors::make_method(); the CLI and
// the Python module do. Idempotent and thread-safe: the methods are
// registered on the first call only, so register your own methods after it
// (register_method's rule: the last registration of a name wins, and a first
// call would replace a method of yours registered under a built-in's name).
//
//   linking anchors::core     "resampling" (the registry also seeds it on first
//                             use, so a core-only program need not call this)
//   linking anchors::anchors  "resampling" that also generates rollouts
//                             (rollout::GeneratingResamplingMethod), plus "sentence_attention",
//                             "receiver_heads", "attention_suppression",
//                             "attention_rhythm" (methods/white_box.h), and the
//                             Thought Branches methods "resilience",
//                             "off_policy", "on_policy" (rollout/resilience.h,
//                             off_policy.h, on_policy.h)
//
// Why a call and not self-registration: objects of a static library that
// nothing references are dropped by the linker, and static registrars with them.
//
// How one name gives each library its own set without two definitions of one
// symbol: anchors::anchors compiles itself and every target that links it with
// ANCHORS_WITH_WHITE_BOX_METHODS=1 (a PUBLIC definition, exported with the
// installed package), which declares the function in the inline namespace
// anchors::with_white_box. Such a caller links the definition in anchors::anchors;
// a core-only caller links anchors::register_builtins() in anchors::core. Both
// are spelled anchors::register_builtins() in source. A translation unit built
// without the definition but linked into a LibTorch program (hand-written
// compiler flags) gets the core set only.
//
// Costs: the first call builds the registry (a handful of factories); later
// calls take a lock-free std::call_once check. No errors.

namespace anchors {

#if defined(ANCHORS_WITH_WHITE_BOX_METHODS) && ANCHORS_WITH_WHITE_BOX_METHODS
inline namespace with_white_box {
void register_builtins();
}  // namespace with_white_box
#else
void register_builtins();
#endif

}  // namespace anchors
