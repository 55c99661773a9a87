// Resampling metrics against a slow reference written here from the
// definitions (docs/design.md §3 "Resampling" for the default mode, a line-by-line
// reading of analyze_rollouts.py / step_attribution.py for compat mode). The
// reference reads the rollout folders with nlohmann-json itself and shares no
// code with the implementation beyond normalize_answer / answers_equivalent
// (which have their own tests).
#include "anchors/core/resampling_metrics.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "anchors/core/answers.h"
#include "anchors/core/error.h"
#include "anchors/core/rollouts.h"
#include "anchors/methods/registry.h"
#include "anchors/methods/resampling.h"
#include "anchors/rollout/provider.h"
#include "test_paths.h"

namespace anchors {
namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// ===========================================================================
// Building rollout folders
// ===========================================================================

void write_json(const fs::path& path, const json& doc) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << doc.dump(1);
}

struct RecordSpec {
  bool error = false;
  std::string removed;
  std::string resampled;
  std::string rollout;
  std::string answer;
  std::optional<bool> is_correct;  // nullopt: key absent
};

json record_json(const RecordSpec& r) {
  if (r.error) return json{{"chunk_removed", r.removed}, {"prefix_without_chunk", "p"}, {"error", "HTTP 429"}};
  json j = {{"chunk_removed", r.removed},   {"prefix_without_chunk", "p"}, {"chunk_resampled", r.resampled},
            {"rollout", r.rollout},         {"full_cot", "prompt" + r.rollout}, {"answer", r.answer}};
  if (r.is_correct) j["is_correct"] = *r.is_correct;
  return j;
}

// chunk index -> records; a chunk absent from the map has no folder.
using FolderSpec = std::map<std::size_t, std::vector<RecordSpec>>;

struct ProblemSpec {
  std::string gt_answer = "42";
  std::vector<std::string> chunks;
  FolderSpec resampled;
  std::optional<FolderSpec> forced;
};

// Writes <root>/correct_base_solution/problem_7 (+ the forced sibling).
fs::path write_problem(const fs::path& root, const ProblemSpec& spec) {
  const fs::path dir = root / "correct_base_solution" / "problem_7";
  write_json(dir / "problem.json", {{"problem", "What is 6*7?"}, {"gt_answer", spec.gt_answer}});
  write_json(dir / "base_solution.json", {{"prompt", "P"}, {"solution", "S"}, {"answer", "42"}, {"is_correct", true}});
  write_json(dir / "chunks.json", {{"source_text", "S"}, {"solution_text", "S"}, {"chunks", spec.chunks}});
  const auto write_folders = [](const fs::path& base, const FolderSpec& folders) {
    for (const auto& [c, records] : folders) {
      json list = json::array();
      for (const auto& r : records) list.push_back(record_json(r));
      write_json(base / ("chunk_" + std::to_string(c)) / "solutions.json", list);
    }
  };
  write_folders(dir, spec.resampled);
  if (spec.forced) {
    const fs::path forced = root / "correct_base_solution_forced_answer" / "problem_7";
    fs::create_directories(forced);
    write_folders(forced, *spec.forced);
  }
  return dir;
}

// The toy similarity both sides use: identical sentences 1.0, sentences with
// the same first word 0.85 (similar at τ = 0.8), else the same last word
// exactly 0.8 (on the threshold: similar, and a match), anything else 0.2.
double toy_similarity(const std::string& a, const std::string& b) {
  if (a == b) return 1.0;
  const auto first_word = [](const std::string& s) { return s.substr(0, s.find(' ')); };
  const auto last_word = [](const std::string& s) { return s.substr(s.rfind(' ') + 1); };
  if (first_word(a) == first_word(b)) return 0.85;
  return last_word(a) == last_word(b) ? 0.8 : 0.2;
}

// ===========================================================================
// The slow reference
// ===========================================================================

struct RefRecord {
  bool error = false;
  std::string removed, resampled, rollout, answer;
  std::optional<bool> is_correct;
};
struct RefFolder {
  bool exists = false;
  std::vector<RefRecord> records;  // including error records
};

RefFolder ref_load(const fs::path& path) {
  RefFolder f;
  if (!fs::exists(path)) return f;
  f.exists = true;
  std::ifstream in(path);
  const json doc = json::parse(in);
  for (const auto& r : doc) {
    RefRecord rec;
    rec.error = r.contains("error");
    rec.removed = r.value("chunk_removed", "");
    rec.resampled = r.value("chunk_resampled", "");
    rec.rollout = r.value("rollout", "");
    rec.answer = r.value("answer", "");
    if (r.contains("is_correct")) rec.is_correct = r["is_correct"].get<bool>();
    f.records.push_back(rec);
  }
  return f;
}

std::size_t ref_codepoints(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

double ref_kl(const std::vector<std::string>& answers_p, const std::vector<std::string>& answers_q, double alpha) {
  std::map<std::string, double> p, q;
  double np = 0, nq = 0;
  for (const auto& a : answers_p) {
    const std::string n = normalize_answer(a);
    if (!n.empty()) p[n] += 1, np += 1;
  }
  for (const auto& a : answers_q) {
    const std::string n = normalize_answer(a);
    if (!n.empty()) q[n] += 1, nq += 1;
  }
  if (np == 0 || nq == 0) return 0.0;
  std::set<std::string> all;
  for (const auto& [k, v] : p) all.insert(k);
  for (const auto& [k, v] : q) all.insert(k);
  const double V = static_cast<double>(all.size());
  double kl = 0;
  for (const auto& a : all) {
    const double pa = ((p.count(a) ? p[a] : 0) + alpha) / (np + alpha * V);
    const double qa = ((q.count(a) ? q[a] : 0) + alpha) / (nq + alpha * V);
    kl += pa * std::log(pa / qa);
  }
  return std::max(0.0, kl);
}

// Sentences of a toy rollout: before "</think>", split on blank lines.
std::vector<std::string> ref_steps(const std::string& rollout) {
  std::string body = rollout.substr(0, rollout.find("</think>"));
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= body.size()) {
    std::size_t end = body.find("\n\n", start);
    if (end == std::string::npos) end = body.size();
    std::string piece = body.substr(start, end - start);
    while (!piece.empty() && std::isspace(static_cast<unsigned char>(piece.back()))) piece.pop_back();
    while (!piece.empty() && std::isspace(static_cast<unsigned char>(piece.front()))) piece.erase(0, 1);
    if (!piece.empty()) out.push_back(piece);
    start = end + 2;
  }
  return out;
}

struct RefSentence {
  std::size_t chunk_idx;
  double accuracy = kNaN, ri_acc = kNaN, ri_kl = kNaN, cf_acc = kNaN, cf_kl = kNaN, f_acc = kNaN, f_kl = kNaN,
         dtf = kNaN, od = kNaN, forced_accuracy = kNaN;
  std::size_t num_valid = 0, num_errors = 0, num_different = 0;
};

struct RefResult {
  std::vector<RefSentence> sentences;
  std::vector<std::vector<double>> matrix;
};

struct Reference {
  std::vector<std::string> chunks;
  std::string gt;
  std::vector<RefFolder> folders, forced;
  bool has_forced = false;
  double tau = 0.8, alpha = 1e-9;
  std::vector<std::size_t> analysed;

  Reference(const fs::path& dir, const ProblemSpec& spec) : chunks(spec.chunks), gt(spec.gt_answer) {
    for (std::size_t c = 0; c < chunks.size(); ++c) {
      folders.push_back(ref_load(dir / ("chunk_" + std::to_string(c)) / "solutions.json"));
      if (ref_codepoints(chunks[c]) >= 4) analysed.push_back(c);
    }
    const fs::path forced_dir = dir.parent_path().parent_path() / "correct_base_solution_forced_answer" / dir.filename();
    has_forced = fs::exists(forced_dir);
    for (std::size_t c = 0; c < chunks.size() && has_forced; ++c) {
      forced.push_back(ref_load(forced_dir / ("chunk_" + std::to_string(c)) / "solutions.json"));
    }
  }

  // ---- paper semantics (docs/design.md §3) ----

  std::vector<const RefRecord*> valid(const RefFolder& f) const {
    std::vector<const RefRecord*> out;
    for (const auto& r : f.records) {
      if (!r.error && !r.answer.empty()) out.push_back(&r);
    }
    return out;
  }
  double acc(const std::vector<const RefRecord*>& set) const {
    double decided = 0, correct = 0;
    for (const RefRecord* r : set) {
      std::optional<bool> c = r->is_correct;
      if (!c && !gt.empty()) c = answers_equivalent(r->answer, gt);
      if (!c) continue;
      decided += 1;
      correct += *c;
    }
    return decided == 0 ? kNaN : correct / decided;
  }
  static std::vector<std::string> answers(const std::vector<const RefRecord*>& set) {
    std::vector<std::string> out;
    for (const RefRecord* r : set) out.push_back(r->answer);
    return out;
  }

  RefResult paper() const {
    RefResult out;
    const std::size_t S = analysed.size();
    for (std::size_t i = 0; i < S; ++i) {
      RefSentence s;
      s.chunk_idx = analysed[i];
      const RefFolder& f = folders[analysed[i]];
      const auto R = valid(f);
      s.num_valid = R.size();
      for (const auto& r : f.records) s.num_errors += r.error;
      s.accuracy = acc(R);
      std::optional<std::size_t> n;
      for (std::size_t q = i + 1; q < S && !n; ++q) {
        if (!valid(folders[analysed[q]]).empty()) n = q;
      }
      if (!R.empty()) {
        std::vector<const RefRecord*> D, Ssim;
        std::set<std::string> distinct;
        for (const RefRecord* r : R) {
          (toy_similarity(chunks[analysed[i]], r->resampled) < tau ? D : Ssim).push_back(r);
          distinct.insert(r->resampled);
        }
        s.num_different = D.size();
        s.dtf = double(D.size()) / double(R.size());
        s.od = 1.0 - double(distinct.size()) / double(R.size());
        if (n) {
          const auto Rn = valid(folders[analysed[*n]]);
          s.ri_acc = acc(Rn) - s.accuracy;
          s.ri_kl = ref_kl(answers(R), answers(Rn), alpha);
          if (!D.empty()) {
            s.cf_acc = acc(D) - acc(Rn);
            auto kept = Rn;
            kept.insert(kept.end(), Ssim.begin(), Ssim.end());
            s.cf_kl = ref_kl(answers(D), answers(kept), alpha);
          }
        }
      }
      if (has_forced) {
        const auto F = valid(forced[analysed[i]]);
        s.forced_accuracy = acc(F);
        std::optional<std::size_t> nf;
        for (std::size_t q = i + 1; q < S && !nf; ++q) {
          if (!valid(forced[analysed[q]]).empty()) nf = q;
        }
        if (!F.empty() && nf) {
          const auto Fn = valid(forced[analysed[*nf]]);
          s.f_acc = acc(Fn) - s.forced_accuracy;
          s.f_kl = ref_kl(answers(F), answers(Fn), alpha);
        }
      }
      out.sentences.push_back(s);
    }
    out.matrix.assign(S, std::vector<double>(S, kNaN));
    for (std::size_t i = 0; i + 1 < S; ++i) {
      const auto with_text = [](const RefFolder& f) {
        std::vector<const RefRecord*> v;
        for (const auto& r : f.records) {
          if (!r.error && !r.rollout.empty()) v.push_back(&r);
        }
        return v;
      };
      const auto keep = with_text(folders[analysed[i + 1]]);
      const auto res = with_text(folders[analysed[i]]);
      if (keep.empty() || res.empty()) continue;
      for (std::size_t j = i + 1; j < S; ++j) {
        out.matrix[i][j] = match_rate(keep, chunks[analysed[j]], false) - match_rate(res, chunks[analysed[j]], false);
      }
    }
    return out;
  }

  double match_rate(const std::vector<const RefRecord*>& set, const std::string& target, bool need_positive) const {
    double matches = 0;
    for (const RefRecord* r : set) {
      double best = -2;
      for (const auto& step : ref_steps(r->rollout)) best = std::max(best, toy_similarity(target, step));
      matches += best >= tau && (!need_positive || best > 0);
    }
    return matches / double(set.size());
  }

  // ---- analyze_rollouts.py, transliterated ----

  RefResult compat() const {
    // chunk_accuracies / chunk_info / forced_answer_accuracies as the script builds them.
    std::map<std::size_t, double> chunk_accuracies;
    std::map<std::size_t, std::vector<const RefRecord*>> chunk_info;
    for (std::size_t c : analysed) {
      const RefFolder& f = folders[c];
      if (!f.exists) continue;
      double correct = 0, total = 0;
      for (const auto& r : f.records) {
        if (r.error) continue;  // no is_correct key in error records
        if (r.is_correct == true && r.answer != "") correct += 1;
        if (r.is_correct.has_value() && r.answer != "") total += 1;
      }
      chunk_accuracies[c] = total > 0 ? correct / total : 0.0;
      if (!f.records.empty()) {
        auto& info = chunk_info[c];
        for (const auto& r : f.records) {
          if (!r.error && r.answer != "" && r.answer != "None") info.push_back(&r);
        }
      }
    }
    std::map<std::size_t, double> forced_acc;
    if (has_forced) {
      for (std::size_t c : analysed) {
        double correct = 0, total = 0;
        for (const auto& r : forced[c].records) {
          if (r.error) continue;
          if (r.is_correct == true && r.answer != "") correct += 1;
          if (r.is_correct.has_value() && r.answer != "") total += 1;
        }
        forced_acc[c] = total > 0 ? correct / total : 0.0;
      }
    }
    const auto all_answers = [](const RefFolder& f) {
      std::vector<std::string> out;
      for (const auto& r : f.records) {
        if (!r.error) out.push_back(r.answer);
      }
      return out;
    };
    const auto info_acc = [](const std::vector<const RefRecord*>& set) {
      double correct = 0, total = 0;
      for (const RefRecord* r : set) {
        if (normalize_answer(r->answer).empty()) continue;
        total += 1;
        correct += r->is_correct.value_or(false);
      }
      return total > 0 ? correct / total : 0.0;
    };

    RefResult out;
    for (std::size_t c : analysed) {
      RefSentence s;
      s.chunk_idx = c;
      s.num_valid = valid(folders[c]).size();  // counts do not depend on the mode
      for (const auto& r : folders[c].records) s.num_errors += r.error;
      s.accuracy = chunk_accuracies.count(c) ? chunk_accuracies[c] : 0.0;
      s.ri_acc = s.ri_kl = s.cf_acc = s.cf_kl = s.dtf = s.od = s.f_acc = s.f_kl = s.forced_accuracy = 0.0;
      // calculate_resampling_importance_accuracy
      if (chunk_accuracies.count(c) && chunk_accuracies.count(c + 1)) s.ri_acc = chunk_accuracies[c + 1] - chunk_accuracies[c];
      // next chunk_info key
      std::optional<std::size_t> next;
      for (const auto& [k, v] : chunk_info) {
        if (k > c && (!next || k < *next)) next = k;
      }
      if (chunk_info.count(c) && next) {
        // calculate_resampling_importance_kl
        s.ri_kl = ref_kl(all_answers(folders[c]), all_answers(folders[*next]), alpha);
        // calculate_counterfactual_importance_accuracy / _kl
        const auto& current = chunk_info.at(c);
        const auto& next_sols = chunk_info.at(*next);
        std::vector<const RefRecord*> D, Ssim;
        std::set<std::string> distinct;
        for (const RefRecord* r : current) {
          (toy_similarity(r->removed, r->resampled) < tau ? D : Ssim).push_back(r);
          distinct.insert(r->resampled);
        }
        s.num_different = D.size();
        s.dtf = current.empty() ? 0.0 : double(D.size()) / double(current.size());
        s.od = current.empty() ? 0.0 : 1.0 - double(distinct.size()) / double(current.size());
        if (!D.empty() && !next_sols.empty()) {
          s.cf_acc = info_acc(D) - info_acc(next_sols);
          auto kept = next_sols;
          kept.insert(kept.end(), Ssim.begin(), Ssim.end());
          s.cf_kl = ref_kl(answers(D), answers(kept), alpha);
        }
      }
      if (has_forced) {
        s.forced_accuracy = forced_acc[c];
        std::optional<std::size_t> fnext;
        for (const auto& [k, v] : forced_acc) {
          if (k > c && (!fnext || k < *fnext)) fnext = k;
        }
        if (fnext) {
          s.f_acc = forced_acc[*fnext] - forced_acc[c];
          s.f_kl = ref_kl(all_answers(forced[c]), all_answers(forced[*fnext]), alpha);
        }
      }
      out.sentences.push_back(s);
    }
    // step_attribution.py: positions index the chunk folders directly.
    const std::size_t S = analysed.size();
    out.matrix.assign(S, std::vector<double>(S, 0.0));
    for (std::size_t i = 0; i + 1 < S; ++i) {
      const auto with_text = [&](std::size_t position) {
        std::vector<const RefRecord*> v;
        if (position >= folders.size()) return v;
        for (const auto& r : folders[position].records) {
          if (!r.error && !r.rollout.empty()) v.push_back(&r);
        }
        return v;
      };
      const auto keep = with_text(i + 1);
      const auto res = with_text(i);
      std::size_t keep_steps = 0, res_steps = 0;
      for (const RefRecord* r : keep) keep_steps += ref_steps(r->rollout).size();
      for (const RefRecord* r : res) res_steps += ref_steps(r->rollout).size();
      if (keep_steps == 0 || res_steps == 0) continue;
      for (std::size_t j = i + 1; j < S; ++j) {
        out.matrix[i][j] = match_rate(keep, chunks[analysed[j]], true) - match_rate(res, chunks[analysed[j]], true);
      }
    }
    return out;
  }
};

// ===========================================================================
// Comparison
// ===========================================================================

void expect_same(double actual, double expected, const char* what) {
  if (std::isnan(expected)) {
    EXPECT_TRUE(std::isnan(actual)) << what << ": expected no value, got " << actual;
  } else {
    EXPECT_NEAR(actual, expected, 1e-12) << what;
  }
}

void expect_matches_reference(const ResamplingMetrics& m, const RefResult& ref) {
  ASSERT_EQ(m.sentences.size(), ref.sentences.size());
  for (std::size_t i = 0; i < ref.sentences.size(); ++i) {
    SCOPED_TRACE("sentence " + std::to_string(i));
    const SentenceMetrics& a = m.sentences[i];
    const RefSentence& e = ref.sentences[i];
    EXPECT_EQ(a.chunk_idx, e.chunk_idx);
    expect_same(a.accuracy, e.accuracy, "accuracy");
    expect_same(a.resampling_importance_accuracy, e.ri_acc, "resampling_importance_accuracy");
    expect_same(a.resampling_importance_kl, e.ri_kl, "resampling_importance_kl");
    expect_same(a.counterfactual_importance_accuracy, e.cf_acc, "counterfactual_importance_accuracy");
    expect_same(a.counterfactual_importance_kl, e.cf_kl, "counterfactual_importance_kl");
    expect_same(a.forced_importance_accuracy, e.f_acc, "forced_importance_accuracy");
    expect_same(a.forced_importance_kl, e.f_kl, "forced_importance_kl");
    expect_same(a.different_trajectories_fraction, e.dtf, "different_trajectories_fraction");
    expect_same(a.overdeterminedness, e.od, "overdeterminedness");
    expect_same(a.forced_accuracy, e.forced_accuracy, "forced_accuracy");
    EXPECT_EQ(a.num_rollouts, e.num_valid);
    EXPECT_EQ(a.num_errors, e.num_errors);
    EXPECT_EQ(a.num_different, e.num_different);
  }
  ASSERT_EQ(m.sentence_to_sentence.rows, ref.matrix.size());
  ASSERT_EQ(m.sentence_to_sentence.cols, ref.matrix.size());
  for (std::size_t i = 0; i < ref.matrix.size(); ++i) {
    for (std::size_t j = 0; j < ref.matrix.size(); ++j) {
      SCOPED_TRACE("M[" + std::to_string(i) + "][" + std::to_string(j) + "]");
      expect_same(m.sentence_to_sentence(i, j), ref.matrix[i][j], "matrix");
    }
  }
}

ResamplingMetrics compute(const fs::path& dir, bool compat) {
  TableSimilarity similarity(toy_similarity);
  ResamplingMetricsOptions options;
  options.compat = compat;
  return compute_resampling_metrics(read_problem_rollouts(dir.string()), similarity, options);
}

// ===========================================================================
// A hand-built problem: every special case once
// ===========================================================================

const std::string S0 = "Alpha sentence one.";
const std::string S1 = "Beta sentence two.";
const std::string S3 = "Gamma sentence three.";
const std::string S4 = "Delta sentence four.";
const std::string S5 = "Epsilon sentence five.";
const std::string S6 = "Zeta sentence six.";

RecordSpec ok(const std::string& removed, const std::string& resampled, const std::string& answer,
              std::optional<bool> correct, const std::string& rollout = "") {
  return RecordSpec{false, removed, resampled, rollout.empty() ? resampled : rollout, answer, correct};
}
RecordSpec err(const std::string& removed) { return RecordSpec{true, removed, "", "", "", std::nullopt}; }

ProblemSpec hand_built() {
  ProblemSpec p;
  // Chunk 2 ("ab") is shorter than 4 characters: read, but not analysed.
  p.chunks = {S0, S1, "ab", S3, S4, S5, S6};
  const std::string roll_a = S1 + "\n\n" + S3 + "\n\nOmega filler text.</think>\n\n\\boxed{42}";
  const std::string roll_b = "Other start here.\n\n" + S4 + "\n\nBeta sentence variant.";
  p.resampled[0] = {ok(S0, S0, "42", true, S0 + "\n\n" + roll_a),
                    ok(S0, "Other thing here.", "41", false, "Other thing here.\n\n" + roll_b),
                    ok(S0, "Other stuff now.", "42", true, roll_b),
                    err(S0),
                    // no answer: not valid, but its text counts for the matrix
                    ok(S0, "Alpha variant.", "", false, S3 + "\n\n" + S5),
                    // "None": a valid answer for the paper, excluded from chunk_info by the script
                    ok(S0, "Other none.", "None", false, "Other none text.")};
  p.resampled[1] = {ok(S1, S1, "42", true, roll_a), ok(S1, "Beta variant text.", "42", true, S4),
                    ok(S1, "Other again.", "7", std::nullopt, "Other again here.\n\n" + S5)};  // no is_correct: compared with gt
  p.resampled[2] = {ok("ab", "Zulu text here.", "41", false, S6 + "\n\n" + S5)};
  // chunk 3: no folder at all
  p.resampled[4] = {err(S4), err(S4)};  // only errors: no valid rollouts, but the file is non-empty
  p.resampled[5] = {ok(S5, "Epsilon other.", "42", true, S6), ok(S5, "Kappa different.", "41", false, "Kappa words."),
                    err(S5)};
  p.resampled[6] = {ok(S6, S6, "42", true, S6)};
  p.forced = FolderSpec{};
  (*p.forced)[0] = {ok(S0, "42}", "42", true), ok(S0, "41}", "41", false), err(S0)};
  // forced chunk 1 missing
  (*p.forced)[3] = {ok(S3, "42}", "42", true)};
  (*p.forced)[4] = {ok(S4, "7}", "7", false), ok(S4, "42}", "42", true)};
  (*p.forced)[5] = {err(S5)};
  (*p.forced)[6] = {ok(S6, "42}", "42", true)};
  return p;
}

TEST(ResamplingMetrics, HandBuiltProblemMatchesReferenceInBothModes) {
  testing::ScratchDir scratch("metrics");
  const ProblemSpec spec = hand_built();
  const fs::path dir = write_problem(scratch.path(), spec);
  const Reference ref(dir, spec);
  {
    SCOPED_TRACE("paper");
    expect_matches_reference(compute(dir, false), ref.paper());
  }
  {
    SCOPED_TRACE("compat");
    expect_matches_reference(compute(dir, true), ref.compat());
  }
}

TEST(ResamplingMetrics, HandBuiltProblemValuesByHand) {
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), hand_built());
  const ResamplingMetrics m = compute(dir, false);
  ASSERT_EQ(m.sentences.size(), 6u);  // "ab" dropped
  const std::vector<std::size_t> idx = {0, 1, 3, 4, 5, 6};
  for (std::size_t k = 0; k < idx.size(); ++k) EXPECT_EQ(m.sentences[k].chunk_idx, idx[k]);

  const SentenceMetrics& s0 = m.sentences[0];
  // R_0: 42 ✓, 41 ✗, 42 ✓, None ✗ (the error record and the empty answer do not count).
  EXPECT_EQ(s0.num_rollouts, 4u);
  EXPECT_EQ(s0.num_errors, 1u);
  EXPECT_EQ(s0.num_without_answer, 1u);
  EXPECT_DOUBLE_EQ(s0.accuracy, 0.5);
  // R_1: 42 ✓, 42 ✓, 7 (no flag; 7 != 42 so ✗) -> 2/3.
  EXPECT_DOUBLE_EQ(m.sentences[1].accuracy, 2.0 / 3.0);
  EXPECT_EQ(s0.next_chunk_idx, 1u);
  EXPECT_DOUBLE_EQ(s0.resampling_importance_accuracy, 2.0 / 3.0 - 0.5);
  // T_r vs S_0: identical (1.0), "Other thing" (0.2), "Other stuff" (0.2), "Other none" (0.2).
  EXPECT_EQ(s0.num_different, 3u);
  EXPECT_DOUBLE_EQ(s0.different_trajectories_fraction, 0.75);
  EXPECT_DOUBLE_EQ(s0.overdeterminedness, 0.0);
  // D_0 = {41 ✗, 42 ✓, None ✗}: 1/3; acc(R_1) = 2/3.
  EXPECT_DOUBLE_EQ(s0.counterfactual_importance_accuracy, 1.0 / 3.0 - 2.0 / 3.0);
  // Log-odds with the ½ correction: lo(R_0) = ln(2.5/2.5) = 0, lo(R_1) = ln(2.5/1.5), lo(D_0) = ln(1.5/2.5).
  EXPECT_NEAR(s0.resampling_importance_logodds, std::log(2.5 / 1.5) - 0.0, 1e-12);
  EXPECT_NEAR(s0.counterfactual_importance_logodds, std::log(1.5 / 2.5) - std::log(2.5 / 1.5), 1e-12);
  // KL(P(R_0) || P(R_1)): P = {42: 2, 41: 1, none: 1}, Q = {42: 2, 7: 1}.
  {
    const double a = 1e-9, V = 4;
    const double p42 = (2 + a) / (4 + a * V), p41 = (1 + a) / (4 + a * V), pn = (1 + a) / (4 + a * V),
                 p7 = a / (4 + a * V);
    const double q42 = (2 + a) / (3 + a * V), q41 = a / (3 + a * V), qn = a / (3 + a * V), q7 = (1 + a) / (3 + a * V);
    const double kl = p42 * std::log(p42 / q42) + p41 * std::log(p41 / q41) + pn * std::log(pn / qn) +
                      p7 * std::log(p7 / q7);
    EXPECT_NEAR(s0.resampling_importance_kl, kl, 1e-12);
  }

  // Sentence 3 ("Gamma") has no folder: nothing is defined except its counts.
  const SentenceMetrics& s3 = m.sentences[2];
  EXPECT_EQ(s3.num_rollouts, 0u);
  EXPECT_TRUE(std::isnan(s3.accuracy));
  EXPECT_TRUE(std::isnan(s3.counterfactual_importance_kl));
  EXPECT_TRUE(std::isnan(s3.overdeterminedness));
  // Sentence 1's next sentence with data skips chunk 3 (no folder) and chunk 4 (only errors).
  EXPECT_EQ(m.sentences[1].next_chunk_idx, 5u);
  // Chunk 4: only error records, never counted as wrong answers.
  EXPECT_EQ(m.sentences[3].num_errors, 2u);
  EXPECT_TRUE(std::isnan(m.sentences[3].accuracy));
  // Last sentence: no next.
  EXPECT_TRUE(std::isnan(m.sentences[5].resampling_importance_accuracy));
  EXPECT_DOUBLE_EQ(m.sentences[5].accuracy, 1.0);
  EXPECT_DOUBLE_EQ(m.sentences[5].overdeterminedness, 0.0);

  // Forced: F_0 = {42 ✓, 41 ✗}; next forced with data is chunk 3 (chunk 1 missing).
  EXPECT_EQ(s0.num_forced, 2u);
  EXPECT_EQ(s0.num_forced_errors, 1u);
  EXPECT_EQ(s0.next_forced_chunk_idx, 3u);
  EXPECT_DOUBLE_EQ(s0.forced_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(s0.forced_importance_accuracy, 0.5);
  // Chunk 4's next forced with data skips chunk 5 (only an error).
  EXPECT_EQ(m.sentences[3].next_forced_chunk_idx, 6u);

  // Matrix row 0 (S_0): kept = chunk 1's rollouts (3 with text), resampled = chunk 0's (5 with text).
  // Target S_1 (col 1): kept: roll_a has S1 -> 1/3; resampled: rollout 0 has S1, and both
  // roll_b rollouts have "Beta sentence variant." (same first word: 0.85 >= 0.8) -> 3/5.
  EXPECT_NEAR(m.sentence_to_sentence(0, 1), 1.0 / 3.0 - 3.0 / 5.0, 1e-15);
  // Target S_4 (col 3): kept: "S4" rollout -> 1/3; resampled: roll_b twice -> 2/5.
  EXPECT_NEAR(m.sentence_to_sentence(0, 3), 1.0 / 3.0 - 2.0 / 5.0, 1e-15);
  // Row 1 (S_1): kept = chunk 3, which has no folder -> no value; diagonal and below: no value.
  EXPECT_TRUE(std::isnan(m.sentence_to_sentence(1, 2)));
  EXPECT_TRUE(std::isnan(m.sentence_to_sentence(2, 2)));
  EXPECT_TRUE(std::isnan(m.sentence_to_sentence(3, 0)));
}

TEST(ResamplingMetrics, CompatReproducesTheScriptsArbitraryChoices) {
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), hand_built());
  const ResamplingMetrics m = compute(dir, true);
  // No NaN anywhere: the reference writes 0.0.
  for (const auto& name : ResamplingMetrics::series_names()) {
    for (double v : m.series(name)) EXPECT_FALSE(std::isnan(v)) << name;
  }
  for (double v : m.sentence_to_sentence.data) EXPECT_FALSE(std::isnan(v));
  const SentenceMetrics& s0 = m.sentences[0];
  // Accuracy: records with is_correct and a non-empty answer, "None" included: 42 ✓, 41 ✗, 42 ✓, None ✗ -> 0.5.
  EXPECT_DOUBLE_EQ(s0.accuracy, 0.5);
  // Counterfactual: chunk_info drops "None" -> 3 rollouts, 2 different.
  EXPECT_DOUBLE_EQ(s0.different_trajectories_fraction, 2.0 / 3.0);
  // Chunk 1's accuracy ignores the record without is_correct: 2/2.
  EXPECT_DOUBLE_EQ(m.sentences[1].accuracy, 1.0);
  // Next chunk_info key after chunk 1 is chunk 4 (only errors, but a non-empty file),
  // whose rollouts are empty -> counterfactual 0, resampling KL 0.
  EXPECT_EQ(m.sentences[1].next_chunk_idx, 4u);
  EXPECT_EQ(m.sentences[1].counterfactual_importance_accuracy, 0.0);
  // Resampling accuracy needs chunk_idx + 1 literally: chunk 1 -> 2 is not analysed.
  EXPECT_EQ(m.sentences[1].resampling_importance_accuracy, 0.0);
  // The last sentence has no next: dtf and overdeterminedness are 0 as in the script.
  EXPECT_EQ(m.sentences[5].overdeterminedness, 0.0);
  EXPECT_EQ(m.sentences[5].different_trajectories_fraction, 0.0);
}

// ===========================================================================
// Random problems: many shapes, both modes
// ===========================================================================

ProblemSpec random_problem(std::mt19937& rng) {
  const std::vector<std::string> pool = {S0, S1, S3, S4, S5, S6, "Alpha is different here.", "Beta other words.",
                                         "Omega unrelated line.", "Kappa unrelated thing.", "Sigma is number one.",
                                         "Tau goes to two."};
  const std::vector<std::string> answers = {"42", "41", "7", "\\frac{1}{2}", "None"};
  const auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  const auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  ProblemSpec p;
  const std::size_t n = 3 + rng() % 6;
  for (std::size_t c = 0; c < n; ++c) p.chunks.push_back(chance(0.15) ? "xy" : pick(pool));
  const auto make_folders = [&](bool forced) {
    FolderSpec folders;
    for (std::size_t c = 0; c < n; ++c) {
      if (chance(0.15)) continue;  // no folder
      std::vector<RecordSpec> records;
      const std::size_t k = rng() % 9;
      for (std::size_t r = 0; r < k; ++r) {
        RecordSpec rec;
        rec.removed = chance(0.9) ? p.chunks[c] : pick(pool);
        if (chance(0.15)) {
          rec.error = true;
        } else {
          rec.resampled = forced ? "x}" : (chance(0.3) ? p.chunks[c] : pick(pool));
          std::string rollout;
          const std::size_t steps = rng() % 4;
          for (std::size_t s = 0; s < steps; ++s) rollout += (s ? "\n\n" : "") + pick(pool);
          if (chance(0.3)) rollout += "</think>\n\n" + pick(pool);
          rec.rollout = rollout;
          rec.answer = chance(0.1) ? "" : pick(answers);
          if (chance(0.85)) rec.is_correct = normalize_answer(rec.answer) == "42";
        }
        records.push_back(rec);
      }
      folders[c] = records;
    }
    return folders;
  };
  p.resampled = make_folders(false);
  if (chance(0.7)) p.forced = make_folders(true);
  return p;
}

TEST(ResamplingMetrics, RandomProblemsMatchReferenceInBothModes) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 60; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    testing::ScratchDir scratch("metrics-random");
    const ProblemSpec spec = random_problem(rng);
    const fs::path dir = write_problem(scratch.path(), spec);
    const Reference ref(dir, spec);
    expect_matches_reference(compute(dir, false), ref.paper());
    expect_matches_reference(compute(dir, true), ref.compat());
    if (::testing::Test::HasFailure()) break;
  }
}

// ===========================================================================
// Similarity plumbing
// ===========================================================================

// Deterministic bag-of-letters embedding.
class LetterEmbedder : public Embedder {
 public:
  std::vector<std::vector<float>> embed(const std::vector<std::string>& texts) override {
    ++calls;
    texts_embedded += texts.size();
    std::vector<std::vector<float>> out;
    for (const auto& t : texts) {
      std::vector<float> v(27, 0.0f);
      for (unsigned char c : t) v[std::isalpha(c) ? std::tolower(c) - 'a' : 26] += 1.0f + 0.01f * (c % 7);
      out.push_back(v);
    }
    return out;
  }
  std::string name() const override { return "letters"; }
  std::size_t calls = 0, texts_embedded = 0;
};

void expect_identical(const ResamplingMetrics& a, const ResamplingMetrics& b) {
  for (const auto& name : ResamplingMetrics::series_names()) {
    const auto x = a.series(name), y = b.series(name);
    ASSERT_EQ(x.size(), y.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      EXPECT_TRUE(x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i]))) << name << "[" << i << "]";
    }
  }
  EXPECT_EQ(a.sentence_to_sentence, b.sentence_to_sentence);
}

TEST(ResamplingMetrics, EmbedderPathEqualsEmbeddingSimilarityPath) {
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), hand_built());
  const ProblemRollouts rollouts = read_problem_rollouts(dir.string());
  for (double tau : {0.5, 0.8, 0.95}) {
    for (bool compat : {false, true}) {
      ResamplingMetricsOptions options;
      options.similarity_threshold = tau;
      options.compat = compat;
      options.embed_batch_size = 3;
      LetterEmbedder direct;
      EmbeddingSimilarity via_pairs(std::make_shared<LetterEmbedder>(), 5);
      expect_identical(compute_resampling_metrics(rollouts, direct, options),
                       compute_resampling_metrics(rollouts, via_pairs, options));
    }
  }
}

// Counts requests; answers with the toy similarity.
class CountingSimilarity : public SentenceSimilarity {
 public:
  std::vector<double> similarities(const std::vector<std::pair<std::string, std::string>>& pairs) override {
    ++calls;
    max_batch = std::max(max_batch, pairs.size());
    std::vector<double> out;
    for (const auto& [a, b] : pairs) out.push_back(toy_similarity(a, b));
    return out;
  }
  std::size_t calls = 0, max_batch = 0;
};

TEST(ResamplingMetrics, SimilaritiesAreRequestedInBatches) {
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), hand_built());
  const ProblemRollouts rollouts = read_problem_rollouts(dir.string());
  CountingSimilarity big;
  const ResamplingMetrics a = compute_resampling_metrics(rollouts, big, {});
  // At most one request per sentence for the counterfactual split and one per
  // folder for the matrix.
  EXPECT_LE(big.calls, 2 * a.sentences.size());

  CountingSimilarity small;
  ResamplingMetricsOptions options;
  options.similarity_batch_pairs = 2;
  const ResamplingMetrics b = compute_resampling_metrics(rollouts, small, options);
  EXPECT_LE(small.max_batch, 2u);
  EXPECT_GT(small.calls, big.calls);
  expect_identical(a, b);
}

TEST(ResamplingMetrics, MissingPairInATableIsAnError) {
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), hand_built());
  TableSimilarity empty_table;
  EXPECT_THROW(compute_resampling_metrics(read_problem_rollouts(dir.string()), empty_table, {}), Error);
}

TEST(ResamplingMetrics, ProgressReachesTotal) {
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), hand_built());
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  ResamplingMetricsOptions options;
  std::atomic<bool> stop{false};
  options.control.progress = [&](std::size_t done, std::size_t total, const std::string& unit) {
    EXPECT_EQ(unit, "steps");
    calls.emplace_back(done, total);
  };
  options.control.cancel = &stop;
  TableSimilarity similarity(toy_similarity);
  const ProblemRollouts rollouts = read_problem_rollouts(dir.string());
  compute_resampling_metrics(rollouts, similarity, options);
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back().first, calls.back().second);
  EXPECT_EQ(calls.back().second, 12u);  // 6 sentences + 6 matrix folders
  for (std::size_t k = 0; k < calls.size(); ++k) EXPECT_EQ(calls[k].first, k + 1);
  // Cancelled from the progress callback (as another thread would): stops after that step.
  calls.clear();
  options.control.progress = [&](std::size_t done, std::size_t total, const std::string&) {
    calls.emplace_back(done, total);
    stop = done == 3;
  };
  EXPECT_THROW(compute_resampling_metrics(rollouts, similarity, options), Error);
  EXPECT_EQ(calls.size(), 3u);
}

TEST(ResamplingMetrics, MatrixCanBeSwitchedOff) {
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), hand_built());
  CountingSimilarity similarity;
  ResamplingMetricsOptions options;
  options.compute_matrix = false;
  const ResamplingMetrics m = compute_resampling_metrics(read_problem_rollouts(dir.string()), similarity, options);
  EXPECT_TRUE(m.sentence_to_sentence.empty());
  EXPECT_LE(similarity.calls, m.sentences.size());
}

TEST(ResamplingMetrics, RecomputedCorrectnessIgnoresTheRecordedFlag) {
  ProblemSpec p;
  p.chunks = {S0, S1};
  // Recorded flags are wrong on purpose.
  p.resampled[0] = {ok(S0, S0, "42", false), ok(S0, S0, "\\frac{84}{2}", false), ok(S0, S0, "41", true)};
  p.resampled[1] = {ok(S1, S1, "42", true)};
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), p);
  TableSimilarity similarity(toy_similarity);
  ResamplingMetricsOptions options;
  EXPECT_DOUBLE_EQ(compute_resampling_metrics(read_problem_rollouts(dir.string()), similarity, options)
                       .sentences[0]
                       .accuracy,
                   1.0 / 3.0);
  options.correctness = Correctness::kRecomputed;
  EXPECT_DOUBLE_EQ(compute_resampling_metrics(read_problem_rollouts(dir.string()), similarity, options)
                       .sentences[0]
                       .accuracy,
                   2.0 / 3.0);
}

TEST(ResamplingMetrics, ErrorRecordsAreNeverWrongAnswers) {
  ProblemSpec p;
  p.chunks = {S0, S1};
  p.resampled[0] = {ok(S0, S0, "42", true), err(S0), err(S0), err(S0), ok(S0, S0, "42", true)};
  p.resampled[1] = {ok(S1, S1, "42", true), err(S1)};
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), p);
  for (bool compat : {false, true}) {
    const ResamplingMetrics m = compute(dir, compat);
    EXPECT_DOUBLE_EQ(m.sentences[0].accuracy, 1.0);
    EXPECT_EQ(m.sentences[0].num_errors, 3u);
    EXPECT_EQ(m.sentences[0].num_rollouts, 2u);
    EXPECT_DOUBLE_EQ(m.sentences[0].resampling_importance_accuracy, 0.0);
    EXPECT_DOUBLE_EQ(m.sentences[0].resampling_importance_kl, 0.0);
  }
}

TEST(ResamplingMetrics, EmptyProblemGivesEmptyResult) {
  ProblemSpec p;
  p.chunks = {};
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), p);
  const ResamplingMetrics m = compute(dir, false);
  EXPECT_TRUE(m.sentences.empty());
  EXPECT_EQ(m.sentence_to_sentence.rows, 0u);
}

TEST(ResamplingMetrics, BadOptionsAndInconsistentInputAreErrors) {
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), hand_built());
  ProblemRollouts rollouts = read_problem_rollouts(dir.string());
  TableSimilarity similarity(toy_similarity);
  ResamplingMetricsOptions nan_threshold;
  nan_threshold.similarity_threshold = kNaN;
  EXPECT_THROW(compute_resampling_metrics(rollouts, similarity, nan_threshold), Error);
  ResamplingMetricsOptions zero_alpha;
  zero_alpha.kl_alpha = 0.0;
  EXPECT_THROW(compute_resampling_metrics(rollouts, similarity, zero_alpha), Error);
  rollouts.resampled.pop_back();
  EXPECT_THROW(compute_resampling_metrics(rollouts, similarity, {}), Error);
}

// The analysed sentences as a trace (the hand-built base solution is a stub).
Trace trace_of(const ResamplingMetrics& metrics) {
  Trace trace;
  for (const auto& m : metrics.sentences) {
    Sentence sentence;
    sentence.index = trace.sentences.size();
    sentence.chars = {trace.text.size(), trace.text.size() + m.text.size()};
    sentence.text = m.text;
    trace.text += m.text + " ";
    trace.sentences.push_back(sentence);
  }
  return trace;
}

// Every text is labelled "42": with gt_answer 42 every decided rollout is correct.
class AlwaysFortyTwo : public Outcome {
 public:
  std::string name() const override { return "always42"; }
  std::optional<std::string> label(const std::string&) const override { return "42"; }
};

TEST(ResamplingMetrics, TheMethodRelabelsWithTheContextsOutcome) {
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), hand_built());
  Context context;
  context.rollouts = std::make_shared<const ProblemRollouts>(read_problem_rollouts(dir.string()));
  context.similarity = std::make_shared<TableSimilarity>(toy_similarity);
  const Trace trace = trace_of(compute(dir, false));
  const auto method = make_method("resampling");
  const Attribution recorded = method->run(trace, context);
  EXPECT_EQ(recorded.metadata.count("outcome"), 0u);
  EXPECT_DOUBLE_EQ(recorded.scores.at("accuracy")[0], 0.5);  // as recorded (see HandBuiltProblemValuesByHand)
  context.outcome = std::make_shared<AlwaysFortyTwo>();
  const Attribution relabelled = method->run(trace, context);
  EXPECT_EQ(std::get<std::string>(relabelled.metadata.at("outcome")), "always42");
  std::size_t defined = 0;
  for (double v : relabelled.scores.at("accuracy")) {
    if (std::isnan(v)) continue;
    EXPECT_DOUBLE_EQ(v, 1.0);  // every non-error record now has the label 42, error records still none
    ++defined;
  }
  EXPECT_GT(defined, 2u);
  // Records without an answer got one: more rollouts count.
  EXPECT_GE(relabelled.scores.at("num_rollouts")[0], recorded.scores.at("num_rollouts")[0]);
}

class NeverCalled : public rollout::RolloutProvider {
 public:
  std::string name() const override { return "never"; }
  std::vector<rollout::Completion> complete(const rollout::CompletionRequest&) override {
    ADD_FAILURE() << "the core method called the provider";
    return {};
  }
};

// The core's "resampling" knows every option (scoring and generation) but
// generates only in anchors::anchors; its attributions record the scoring
// options only.
TEST(ResamplingMetrics, TheCoreMethodScoresAndNamesWhatGeneratingNeeds) {
  const ValueMap defaults = make_method("resampling")->default_options();
  for (const auto* name : {"similarity_threshold", "min_sentence_chars", "num_rollouts", "forced", "seed",
                           "temperature", "top_p", "max_tokens", "batch"})
    EXPECT_EQ(defaults.count(name), 1u) << name;
  Context context;
  context.similarity = std::make_shared<TableSimilarity>(toy_similarity);
  context.provider = std::make_shared<NeverCalled>();
  try {
    make_method("resampling")->run(Trace{}, context);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("anchors::anchors"), std::string::npos) << e.what();
  }
  context.provider = nullptr;
  EXPECT_THROW(make_method("resampling")->run(Trace{}, context), Error);  // neither rollouts nor a provider
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), hand_built());
  const ResamplingMetrics m = compute(dir, false);
  const Attribution a = resampling_attribution(trace_of(m), m, {{"num_rollouts", std::int64_t{7}}});
  EXPECT_EQ(a.options.count("num_rollouts"), 0u);
  EXPECT_EQ(a.options, resampling_scoring_options());
}

TEST(ResamplingMetrics, SeriesAndAttribution) {
  testing::ScratchDir scratch("metrics");
  const fs::path dir = write_problem(scratch.path(), hand_built());
  const ResamplingMetrics m = compute(dir, false);
  EXPECT_THROW(m.series("importance"), Error);
  const Attribution a = to_attribution(m);
  EXPECT_EQ(a.method, "resampling");
  for (const auto& name : ResamplingMetrics::series_names()) {
    ASSERT_EQ(a.score(name).size(), m.sentences.size()) << name;
  }
  EXPECT_EQ(a.matrix("sentence_to_sentence"), m.sentence_to_sentence);
  EXPECT_EQ(std::get<std::string>(a.metadata.at("problem_id")), "problem_7");
  EXPECT_EQ(std::get<bool>(a.options.at("compat")), false);
}

}  // namespace
}  // namespace anchors
