#include "anchors/core/resampling_metrics.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "anchors/core/answers.h"
#include "anchors/core/distribution.h"
#include "anchors/core/error.h"
#include "anchors/core/utf8.h"
#include "resampling_metrics_internal.h"

namespace anchors {
namespace resampling_detail {
namespace {

class PairBackend final : public SimilarityBackend {
 public:
  PairBackend(SentenceSimilarity& similarity, std::size_t batch)
      : similarity_(similarity), batch_(std::max<std::size_t>(batch, 1)) {}

  std::vector<double> paired(const std::vector<std::pair<std::string, std::string>>& pairs) override {
    std::vector<double> out;
    out.reserve(pairs.size());
    for (std::size_t start = 0; start < pairs.size(); start += batch_) {
      const std::size_t end = std::min(pairs.size(), start + batch_);
      std::vector<std::pair<std::string, std::string>> batch(
          pairs.begin() + static_cast<std::ptrdiff_t>(start),
          pairs.begin() + static_cast<std::ptrdiff_t>(end));
      append(out, batch);
    }
    return out;
  }

  std::vector<double> cross(const std::vector<std::string>& rows_a,
                            const std::vector<std::string>& rows_b) override {
    std::vector<double> out;
    out.reserve(rows_a.size() * rows_b.size());
    std::vector<std::pair<std::string, std::string>> batch;
    for (const auto& a : rows_a) {
      for (const auto& b : rows_b) {
        batch.emplace_back(a, b);
        if (batch.size() == batch_) {
          append(out, batch);
          batch.clear();
        }
      }
    }
    if (!batch.empty()) append(out, batch);
    return out;
  }

 private:
  void append(std::vector<double>& out, const std::vector<std::pair<std::string, std::string>>& batch) {
    const std::vector<double> values = similarity_.similarities(batch);
    if (values.size() != batch.size()) {
      throw Error(fmt::format("similarity returned {} values for {} pairs", values.size(), batch.size()));
    }
    out.insert(out.end(), values.begin(), values.end());
  }

  SentenceSimilarity& similarity_;
  std::size_t batch_;
};

// Embeds texts itself: one embedding per distinct text of a request, cosine
// computed exactly as cosine_similarity() (same accumulation order in double)
// so both paths give the same bits. Only sentence-side texts (few, reused by
// every chunk) are cached; rollout steps are embedded per chunk and dropped.
class EmbedderBackend final : public SimilarityBackend {
 public:
  EmbedderBackend(Embedder& embedder, std::size_t batch)
      : embedder_(embedder), batch_(std::max<std::size_t>(batch, 1)) {}

  std::vector<double> paired(const std::vector<std::pair<std::string, std::string>>& pairs) override {
    std::vector<std::string> texts;
    for (const auto& [a, b] : pairs) {
      texts.push_back(a);
      texts.push_back(b);
    }
    Table table = embed(texts);
    std::vector<double> out;
    out.reserve(pairs.size());
    for (const auto& [a, b] : pairs) out.push_back(cosine(table.at(a), table.at(b)));
    return out;
  }

  std::vector<double> cross(const std::vector<std::string>& rows_a,
                            const std::vector<std::string>& rows_b) override {
    std::vector<std::string> missing;
    for (const auto& a : rows_a) {
      if (cache_.count(a) == 0) missing.push_back(a);
    }
    Table fresh = embed(missing);
    for (auto& entry : fresh) cache_.insert(std::move(entry));
    const Table b_table = embed(rows_b);
    std::vector<double> out;
    out.reserve(rows_a.size() * rows_b.size());
    for (const auto& a : rows_a) {
      const Embedded& ea = cache_.at(a);
      for (const auto& b : rows_b) out.push_back(cosine(ea, b_table.at(b)));
    }
    return out;
  }

 private:
  struct Embedded {
    std::vector<float> vector;
    double squared_norm = 0.0;
  };
  using Table = std::unordered_map<std::string, Embedded>;

  Table embed(const std::vector<std::string>& texts) {
    std::vector<std::string> distinct;
    std::set<std::string> seen;
    for (const auto& t : texts) {
      if (seen.insert(t).second) distinct.push_back(t);
    }
    Table table;
    for (std::size_t start = 0; start < distinct.size(); start += batch_) {
      const std::size_t end = std::min(distinct.size(), start + batch_);
      const std::vector<std::string> batch(distinct.begin() + static_cast<std::ptrdiff_t>(start),
                                           distinct.begin() + static_cast<std::ptrdiff_t>(end));
      std::vector<std::vector<float>> vectors = embedder_.embed(batch);
      if (vectors.size() != batch.size()) {
        throw Error(fmt::format("embedder '{}' returned {} embeddings for {} texts", embedder_.name(),
                                vectors.size(), batch.size()));
      }
      for (std::size_t k = 0; k < batch.size(); ++k) {
        if (dimension_ == 0) dimension_ = vectors[k].size();
        if (vectors[k].size() != dimension_) {
          throw Error(fmt::format("embedder '{}' returned an embedding of dimension {} (expected {})",
                                  embedder_.name(), vectors[k].size(), dimension_));
        }
        Embedded e;
        for (const float x : vectors[k]) e.squared_norm += static_cast<double>(x) * x;
        e.vector = std::move(vectors[k]);
        table.emplace(batch[k], std::move(e));
      }
    }
    return table;
  }

  static double cosine(const Embedded& a, const Embedded& b) {
    double dot = 0.0;
    for (std::size_t k = 0; k < a.vector.size(); ++k) dot += static_cast<double>(a.vector[k]) * b.vector[k];
    if (a.squared_norm == 0.0 || b.squared_norm == 0.0) return 0.0;
    return dot / (std::sqrt(a.squared_norm) * std::sqrt(b.squared_norm));
  }

  Embedder& embedder_;
  std::size_t batch_;
  std::size_t dimension_ = 0;
  Table cache_;
};

// ---------------------------------------------------------------------------
// Accuracy and distributions
// ---------------------------------------------------------------------------

bool matches_target(const std::string& answer, const Context& ctx) {
  const std::string& gt = ctx.rollouts.problem.gt_answer;
  return ctx.options.outcome ? ctx.options.outcome->matches(answer, gt) : answers_equivalent(answer, gt);
}

// Correctness of a rollout with an answer under the paper semantics; nullopt
// when it cannot be decided (then it does not count towards accuracy).
std::optional<bool> decided_correctness(const Rollout& r, const Context& ctx) {
  const std::string& gt = ctx.rollouts.problem.gt_answer;
  if (ctx.options.correctness == Correctness::kRecomputed || !r.is_correct.has_value()) {
    if (gt.empty() || !r.has_answer()) return std::nullopt;
    return matches_target(r.answer, ctx);
  }
  return r.is_correct;
}

// Decided rollouts (with an answer and a correctness) and how many are correct.
struct Tally {
  std::size_t decided = 0, correct = 0;
};

Tally tally(const RolloutSet& set, const Context& ctx) {
  Tally t;
  for (const Rollout* r : set) {
    if (!r->has_answer()) continue;
    const auto c = decided_correctness(*r, ctx);
    if (!c) continue;
    ++t.decided;
    t.correct += *c ? 1 : 0;
  }
  return t;
}

// Paper accuracy: correct / decided over rollouts with an answer; NaN if none.
double accuracy(const RolloutSet& set, const Context& ctx) {
  const Tally t = tally(set, ctx);
  return t.decided == 0 ? kNaN : static_cast<double>(t.correct) / static_cast<double>(t.decided);
}

// ln((k + 1/2) / (m - k + 1/2)); NaN without decided rollouts.
double log_odds(const RolloutSet& set, const Context& ctx) {
  const Tally t = tally(set, ctx);
  if (t.decided == 0) return kNaN;
  const double k = static_cast<double>(t.correct), m = static_cast<double>(t.decided);
  return std::log((k + 0.5) / (m - k + 0.5));
}

AnswerDistribution distribution(const RolloutSet& set, const Context& ctx) {
  AnswerDistribution d;
  const Outcome* outcome = ctx.options.compat ? nullptr : ctx.options.outcome.get();
  for (const Rollout* r : set) {
    if (outcome) {
      if (r->has_answer()) d.add(outcome->distribution_key(r->answer), 1, false);
    } else {
      d.add(r->answer);  // normalised; empty answers ignored
    }
  }
  return d;
}

RolloutSet with_answer(const SentenceRollouts& file) {
  RolloutSet out;
  for (const Rollout& r : file.rollouts) {
    if (r.has_answer()) out.push_back(&r);
  }
  return out;
}

double difference(double a, double b) { return (std::isnan(a) || std::isnan(b)) ? kNaN : a - b; }

}  // namespace

std::optional<bool> recorded_correctness(const Rollout& r, const Context& ctx) {
  if (ctx.options.correctness == Correctness::kRecomputed) {
    const std::string& gt = ctx.rollouts.problem.gt_answer;
    if (gt.empty() || !r.has_answer()) return std::nullopt;
    return matches_target(r.answer, ctx);
  }
  return r.is_correct;
}

RolloutSet all_records(const SentenceRollouts& file) {
  RolloutSet out;
  for (const Rollout& r : file.rollouts) out.push_back(&r);
  return out;
}

// ---------------------------------------------------------------------------
// The computation (compat mode's parts: resampling_metrics_compat.cpp)
// ---------------------------------------------------------------------------

MetricsComputation::MetricsComputation(const ProblemRollouts& rollouts,
                                       const ResamplingMetricsOptions& options, SimilarityBackend& backend)
    : rollouts_(rollouts), options_(options), ctx_{rollouts, options}, backend_(backend) {
  if (!std::isfinite(options.similarity_threshold)) {
    throw Error(fmt::format("similarity_threshold must be a finite number, got {}", options.similarity_threshold));
  }
  if (!(options.kl_alpha > 0.0)) {
    throw Error(fmt::format("kl_alpha must be > 0, got {}", options.kl_alpha));
  }
  if (rollouts.resampled.size() != rollouts.chunks.size() ||
      (rollouts.has_forced() && rollouts.forced.size() != rollouts.chunks.size())) {
    throw Error(fmt::format("{}: rollouts hold {} resampled / {} forced entries for {} chunks",
                            rollouts.problem_id, rollouts.resampled.size(), rollouts.forced.size(),
                            rollouts.chunks.size()));
  }
  for (std::size_t c = 0; c < rollouts.chunks.size(); ++c) {
    if (utf8::length(rollouts.chunks[c]) >= options.min_sentence_chars) analysed_.push_back(c);
  }
}

ResamplingMetrics MetricsComputation::run() {
  ResamplingMetrics out;
  out.problem_id = rollouts_.problem_id;
  out.options = options_;
  out.options.control = {};  // its captures need not outlive this call
  const std::size_t count = analysed_.size();
  total_work_ = count + (options_.compute_matrix ? count : 0);
  out.sentences.reserve(count);
  for (std::size_t p = 0; p < count; ++p) {
    out.sentences.push_back(sentence_metrics(p));
    report();
  }
  if (options_.compute_matrix) out.sentence_to_sentence = matrix();
  return out;
}

void MetricsComputation::report() {
  ++done_;
  options_.control.report(done_, total_work_, "steps");
  options_.control.check("resampling metrics");
}

double MetricsComputation::kl(const RolloutSet& p, const RolloutSet& q) const {
  return kl_divergence(distribution(p, ctx_), distribution(q, ctx_), options_.kl_alpha);
}

SentenceMetrics MetricsComputation::sentence_metrics(std::size_t p) {
  SentenceMetrics m;
  m.chunk_idx = analysed_[p];
  m.text = text(p);
  const SentenceRollouts& file = resampled(p);
  m.num_rollouts = file.num_valid();
  m.num_without_answer = file.num_without_answer();
  m.num_errors = file.num_errors;
  if (options_.compat) {
    compat_resampling(p, m);
    compat_counterfactual(p, m);
    compat_forced(p, m);
  } else {
    paper_resampling_and_counterfactual(p, m);
    paper_forced(p, m);
  }
  return m;
}

void MetricsComputation::paper_resampling_and_counterfactual(std::size_t p, SentenceMetrics& m) {
  const RolloutSet current = with_answer(resampled(p));
  m.accuracy = accuracy(current, ctx_);
  const auto next = next_with(p, [&](std::size_t q) { return resampled(q).num_valid() > 0; });
  if (next) m.next_chunk_idx = analysed_[*next];
  if (current.empty()) return;
  const RolloutSet next_set = next ? with_answer(resampled(*next)) : RolloutSet{};
  if (next) {
    m.resampling_importance_accuracy = difference(accuracy(next_set, ctx_), m.accuracy);
    m.resampling_importance_logodds = difference(log_odds(next_set, ctx_), log_odds(current, ctx_));
    m.resampling_importance_kl = kl(current, next_set);
  }

  // Counterfactual split on cos(S_i, T_r); S_i is the analysed sentence.
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(current.size());
  for (const Rollout* r : current) pairs.emplace_back(text(p), r->chunk_resampled);
  const std::vector<double> sims = backend_.paired(pairs);
  RolloutSet different, similar;
  std::set<std::string> distinct_resampled;
  for (std::size_t k = 0; k < current.size(); ++k) {
    (sims[k] < options_.similarity_threshold ? different : similar).push_back(current[k]);
    distinct_resampled.insert(current[k]->chunk_resampled);
  }
  const double size = static_cast<double>(current.size());
  m.num_different = different.size();
  m.different_trajectories_fraction = static_cast<double>(different.size()) / size;
  m.overdeterminedness = 1.0 - static_cast<double>(distinct_resampled.size()) / size;
  if (different.empty() || !next) return;
  m.counterfactual_importance_accuracy = difference(accuracy(different, ctx_), accuracy(next_set, ctx_));
  m.counterfactual_importance_logodds = difference(log_odds(different, ctx_), log_odds(next_set, ctx_));
  RolloutSet kept = next_set;
  kept.insert(kept.end(), similar.begin(), similar.end());
  m.counterfactual_importance_kl = kl(different, kept);
}

void MetricsComputation::paper_forced(std::size_t p, SentenceMetrics& m) {
  if (!rollouts_.has_forced()) return;
  const SentenceRollouts& file = forced(p);
  m.num_forced = file.num_valid();
  m.num_forced_errors = file.num_errors;
  const RolloutSet current = with_answer(file);
  m.forced_accuracy = accuracy(current, ctx_);
  const auto next = next_with(p, [&](std::size_t q) { return forced(q).num_valid() > 0; });
  if (next) m.next_forced_chunk_idx = analysed_[*next];
  if (current.empty() || !next) return;
  const RolloutSet next_set = with_answer(forced(*next));
  m.forced_importance_accuracy = difference(accuracy(next_set, ctx_), m.forced_accuracy);
  m.forced_importance_logodds = difference(log_odds(next_set, ctx_), log_odds(current, ctx_));
  m.forced_importance_kl = kl(current, next_set);
}

// The rollouts behind matrix position q: chunk_{chunk_idx} (paper) or, as
// step_attribution.py indexes folders by position, chunk_{q} (compat).
const SentenceRollouts* MetricsComputation::matrix_folder(std::size_t q) const {
  if (!options_.compat) return &resampled(q);
  return q < rollouts_.resampled.size() ? &rollouts_.resampled[q] : nullptr;
}

MetricsComputation::FolderMatches MetricsComputation::folder_matches(std::size_t q, std::size_t first_target) {
  FolderMatches out;
  const std::size_t count = analysed_.size();
  out.matches.assign(count > first_target ? count - first_target : 0, 0);
  const SentenceRollouts* folder = matrix_folder(q);
  if (folder == nullptr) return out;
  // Each rollout's sentences, as indices into the folder's distinct texts.
  std::vector<std::string> distinct;
  std::unordered_map<std::string, std::size_t> index;
  std::vector<std::vector<std::size_t>> steps;
  for (const Rollout& r : folder->rollouts) {
    if (r.rollout.empty()) continue;  // step_attribution.py keeps records with rollout text
    std::vector<std::size_t> ids;
    for (const Sentence& s : split_sentences(r.rollout, options_.rollout_segmentation)) {
      const auto [it, inserted] = index.emplace(s.text, distinct.size());
      if (inserted) distinct.push_back(s.text);
      ids.push_back(it->second);
    }
    out.num_steps += ids.size();
    steps.push_back(std::move(ids));
  }
  out.num_rollouts = steps.size();
  if (out.matches.empty() || distinct.empty()) return out;
  std::vector<std::string> targets;
  for (std::size_t j = first_target; j < count; ++j) targets.push_back(text(j));
  const std::vector<double> sims = backend_.cross(targets, distinct);
  const double tau = options_.similarity_threshold;
  for (std::size_t t = 0; t < targets.size(); ++t) {
    const double* row = sims.data() + t * distinct.size();
    for (const auto& ids : steps) {
      double best = -std::numeric_limits<double>::infinity();
      for (const std::size_t id : ids) best = std::max(best, row[id]);
      // The reference records only matches >= τ and then counts those > 0.
      const bool match = best >= tau && (!options_.compat || best > 0.0);
      out.matches[t] += match ? 1 : 0;
    }
  }
  return out;
}

Matrix MetricsComputation::matrix() {
  const std::size_t count = analysed_.size();
  Matrix m(count, count, options_.compat ? 0.0 : kNaN);
  // Folder q serves as "S_q resampled" for row q (targets j > q) and as
  // "S_{q-1} kept" for row q-1 (targets j >= q); one pass per folder.
  std::optional<FolderMatches> kept;
  for (std::size_t q = count; q-- > 0;) {
    FolderMatches resampled_here = folder_matches(q, std::max<std::size_t>(q, 1));
    if (kept && q + 1 < count) fill_row(m, q, resampled_here, *kept);
    kept = std::move(resampled_here);
    report();
  }
  return m;
}

// Row i from the folder that resamples S_i (targets from max(i,1)) and the
// one that keeps it (targets from i+1).
void MetricsComputation::fill_row(Matrix& m, std::size_t i, const FolderMatches& resampled_i,
                                  const FolderMatches& kept_i) const {
  if (resampled_i.num_rollouts == 0 || kept_i.num_rollouts == 0) return;
  if (options_.compat && (resampled_i.num_steps == 0 || kept_i.num_steps == 0)) return;
  const std::size_t resampled_first = std::max<std::size_t>(i, 1);
  const std::size_t kept_first = i + 1;
  for (std::size_t j = i + 1; j < m.cols; ++j) {
    const double kept_rate = static_cast<double>(kept_i.matches[j - kept_first]) /
                             static_cast<double>(kept_i.num_rollouts);
    const double resampled_rate = static_cast<double>(resampled_i.matches[j - resampled_first]) /
                                  static_cast<double>(resampled_i.num_rollouts);
    m(i, j) = kept_rate - resampled_rate;
  }
}

}  // namespace resampling_detail

namespace {
using resampling_detail::EmbedderBackend;
using resampling_detail::MetricsComputation;
using resampling_detail::PairBackend;

// Name -> accessor for every per-sentence series.
struct SeriesDef {
  const char* name;
  double (*get)(const SentenceMetrics&);
};

const std::vector<SeriesDef>& series_defs() {
  static const std::vector<SeriesDef> defs = {
      {"accuracy", [](const SentenceMetrics& m) { return m.accuracy; }},
      {"resampling_importance_accuracy", [](const SentenceMetrics& m) { return m.resampling_importance_accuracy; }},
      {"resampling_importance_kl", [](const SentenceMetrics& m) { return m.resampling_importance_kl; }},
      {"counterfactual_importance_accuracy", [](const SentenceMetrics& m) { return m.counterfactual_importance_accuracy; }},
      {"counterfactual_importance_kl", [](const SentenceMetrics& m) { return m.counterfactual_importance_kl; }},
      {"forced_importance_accuracy", [](const SentenceMetrics& m) { return m.forced_importance_accuracy; }},
      {"forced_importance_kl", [](const SentenceMetrics& m) { return m.forced_importance_kl; }},
      {"resampling_importance_logodds", [](const SentenceMetrics& m) { return m.resampling_importance_logodds; }},
      {"counterfactual_importance_logodds", [](const SentenceMetrics& m) { return m.counterfactual_importance_logodds; }},
      {"forced_importance_logodds", [](const SentenceMetrics& m) { return m.forced_importance_logodds; }},
      {"different_trajectories_fraction", [](const SentenceMetrics& m) { return m.different_trajectories_fraction; }},
      {"overdeterminedness", [](const SentenceMetrics& m) { return m.overdeterminedness; }},
      {"forced_accuracy", [](const SentenceMetrics& m) { return m.forced_accuracy; }},
      {"num_rollouts", [](const SentenceMetrics& m) { return static_cast<double>(m.num_rollouts); }},
      {"num_without_answer", [](const SentenceMetrics& m) { return static_cast<double>(m.num_without_answer); }},
      {"num_errors", [](const SentenceMetrics& m) { return static_cast<double>(m.num_errors); }},
      {"num_different", [](const SentenceMetrics& m) { return static_cast<double>(m.num_different); }},
      {"num_forced", [](const SentenceMetrics& m) { return static_cast<double>(m.num_forced); }},
      {"num_forced_errors", [](const SentenceMetrics& m) { return static_cast<double>(m.num_forced_errors); }},
      {"chunk_idx", [](const SentenceMetrics& m) { return static_cast<double>(m.chunk_idx); }},
  };
  return defs;
}

}  // namespace

SegmentOptions default_rollout_segmentation() {
  SegmentOptions options;
  options.drop_shorter_than = 0;  // step_attribution.py splits rollouts without dropping
  return options;
}

const std::vector<std::string>& ResamplingMetrics::series_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& def : series_defs()) out.emplace_back(def.name);
    return out;
  }();
  return names;
}

std::vector<double> ResamplingMetrics::series(const std::string& name) const {
  for (const auto& def : series_defs()) {
    if (name == def.name) {
      std::vector<double> out;
      out.reserve(sentences.size());
      for (const auto& s : sentences) out.push_back(def.get(s));
      return out;
    }
  }
  std::string known;
  for (const auto& n : series_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error(fmt::format("unknown resampling metric \"{}\" (known: {})", name, known));
}

ResamplingMetrics compute_resampling_metrics(const ProblemRollouts& rollouts, SentenceSimilarity& similarity,
                                             const ResamplingMetricsOptions& options) {
  PairBackend backend(similarity, options.similarity_batch_pairs);
  return MetricsComputation(rollouts, options, backend).run();
}

ResamplingMetrics compute_resampling_metrics(const ProblemRollouts& rollouts, Embedder& embedder,
                                             const ResamplingMetricsOptions& options) {
  EmbedderBackend backend(embedder, options.embed_batch_size);
  return MetricsComputation(rollouts, options, backend).run();
}

Attribution to_attribution(const ResamplingMetrics& metrics) {
  Attribution a;
  a.method = "resampling";
  for (const auto& name : ResamplingMetrics::series_names()) a.scores[name] = metrics.series(name);
  if (!metrics.sentence_to_sentence.empty()) a.matrices["sentence_to_sentence"] = metrics.sentence_to_sentence;
  const auto& o = metrics.options;
  a.options["similarity_threshold"] = o.similarity_threshold;
  a.options["kl_alpha"] = o.kl_alpha;
  a.options["min_sentence_chars"] = static_cast<std::int64_t>(o.min_sentence_chars);
  a.options["compat"] = o.compat;
  a.options["correctness"] = std::string(o.correctness == Correctness::kRecorded ? "recorded" : "recomputed");
  a.options["compute_matrix"] = o.compute_matrix;
  a.metadata["problem_id"] = metrics.problem_id;
  a.metadata["num_sentences"] = static_cast<std::int64_t>(metrics.sentences.size());
  return a;
}

}  // namespace anchors
