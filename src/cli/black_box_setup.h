#pragma once
// Internal: what the commands that generate rollouts (`anchors analyze`,
// `anchors run` of a black-box method) build from the same flags, so each
// flag means one thing everywhere:
//   --model DIR            the checkpoint (its tokenizer makes the token-id prompts, also with --server)
//   --server URL           an OpenAI-compatible server instead of the local model
//   --server-model NAME    the request's model (default: the --model folder's name)
//   --device D, --dtype T  the local model's placement (default cuda/bfloat16 when available, else cpu/float32)
//   --embedder DIR         the all-MiniLM-L6-v2 folder (default $ANCHORS_MINILM_DIR)
//   --similarity judge:URL a chat model judges sentence similarity instead
//                          (ChatSimilarity; --similarity-model, --similarity-prompt)
//   --outcome SPEC         docs/outcomes.md; --judge-model, --judge-prompt, --judge-labels for judge:URL
// And SIGINT/SIGTERM as a cancel flag for RunControl.
#include <atomic>
#include <csignal>
#include <memory>
#include <set>
#include <string>

#include <torch/types.h>

#include "anchors/core/embedder.h"
#include "anchors/core/outcome.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/provider.h"
#include "cli_args.h"

namespace anchors::cli {

// The option names above (each takes a value).
const std::set<std::string>& black_box_option_names();

// float32 / bfloat16 / float16 (and fp32, bf16, fp16); UsageError otherwise.
torch::Dtype parse_dtype(const std::string& name);

// --outcome with the judge flags; null when none is given (the engines then
// take a scenario's own outcome, else \boxed{} answers: BoxedAnswer).
// UsageError for judge flags without judge:URL.
std::shared_ptr<const Outcome> outcome_from_args(const Args& args);

struct BlackBoxSetup {
  std::shared_ptr<rollout::RolloutProvider> provider;
  std::shared_ptr<const model::Tokenizer> tokenizer;
  std::shared_ptr<SentenceSimilarity> similarity;  // null unless asked for
  std::shared_ptr<const Outcome> outcome;          // null: not given (see outcome_from_args)
  std::int64_t max_positions = 0;                   // the checkpoint's max_position_embeddings
  std::shared_ptr<model::CausalLM> model;           // the local model behind the provider; null with --server
};

// Reads the flags above (--model required). The embedder is loaded first when
// `similarity` is true, so a missing one fails before the model loads.
// anchors::Error naming the folder or flag for anything missing.
BlackBoxSetup black_box_setup(const Args& args, const std::string& who, bool similarity);

// SIGINT/SIGTERM set cancel_flag() while an instance lives (the run stops at
// its next check and stays resumable); the old handlers come back afterwards.
class CancelSignals {
 public:
  CancelSignals();
  ~CancelSignals();
  CancelSignals(const CancelSignals&) = delete;
  CancelSignals& operator=(const CancelSignals&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};
const std::atomic<bool>* cancel_flag();

}  // namespace anchors::cli
