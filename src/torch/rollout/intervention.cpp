#include "anchors/rollout/intervention.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/distribution.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/hash.h"
#include "anchors/model/tokenizer.h"
#include "anchors/rollout/rollout_store.h"
#include "json_fields.h"
#include "rollout_batches.h"

namespace anchors::rollout {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool takes_text(InterventionKind k) { return k == InterventionKind::kInsert || k == InterventionKind::kSubstitute; }

// The whitespace after sentence i (up to the next sentence or the end); " "
// when the trace has none there.
std::string gap_after(const Trace& trace, std::size_t i) {
  const std::size_t end = trace.sentences[i].chars.end;
  const std::size_t next = i + 1 < trace.sentences.size() ? trace.sentences[i + 1].chars.begin : trace.text.size();
  std::string gap = trace.text.substr(end, next - end);
  const auto last = gap.find_first_not_of(" \t\r\n");
  if (last != std::string::npos) gap = gap.substr(0, last);  // only the whitespace
  return gap.empty() ? std::string(" ") : gap;
}

// Everything up to sentence i's start / end, from the trace text itself.
std::string before(const Trace& trace, std::size_t i) { return trace.text.substr(0, trace.sentences[i].chars.begin); }
std::string through(const Trace& trace, std::size_t i) {
  return trace.text.substr(0, trace.sentences[i].chars.end) + gap_after(trace, i);
}

json intervention_json(const Intervention& in, const std::string& prefix, const std::string& prompt) {
  return {{"kind", to_string(in.kind)}, {"sentence", in.sentence}, {"text", in.text},
          {"prefix", prefix},          {"prompt", prompt}};
}

EditOutcome read_edit(const Intervention& in, const std::string& id, const std::string& prefix,
                      const std::string& dir, const Outcome& outcome) {
  EditOutcome e;
  e.intervention = in;
  e.id = id;
  e.prefix = prefix;
  e.dir = dir;
  const std::string path = (fs::path(dir) / "chunk_0" / "solutions.json").string();
  if (file_exists(path)) {
    const SentenceRollouts s = read_sentence_rollouts(path, 0);
    e.num_errors = static_cast<std::int64_t>(s.num_errors);
    for (const Rollout& r : s.rollouts) {
      ++e.num_rollouts;
      if (!r.has_answer()) continue;
      ++e.num_labelled;
      ++e.labels[outcome.distribution_key(r.answer)];
      if (r.is_correct.value_or(false)) ++e.num_matching;
    }
  }
  e.rate = e.num_labelled > 0 ? static_cast<double>(e.num_matching) / static_cast<double>(e.num_labelled) : kNaN;
  e.baseline_rate = e.rate_shift = e.kl_from_baseline = kNaN;
  return e;
}

}  // namespace

AnswerDistribution label_distribution(const EditOutcome& e) {
  AnswerDistribution d;
  for (const auto& [label, count] : e.labels) d.add(label, static_cast<std::size_t>(count), false);
  return d;
}

std::string to_string(InterventionKind kind) {
  switch (kind) {
    case InterventionKind::kResample: return "resample";
    case InterventionKind::kInsert: return "insert";
    case InterventionKind::kSubstitute: return "substitute";
    case InterventionKind::kDelete: return "delete";
    case InterventionKind::kTruncate: return "truncate";
  }
  return "?";
}

InterventionKind intervention_kind(const std::string& name) {
  for (auto k : {InterventionKind::kResample, InterventionKind::kInsert, InterventionKind::kSubstitute,
                 InterventionKind::kDelete, InterventionKind::kTruncate})
    if (to_string(k) == name) return k;
  throw Error(fmt::format("unknown intervention \"{}\" (expected resample, insert, substitute, delete or truncate)",
                          name));
}

std::string intervened_prefix(const Trace& trace, const Intervention& in) {
  const std::size_t n = trace.sentences.size();
  const std::string what = fmt::format("{}({})", to_string(in.kind), in.sentence);
  if (in.sentence >= n)
    throw Error(fmt::format("intervention {}: the trace has {} sentences (0..{})", what, n, n == 0 ? 0 : n - 1));
  if (takes_text(in.kind) && in.text.empty()) throw Error(fmt::format("intervention {}: no text given", what));
  if (!takes_text(in.kind) && !in.text.empty())
    throw Error(fmt::format("intervention {} takes no text (only insert and substitute do)", what));
  const std::size_t i = in.sentence;
  switch (in.kind) {
    case InterventionKind::kResample: return before(trace, i);
    case InterventionKind::kTruncate: return through(trace, i);  // the engine appends the forced stub
    case InterventionKind::kInsert: return through(trace, i) + in.text + gap_after(trace, i);
    case InterventionKind::kSubstitute: return before(trace, i) + in.text + gap_after(trace, i);
    case InterventionKind::kDelete:
      if (i + 1 >= n) throw Error(fmt::format("intervention {}: the last sentence has no successor to continue from", what));
      return before(trace, i) + trace.text.substr(trace.sentences[i + 1].chars.begin,
                                                  trace.sentences[i + 1].chars.end - trace.sentences[i + 1].chars.begin) +
             gap_after(trace, i + 1);
  }
  throw Error("intervention: unknown kind");
}

std::string intervention_id(const Intervention& in) {
  std::string id = fmt::format("{}_{}", to_string(in.kind), in.sentence);
  if (!in.text.empty()) id += fmt::format("_{:08x}", static_cast<std::uint32_t>(fnv1a64(in.text)));
  return id;
}

InterventionResult intervene(RolloutProvider& provider, const model::Tokenizer& tokenizer, const Trace& trace,
                             const std::string& given_prompt, const std::string& target,
                             const std::vector<Intervention>& interventions, const std::string& out_dir,
                             const InterventionOptions& options) {
  if (out_dir.empty()) throw Error("intervene: empty output folder");
  const std::string prompt = detail::trace_prompt(trace, given_prompt, "intervene");
  if (interventions.empty()) throw Error("intervene: no interventions given");
  detail::SamplingSettings sampling = detail::sampling_settings(options);
  sampling.attention_control = options.attention_control;
  detail::check_sampling("intervene", sampling, options.num_rollouts, options.max_tokens);
  if (trace.sentences.empty()) throw Error("intervene: the trace has no sentences");
  trace.validate();
  const std::shared_ptr<const Outcome> outcome =
      options.outcome ? options.outcome : std::make_shared<const BoxedAnswer>();
  const auto check_cancel = [&] { options.control.check("intervene"); };

  // The edits and their baselines, each with its prefix (checked before any generation).
  struct Job {
    Intervention in;
    std::string id, prefix, dir;
  };
  std::vector<Job> edits, baselines;
  std::set<std::string> ids;
  std::set<std::size_t> edited;
  for (const Intervention& in : interventions) {
    Job j{in, intervention_id(in), intervened_prefix(trace, in), ""};
    if (!ids.insert(j.id).second) throw Error(fmt::format("intervene: {} is given twice", j.id));
    j.dir = (fs::path(out_dir) / j.id).string();
    edits.push_back(std::move(j));
    if (in.kind != InterventionKind::kResample) edited.insert(in.sentence);
  }
  if (options.baseline) {
    for (std::size_t i : edited) {
      const Intervention in{InterventionKind::kResample, i, ""};
      Job j{in, intervention_id(in), intervened_prefix(trace, in), ""};
      j.dir = (fs::path(out_dir) / j.id).string();
      baselines.push_back(std::move(j));
    }
  }
  std::vector<const Job*> all;
  std::set<std::string> queued;
  for (const auto* list : {&edits, &baselines})
    for (const Job& j : *list)
      if (queued.insert(j.id).second) all.push_back(&j);

  // A folder made for another trace or prompt is never mixed with this one.
  for (const Job* j : all) {
    const std::string spec_path = (fs::path(j->dir) / "intervention.json").string();
    const json spec = intervention_json(j->in, j->prefix, prompt);
    if (file_exists(spec_path)) {
      if (json_fields::read_file(spec_path, kDataFileLimit) != spec)
        throw Error(fmt::format("intervene: {} was made for another trace or prompt; use another output folder",
                                spec_path));
    }
  }

  detail::RolloutCounts counts;
  std::int64_t done = 0;
  const std::int64_t total = options.num_rollouts * static_cast<std::int64_t>(all.size());
  // Each edit's folder is written by this call alone, with this run's settings
  // (rollout_store.h): its lock is held until the end, and its manifest (the
  // prompt and prefix the rollouts continue, the seed, the options) must match.
  std::vector<std::unique_ptr<RolloutStore>> stores;
  for (const Job* j : all) {
    stores.push_back(std::make_unique<RolloutStore>(j->dir));
    RunManifest manifest = detail::run_manifest(prompt, j->prefix, options, *outcome);
    // Rollouts under another control are other rollouts: never mixed in.
    if (!options.attention_control.empty())
      manifest.options["attention_control"] = attention_control_json(options.attention_control);
    stores.back()->begin_writing(manifest);
    done += options.num_rollouts -
            static_cast<std::int64_t>(stores.back()->missing(0, false, static_cast<std::size_t>(options.num_rollouts)));
  }
  const auto report = [&] {
    options.control.report(static_cast<std::size_t>(done), static_cast<std::size_t>(total), "rollouts");
  };
  report();
  for (std::size_t k = 0; k < all.size(); ++k) {
    const Job& j = *all[k];
    RolloutStore& store = *stores[k];
    if (store.missing(0, false, static_cast<std::size_t>(options.num_rollouts)) == 0) continue;
    store.remove_temp_files();
    write_file_atomic((fs::path(j.dir) / "intervention.json").string(),
                      intervention_json(j.in, j.prefix, prompt).dump(1));
    detail::RolloutTask task;
    task.stub = j.in.kind == InterventionKind::kTruncate ? outcome->forced_stub() : std::string();
    task.head = prompt + j.prefix + task.stub;
    task.ids = tokenizer.encode(task.head, true).ids;
    task.messages = detail::chat_messages(trace, j.prefix + task.stub);
    task.prefix = j.prefix;
    task.chunk_removed = j.in.kind == InterventionKind::kResample || j.in.kind == InterventionKind::kSubstitute ||
                                 j.in.kind == InterventionKind::kDelete
                             ? trace.sentences[j.in.sentence].text
                             : std::string();
    task.max_tokens = detail::capped_max_tokens(options.max_tokens, task.ids.size(), options.max_positions);
    task.no_room = fmt::format("the prompt of {} has {} tokens, no room left in the model's {} positions", j.id,
                               task.ids.size(), options.max_positions);
    const std::uint64_t edit_seed = splitmix64(options.seed ^ fnv1a64(j.id));
    std::int64_t counted = counts.generated;
    detail::generate_missing(
        provider, store, task, sampling, *outcome, target, options.num_rollouts,
        [&](std::int64_t b) { return splitmix64(edit_seed + static_cast<std::uint64_t>(b)); }, counts,
        check_cancel, [&](std::int64_t) {
          done += counts.generated - counted;
          counted = counts.generated;
          report();
        });
  }
  if (counts.generated == 0 && counts.failed > 0)
    throw Error(fmt::format("intervene: every request to {} failed ({} rollouts); the first failure: {}",
                            provider.name(), counts.failed, counts.first_failure));

  InterventionResult result;
  result.out_dir = out_dir;
  result.outcome = outcome->name();
  result.generated = counts.generated;
  std::map<std::size_t, EditOutcome> baseline_of;
  for (const Job& j : baselines) {
    EditOutcome b = read_edit(j.in, j.id, j.prefix, j.dir, *outcome);
    baseline_of[j.in.sentence] = b;
    result.baselines.push_back(std::move(b));
  }
  for (const Job& j : edits) {
    EditOutcome e = read_edit(j.in, j.id, j.prefix, j.dir, *outcome);
    if (target.empty()) e.rate = kNaN;
    if (auto it = baseline_of.find(j.in.sentence); it != baseline_of.end() && j.in.kind != InterventionKind::kResample) {
      e.baseline_rate = target.empty() ? kNaN : it->second.rate;
      e.rate_shift = e.rate - e.baseline_rate;
      const auto p = label_distribution(e), q = label_distribution(it->second);
      e.kl_from_baseline = p.total() > 0 && q.total() > 0 ? kl_divergence(p, q) : kNaN;
    }
    result.edits.push_back(std::move(e));
  }
  if (target.empty())
    for (auto& b : result.baselines) b.rate = kNaN;
  return result;
}

}  // namespace anchors::rollout
