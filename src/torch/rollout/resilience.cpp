#include "anchors/rollout/resilience.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/hash.h"
#include "anchors/core/segmentation.h"
#include "anchors/methods/registry.h"
#include "anchors/model/causal_lm.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/analyze.h"
#include "anchors/rollout/intervention.h"
#include "anchors/rollout/rollout_store.h"
#include "json_fields.h"
#include "edit_methods.h"
#include "rollout_batches.h"

namespace anchors::rollout {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One round of a chain: the continuation and what was found in it.
struct Round {
  std::string continuation, finish_reason;
  std::optional<std::size_t> best;  // the continuation's sentence most similar to o (none: no sentence)
  double similarity = kNaN;         // its similarity
  bool found = false;               // similarity >= threshold
  std::size_t cut = 0;              // found: bytes of the continuation kept in the next round's prefix
  // The outcome's reading of the continuation: only for a chain's last round.
  std::optional<std::string> label;
  std::optional<bool> is_correct;
  std::string outcome_raw;
};

enum class ChainState { kRunning, kAbandoned, kPersisted };

const char* state_name(ChainState s) {
  switch (s) {
    case ChainState::kRunning: return "running";
    case ChainState::kAbandoned: return "abandoned";
    case ChainState::kPersisted: return "persisted";
  }
  return "?";
}

struct Chain {
  std::size_t index = 0;
  std::string path;
  std::vector<Round> rounds;
  ChainState state = ChainState::kRunning;

  std::int64_t returns() const {
    return std::count_if(rounds.begin(), rounds.end(), [](const Round& r) { return r.found; });
  }
};

json optional_json(const std::optional<std::string>& v) { return v ? json(*v) : json(nullptr); }

json chain_json(std::size_t sentence, const std::string& original, const Chain& c) {
  json rounds = json::array();
  for (const Round& r : c.rounds)
    rounds.push_back({{"continuation", r.continuation},
                      {"finish_reason", r.finish_reason},
                      {"best_sentence", r.best ? json(*r.best) : json(nullptr)},
                      {"similarity", std::isfinite(r.similarity) ? json(r.similarity) : json(nullptr)},
                      {"found", r.found},
                      {"cut", r.cut},
                      {"label", optional_json(r.label)},
                      {"is_correct", r.is_correct ? json(*r.is_correct) : json(nullptr)},
                      {"outcome_raw", r.outcome_raw}});
  return {{"sentence", sentence}, {"chain", c.index}, {"original", original}, {"state", state_name(c.state)},
          {"rounds", rounds}};
}

// A chain file written by an earlier run of this sentence (its lock and
// manifest already checked by the store): anchors::Error when it belongs to
// another sentence text or is not a chain file.
Chain read_chain(const std::string& path, std::size_t sentence, std::size_t index, const std::string& original) {
  const json doc = json_fields::read_file(path, kDataFileLimit);
  Chain c;
  c.index = index;
  c.path = path;
  try {
    if (doc.at("sentence").get<std::size_t>() != sentence || doc.at("chain").get<std::size_t>() != index)
      throw Error(fmt::format("{}: holds chain {} of sentence {}, not chain {} of sentence {}", path,
                              doc.at("chain").dump(), doc.at("sentence").dump(), index, sentence));
    if (doc.at("original").get<std::string>() != original)
      throw Error(fmt::format("{}: was made for another text of sentence {} (another segmentation of the trace); "
                              "use another output folder",
                              path, sentence));
    const std::string state = doc.at("state").get<std::string>();
    if (state == "running") c.state = ChainState::kRunning;
    else if (state == "abandoned") c.state = ChainState::kAbandoned;
    else if (state == "persisted") c.state = ChainState::kPersisted;
    else throw Error(fmt::format("{}: unknown chain state \"{}\"", path, state));
    for (const json& r : doc.at("rounds")) {
      Round round;
      round.continuation = r.at("continuation").get<std::string>();
      round.finish_reason = r.at("finish_reason").get<std::string>();
      if (!r.at("best_sentence").is_null()) round.best = r.at("best_sentence").get<std::size_t>();
      if (!r.at("similarity").is_null()) round.similarity = r.at("similarity").get<double>();
      round.found = r.at("found").get<bool>();
      round.cut = r.at("cut").get<std::size_t>();
      if (round.cut > round.continuation.size())
        throw Error(fmt::format("{}: a round's cut ({}) lies past its continuation", path, round.cut));
      if (!r.at("label").is_null()) round.label = r.at("label").get<std::string>();
      if (!r.at("is_correct").is_null()) round.is_correct = r.at("is_correct").get<bool>();
      round.outcome_raw = r.at("outcome_raw").get<std::string>();
      c.rounds.push_back(std::move(round));
    }
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not a resilience chain file ({})", path, e.what()));
  }
  return c;
}

void write_chain(const Chain& c, std::size_t sentence, const std::string& original) {
  write_file_atomic(c.path, chain_json(sentence, original, c).dump(1));
}

// The solution prefix the chain's next round continues: the text before the
// sentence, then every earlier round's continuation up to its cut.
std::string chain_prefix(const std::string& before, const Chain& c) {
  std::string prefix = before;
  for (const Round& r : c.rounds) prefix += r.continuation.substr(0, r.cut);
  return prefix;
}

// Outcome counts of a set of labels.
struct Tally {
  std::int64_t labelled = 0, matching = 0;
  AnswerDistribution distribution;
  std::map<std::string, std::int64_t> labels;

  void add(const std::string& key, bool matches) {
    ++labelled;
    if (matches) ++matching;
    ++labels[key];
    distribution.add(key, 1, false);
  }
  double rate(bool has_target) const {
    return has_target && labelled > 0 ? static_cast<double>(matching) / static_cast<double>(labelled) : kNaN;
  }
};

void check_options(const ResilienceOptions& o) {
  if (o.max_iterations < 1) throw Error(fmt::format("resilience: max_iterations must be >= 1, got {}", o.max_iterations));
  if (!std::isfinite(o.similarity_threshold))
    throw Error("resilience: similarity_threshold must be a finite number");
  if (!(o.kl_alpha >= 0) || !std::isfinite(o.kl_alpha))
    throw Error("resilience: kl_alpha must be a finite number >= 0");
  if (o.max_positions < 0) throw Error("resilience: max_positions must be >= 0");
}

}  // namespace

ResilienceResult measure_resilience(RolloutProvider& provider, const model::Tokenizer& tokenizer, const Trace& trace,
                                    const std::string& given_prompt, const std::string& target,
                                    SentenceSimilarity& similarity, const std::string& out_dir,
                                    const ResilienceOptions& options) {
  if (out_dir.empty()) throw Error("resilience: empty output folder");
  check_options(options);
  const detail::SamplingSettings sampling = detail::sampling_settings(options);
  detail::check_sampling("resilience", sampling, options.num_rollouts, options.max_tokens);
  if (trace.sentences.empty()) throw Error("resilience: the trace has no sentences");
  trace.validate();
  const std::string prompt = detail::trace_prompt(trace, given_prompt, "resilience");
  const std::size_t num_sentences = trace.sentences.size();
  const std::vector<std::size_t> targets = detail::target_sentences(options.sentences, num_sentences, "resilience");
  const std::shared_ptr<const Outcome> outcome =
      options.outcome ? options.outcome : std::make_shared<const BoxedAnswer>();
  const bool has_target = !target.empty();
  const auto n = static_cast<std::size_t>(options.num_rollouts);
  const std::size_t K = static_cast<std::size_t>(options.max_iterations);

  // One writer, this run's settings (rollout_store.h); the chains' settings
  // are part of the manifest because they change the chain files.
  RolloutStore store(out_dir);
  RunManifest manifest = detail::run_manifest(prompt, trace.text, options, *outcome);
  manifest.options["max_iterations"] = options.max_iterations;
  manifest.options["similarity_threshold"] = options.similarity_threshold;
  store.begin_writing(manifest);
  store.remove_temp_files();

  // The chains on disk, per target.
  struct Target {
    std::size_t sentence;
    std::string original, before;
    std::uint64_t chain_seed;
    std::vector<Chain> chains;
  };
  std::vector<Target> work;
  for (std::size_t i : targets) {
    Target t{i, trace.sentences[i].text, intervened_prefix(trace, {InterventionKind::kResample, i, ""}),
             splitmix64(options.seed ^ fnv1a64(fmt::format("resilience_{}", i))), {}};
    const fs::path dir = fs::path(out_dir) / "resilience" / fmt::format("sentence_{}", i);
    std::error_code ec;
    if (fs::is_directory(dir, ec))  // temp files of a killed writer
      for (const auto& entry : fs::directory_iterator(dir, ec))
        if (entry.path().filename().string().find(".tmp.") != std::string::npos) fs::remove(entry.path(), ec);
    for (std::size_t r = 0; r < n; ++r) {
      const std::string path = (dir / fmt::format("chain_{}.json", r)).string();
      if (file_exists(path)) {
        t.chains.push_back(read_chain(path, i, r, t.original));
      } else {
        Chain c;
        c.index = r;
        c.path = path;
        t.chains.push_back(std::move(c));
      }
    }
    work.push_back(std::move(t));
  }

  detail::RolloutCounts counts;
  const auto check_cancel = [&] { options.control.check("resilience"); };
  std::int64_t done = 0, total = 0;
  for (const Target& t : work) {
    total += options.num_rollouts;
    for (const Chain& c : t.chains) done += c.state != ChainState::kRunning;
    if (t.sentence + 1 < num_sentences) {
      total += options.num_rollouts;
      done += options.num_rollouts - static_cast<std::int64_t>(store.missing(t.sentence, false, n));
    }
  }
  const auto report = [&] {
    options.control.report(static_cast<std::size_t>(done), static_cast<std::size_t>(total), "rollouts");
  };
  report();

  // The kept rollouts: continued from right after the sentence.
  for (const Target& t : work) {
    if (t.sentence + 1 >= num_sentences) continue;
    if (store.missing(t.sentence, false, n) == 0) continue;
    detail::RolloutTask task;
    task.chunk = t.sentence;
    task.prefix = intervened_prefix(trace, {InterventionKind::kTruncate, t.sentence, ""});
    task.head = prompt + task.prefix;
    task.ids = tokenizer.encode(task.head, true).ids;
    task.messages = detail::chat_messages(trace, task.prefix);
    task.max_tokens = detail::capped_max_tokens(options.max_tokens, task.ids.size(), options.max_positions);
    task.no_room = fmt::format("the prefix through sentence {} has {} tokens, no room left in the model's {} positions",
                               t.sentence, task.ids.size(), options.max_positions);
    const std::uint64_t kept_seed = splitmix64(options.seed ^ fnv1a64(fmt::format("resilience_kept_{}", t.sentence)));
    std::int64_t counted = counts.generated;
    detail::generate_missing(
        provider, store, task, sampling, *outcome, target, options.num_rollouts,
        [&](std::int64_t b) { return splitmix64(kept_seed + static_cast<std::uint64_t>(b)); }, counts,
        check_cancel, [&](std::int64_t) {
          done += counts.generated - counted;
          counted = counts.generated;
          report();
        });
  }

  // The chains, round by round: every chain still running with t - 1 rounds
  // asks for its round t.
  const auto request_for = [&](const std::string& prefix, std::int64_t lanes, std::uint64_t seed,
                               std::string& no_room) {
    CompletionRequest request = detail::prefix_request(trace, prompt, prefix, tokenizer, sampling, lanes,
                                                       options.max_tokens, options.max_positions);
    request.seed = seed;
    if (request.max_tokens < 1)
      no_room = fmt::format("a chain's prefix has {} tokens, no room left in the model's {} positions",
                            request.prompt_ids.size(), options.max_positions);
    return request;
  };
  // Sends one request; its completions, or none after a failure (counted and
  // left for the next run). A provider that returns the wrong number of
  // completions is broken: retrying cannot help, so that is an error.
  const auto complete = [&](const CompletionRequest& request,
                            const std::string& no_room) -> std::optional<std::vector<Completion>> {
    check_cancel();
    std::vector<Completion> got;
    try {
      if (!no_room.empty()) throw Error(no_room);
      got = provider.complete(request);
    } catch (const Error& e) {
      if (counts.first_failure.empty()) counts.first_failure = e.what();
      counts.failed += request.n;
      return std::nullopt;
    }
    if (static_cast<std::int64_t>(got.size()) != request.n)
      throw Error(fmt::format("resilience: {} returned {} completions for n = {}", provider.name(), got.size(),
                              request.n));
    return got;
  };

  for (std::size_t round = 1; round <= K; ++round) {
    for (Target& t : work) {
      std::vector<std::pair<Chain*, Completion>> got;
      std::vector<Chain*> active;
      for (Chain& c : t.chains)
        if (c.state == ChainState::kRunning && c.rounds.size() == round - 1) active.push_back(&c);
      if (active.empty()) continue;
      if (round == 1) {
        // All first rounds continue the same prefix: lane r % batch of the
        // request of batch r / batch (lanes do not depend on n).
        std::map<std::size_t, std::vector<Chain*>> batches;
        for (Chain* c : active) batches[c->index / static_cast<std::size_t>(sampling.batch)].push_back(c);
        for (const auto& [b, chains] : batches) {
          const std::size_t first_lane = b * static_cast<std::size_t>(sampling.batch);
          std::string no_room;
          const CompletionRequest request =
              request_for(t.before, static_cast<std::int64_t>(chains.back()->index - first_lane + 1),
                          splitmix64(t.chain_seed + b), no_room);
          if (auto completions = complete(request, no_room)) {
            for (Chain* c : chains) got.emplace_back(c, (*completions)[c->index - first_lane]);
            counts.generated += static_cast<std::int64_t>(chains.size());
          }
        }
      } else {
        for (Chain* c : active) {
          std::string no_room;
          const CompletionRequest request =
              request_for(chain_prefix(t.before, *c), 1,
                          splitmix64(t.chain_seed + (static_cast<std::uint64_t>(round) << 32) + c->index),
                          no_room);
          if (auto completions = complete(request, no_room)) {
            got.emplace_back(c, completions->front());
            ++counts.generated;
          }
        }
      }
      if (got.empty()) continue;

      // Where did the content come back? One batched similarity call.
      std::vector<std::vector<Sentence>> split(got.size());
      std::vector<std::pair<std::string, std::string>> pairs;
      for (std::size_t k = 0; k < got.size(); ++k) {
        split[k] = split_sentences(got[k].second.text);
        for (const Sentence& s : split[k]) pairs.emplace_back(t.original, s.text);
      }
      const std::vector<double> sims = pairs.empty() ? std::vector<double>{} : similarity.similarities(pairs);
      if (sims.size() != pairs.size())
        throw Error(fmt::format("resilience: the similarity returned {} values for {} pairs", sims.size(), pairs.size()));
      std::size_t at = 0;
      for (std::size_t k = 0; k < got.size(); ++k) {
        Chain& c = *got[k].first;
        Round r;
        r.continuation = got[k].second.text;
        r.finish_reason = got[k].second.finish_reason;
        for (std::size_t j = 0; j < split[k].size(); ++j, ++at) {
          if (!std::isfinite(sims[at]))
            throw Error(fmt::format("resilience: the similarity of \"{}\" and \"{}\" is not a number",
                                    pairs[at].first, pairs[at].second));
          if (!r.best || sims[at] > r.similarity) {
            r.best = j;
            r.similarity = sims[at];
          }
        }
        r.found = r.best && r.similarity >= options.similarity_threshold;
        if (r.found) r.cut = split[k][*r.best].chars.begin;
        const bool last = !r.found || round == K;
        if (last) {
          Rollout labelled;
          detail::label_rollout(*outcome, r.continuation, target, labelled);
          if (labelled.has_answer()) r.label = labelled.answer;
          r.is_correct = labelled.is_correct;
          r.outcome_raw = labelled.outcome_raw;
          c.state = r.found ? ChainState::kPersisted : ChainState::kAbandoned;
          ++done;
        }
        c.rounds.push_back(std::move(r));
        write_chain(c, t.sentence, t.original);
      }
      report();
    }
  }
  if (counts.generated == 0 && counts.failed > 0)
    throw Error(fmt::format("resilience: every request to {} failed ({} samples); the first failure: {}",
                            provider.name(), counts.failed, counts.first_failure));

  // The figures, from the files (the chains as kept in memory are what was written).
  ResilienceResult result;
  result.out_dir = out_dir;
  result.outcome = outcome->name();
  result.generated = counts.generated;
  result.failed = counts.failed;
  Attribution& a = result.attribution;
  a.method = "resilience";
  const std::vector<std::string> series = {"resilience_persistence", "resilience_iterations", "resilience_returns",
                                           "counterfactual_plusplus_importance_kl"};
  for (const std::string& name : series) a.scores[name].assign(num_sentences, kNaN);
  if (has_target)
    for (const char* name : {"kept_rate", "abandoned_rate", "counterfactual_plusplus_importance"})
      a.scores[name].assign(num_sentences, kNaN);
  std::int64_t incomplete = 0;
  for (const Target& t : work) {
    SentenceResilience s;
    s.sentence = t.sentence;
    s.text = t.original;
    Tally abandoned, kept;
    std::int64_t rounds = 0, returns = 0;
    for (const Chain& c : t.chains) {
      if (c.state == ChainState::kRunning) {
        ++s.incomplete;
        continue;
      }
      ++s.chains;
      (c.state == ChainState::kPersisted ? s.persisted : s.abandoned) += 1;
      rounds += static_cast<std::int64_t>(c.rounds.size());
      returns += c.returns();
      if (c.state == ChainState::kPersisted && !options.compat) continue;
      const Round& last = c.rounds.back();
      if (last.label) abandoned.add(outcome->distribution_key(*last.label), last.is_correct.value_or(false));
    }
    incomplete += s.incomplete;
    if (t.sentence + 1 < num_sentences) {
      for (const Rollout& r : store.load_rollouts(t.sentence, false).rollouts)
        if (r.has_answer()) kept.add(outcome->distribution_key(r.answer), r.is_correct.value_or(false));
    }
    const double chains = static_cast<double>(s.chains);
    s.persistence = s.chains > 0 ? static_cast<double>(s.persisted) / chains : kNaN;
    s.iterations = s.chains > 0 ? static_cast<double>(rounds) / chains : kNaN;
    s.returns = s.chains > 0 ? static_cast<double>(returns) / chains : kNaN;
    s.abandoned_rate = abandoned.rate(has_target);
    s.kept_rate = kept.rate(has_target);
    s.cfpp = s.kept_rate - s.abandoned_rate;
    s.cfpp_kl = abandoned.labelled > 0 && kept.labelled > 0
                    ? kl_divergence(abandoned.distribution, kept.distribution, options.kl_alpha)
                    : kNaN;
    s.abandoned_labels = abandoned.labels;
    s.kept_labels = kept.labels;
    const std::size_t i = t.sentence;
    a.scores["resilience_persistence"][i] = s.persistence;
    a.scores["resilience_iterations"][i] = s.iterations;
    a.scores["resilience_returns"][i] = s.returns;
    a.scores["counterfactual_plusplus_importance_kl"][i] = s.cfpp_kl;
    if (has_target) {
      a.scores["kept_rate"][i] = s.kept_rate;
      a.scores["abandoned_rate"][i] = s.abandoned_rate;
      a.scores["counterfactual_plusplus_importance"][i] = s.cfpp;
    }
    result.sentences.push_back(std::move(s));
  }
  a.metadata["outcome"] = outcome->name();
  a.metadata["target"] = target;
  a.metadata["provider"] = provider.name();
  a.metadata["output_dir"] = out_dir;
  a.metadata["incomplete_chains"] = incomplete;
  return result;
}

// ---------------------------------------------------------------------------
// The registered method.

std::string ResilienceMethod::description() const {
  return "Thought Branches resilience: does the model regenerate a removed sentence's content, and the outcome once "
         "it is gone (counterfactual++)";
}

ValueMap ResilienceMethod::default_options() const {
  const ResilienceOptions d;
  return {{"sentences", IntList{}},
          {"num_rollouts", d.num_rollouts},
          {"max_iterations", d.max_iterations},
          {"similarity_threshold", d.similarity_threshold},
          {"kl_alpha", d.kl_alpha},
          {"compat", d.compat},
          {"target", std::string()},
          {"seed", std::int64_t{0}},
          {"temperature", d.temperature},
          {"top_p", d.top_p},
          {"min_p", d.min_p},
          {"repetition_penalty", d.repetition_penalty},
          {"max_tokens", d.max_tokens},
          {"max_positions", d.max_positions},
          {"batch", d.batch}};
}

std::map<std::string, std::string> ResilienceMethod::option_docs() const {
  return {{"sentences", "the target sentences (empty: every sentence)"},
          {"num_rollouts", "chains per target sentence, and rollouts that keep the sentence"},
          {"max_iterations", "rounds per chain at most: a chain still finding the content then has persisted"},
          {"similarity_threshold", "the content came back when a continuation's sentence is at least this similar"},
          {"kl_alpha", "additive smoothing of the KL form of counterfactual++"},
          {"compat", "abandoned_rate over every chain's last round, as the authors' code (fb_after)"},
          {"target", "the outcome label rates count (\"\": the trace's metadata gt_answer)"},
          {"seed", "request seeds derive from (seed, sentence, chain, round): re-runs resume exactly"},
          {"temperature", "sampling temperature"},
          {"top_p", "nucleus sampling mass, in (0, 1]"},
          {"min_p", "min-p sampling (0 = off)"},
          {"repetition_penalty", "repetition penalty (1 = off)"},
          {"max_tokens", "new tokens per request (capped by max_positions)"},
          {"max_positions", "the model's context length, prompt + completion (0 = no cap)"},
          {"batch", "samples per request (the kept rollouts and the chains' first rounds)"}};
}

std::vector<std::string> ResilienceMethod::headline_scores() const {
  return {"counterfactual_plusplus_importance", "counterfactual_plusplus_importance_kl", "resilience_persistence"};
}

ResilienceOptions resilience_options(const ValueMap& given) {
  const ValueMap o = resolve_options(ResilienceMethod(), given);
  ResilienceOptions r;
  r.sentences = std::get<IntList>(o.at("sentences"));
  r.num_rollouts = std::get<std::int64_t>(o.at("num_rollouts"));
  r.max_iterations = std::get<std::int64_t>(o.at("max_iterations"));
  r.similarity_threshold = std::get<double>(o.at("similarity_threshold"));
  r.kl_alpha = std::get<double>(o.at("kl_alpha"));
  r.compat = std::get<bool>(o.at("compat"));
  const auto seed = std::get<std::int64_t>(o.at("seed"));
  if (seed < 0) throw Error(fmt::format("resilience: seed must be >= 0, got {}", seed));
  r.seed = static_cast<std::uint64_t>(seed);
  r.temperature = std::get<double>(o.at("temperature"));
  r.top_p = std::get<double>(o.at("top_p"));
  r.min_p = std::get<double>(o.at("min_p"));
  r.repetition_penalty = std::get<double>(o.at("repetition_penalty"));
  r.max_tokens = std::get<std::int64_t>(o.at("max_tokens"));
  r.max_positions = std::get<std::int64_t>(o.at("max_positions"));
  r.batch = std::get<std::int64_t>(o.at("batch"));
  check_options(r);
  detail::check_sampling("resilience", detail::sampling_settings(r), r.num_rollouts, r.max_tokens);
  return r;
}

Attribution ResilienceMethod::run(const Trace& trace, const Context& context) const {
  if (!context.provider) throw Error("resilience: the context has no rollout provider");
  if (!context.similarity) throw Error("resilience: the context has no sentence similarity");
  if (context.output_dir.empty())
    throw Error("resilience: the context has no output_dir (the folder of the resumable chains)");
  const auto tokenizer = detail::context_tokenizer(context, "resilience");
  const ValueMap o = resolve_options(*this, context.options);
  ResilienceOptions options = resilience_options(o);
  options.outcome = method_outcome(context, trace);
  options.control = context.control;
  const std::string target = detail::method_target(o, trace);
  ResilienceResult result =
      measure_resilience(*context.provider, *tokenizer, trace, "", target, *context.similarity, context.output_dir, options);
  result.attribution.options = o;
  return result.attribution;
}

}  // namespace anchors::rollout
