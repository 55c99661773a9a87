#pragma once
// The interface every attribution method implements, and the context it runs
// in. A method turns one Trace into one Attribution; the Context carries what
// methods need and nothing more.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "anchors/core/attribution.h"
#include "anchors/core/run_control.h"
#include "anchors/core/trace.h"
#include "anchors/core/value.h"

namespace anchors {

class SentenceSimilarity;
class Outcome;
struct ProblemRollouts;
namespace model {
class CausalLM;     // white-box methods (anchors::anchors)
class Tokenizer;    // anchors/model/tokenizer.h
struct TokenTrace;  // anchors/model/token_trace.h
}
namespace rollout {
class RolloutProvider;  // anchors/rollout/provider.h
}

struct Context {
  // White-box methods: the model that produced (or reads) the trace.
  std::shared_ptr<model::CausalLM> model;
  // White-box methods: the input ids of prompt + trace and every sentence's
  // token span; when null, the trace is tokenised with the model's tokenizer.
  std::shared_ptr<const model::TokenTrace> token_trace;
  // Black-box methods: rollouts already on disk (read_problem_rollouts) ...
  std::shared_ptr<const ProblemRollouts> rollouts;
  // ... or the means to generate them: who continues a prefix, the tokenizer
  // that turns prompt + prefix into the ids it is given (null: the model's,
  // when `model` is set), and the folder of the resumable rollout store (the
  // math-rollouts layout goes under it; a re-run with the same folder resumes).
  // The trace names its problem in metadata "problem" (and "gt_answer"), its
  // prompt in Trace::prompt.
  std::shared_ptr<rollout::RolloutProvider> provider;
  std::shared_ptr<const model::Tokenizer> tokenizer;
  std::string output_dir;
  // The sentence similarity used by the counterfactual metrics.
  std::shared_ptr<SentenceSimilarity> similarity;
  // Black-box methods: what a rollout ended in (anchors/core/outcome.h). Null:
  // the labels as recorded; otherwise every rollout is re-read with it first
  // (relabel_rollouts: re-scoring needs no new rollouts).
  std::shared_ptr<const Outcome> outcome;
  // Method options by name (see each method's options()); unknown names are an error.
  ValueMap options;
  // Progress (done, total, unit) and cancellation (core/run_control.h): a
  // cancelled method throws anchors::Error("<method>: cancelled") at its next
  // check point.
  RunControl control;
};

// What a method's run() needs in its Context (tools check it, list it, and
// decide which inputs to ask for).
struct MethodNeeds {
  bool model = false;       // Context::model (the white-box methods)
  bool rollouts = false;    // Context::rollouts, or Context::provider (+ tokenizer, output_dir) to make them
  bool similarity = false;  // Context::similarity
};

class AttributionMethod {
 public:
  virtual ~AttributionMethod() = default;
  virtual std::string name() const = 0;
  virtual std::string description() const = 0;
  // The options this method understands, with their defaults.
  virtual ValueMap default_options() const = 0;
  // One line per option of default_options(): what it means (the CLI's help
  // and Python's docs print them; registry_test checks that none is missing).
  virtual std::map<std::string, std::string> option_docs() const { return {}; }
  // The per-sentence series a summary shows and ranks by, best first: an
  // attribution's headline is the first of these it has (choose_score in
  // registry.h). Empty: the method has no per-sentence headline.
  virtual std::vector<std::string> headline_scores() const { return {}; }
  virtual MethodNeeds needs() const { return {}; }
  virtual Attribution run(const Trace& trace, const Context& context) const = 0;
};

}  // namespace anchors
