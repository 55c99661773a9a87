#include "anchors/core/reference_import.h"

#include <filesystem>
#include <limits>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/reference_schema.h"
#include "anchors/core/rollouts.h"
#include "anchors/core/segmentation.h"
#include "json_fields.h"
#include "verdict_fields.h"

namespace anchors {
namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;

json read_json_object(const std::string& path) {
  json doc = json_fields::read_file(path, kDataFileLimit);
  if (!doc.is_object()) throw Error(fmt::format("{}: expected a JSON object, got {}", path, doc.type_name()));
  return doc;
}

// Rows = source sentence, columns = target sentence; NaN where the file has no
// cell. `position` maps a chunk_idx to its sentence (the identity for the math
// files, whose chunk_idx values are positions).
Matrix matrix_from_step_importance(const StepImportance& rows, const std::map<std::size_t, std::size_t>& position,
                                   std::size_t n, const std::string& path) {
  Matrix m(n, n);
  const auto at = [&](std::size_t chunk_idx, const char* field) {
    const auto it = position.find(chunk_idx);
    if (it == position.end())
      throw Error(fmt::format("{}: {} {} is out of range for {} sentences (no chunks_labeled.json entry has it)", path,
                              field, chunk_idx, n));
    return it->second;
  };
  for (const auto& row : rows) {
    const std::size_t i = at(row.source_chunk_idx, "source_chunk_idx");
    for (const auto& impact : row.target_impacts)
      m(i, at(impact.target_chunk_idx, "target_chunk_idx")) = impact.importance_score;
  }
  return m;
}

// Where the labelled chunks of a math folder are: the reference segmentation
// of the solution, which they must equal sentence for sentence.
std::vector<Sentence> math_sentences(const std::string& text, const std::vector<LabeledChunk>& chunks,
                                     const std::string& labels_path, const std::string& base_path) {
  std::vector<Sentence> sentences = split_sentences(text);
  if (chunks.size() != sentences.size())
    throw Error(fmt::format("{}: {} chunks, but the reference segmentation of {} gives {} sentences", labels_path,
                            chunks.size(), base_path, sentences.size()));
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    if (chunks[i].chunk_idx != i)
      throw Error(fmt::format("{}: entry {} has chunk_idx {} (expected {})", labels_path, i, chunks[i].chunk_idx, i));
    if (chunks[i].chunk != sentences[i].text)
      throw Error(fmt::format("{}: chunk {} differs from sentence {} of the segmented solution", labels_path, i, i));
  }
  return sentences;
}

// Where the labelled chunks of an agentic folder are: the authors' splitter
// made chunks.json, and chunks_labeled.json lists those of at least 4
// characters by their chunk_idx (so not every index appears). Each is found
// in the solution (or in the text chunks.json describes, chunked_solution).
std::vector<Sentence> scenario_sentences(Trace& trace, const std::vector<LabeledChunk>& chunks, const fs::path& root,
                                         const std::string& labels_path, const std::string& base_path) {
  std::vector<std::size_t> selected;
  for (const auto& c : chunks) selected.push_back(c.chunk_idx);
  const std::string chunks_path = (root / "chunks.json").string();
  if (file_exists(chunks_path)) {
    const ChunksFile file = read_chunks_file(chunks_path);
    for (std::size_t k = 0; k < chunks.size(); ++k) {
      if (chunks[k].chunk_idx >= file.chunks.size())
        throw Error(fmt::format("{}: entry {} has chunk_idx {}, but {} has {} chunks", labels_path, k,
                                chunks[k].chunk_idx, chunks_path, file.chunks.size()));
      if (file.chunks[chunks[k].chunk_idx] != chunks[k].chunk)
        throw Error(fmt::format("{}: entry {} (chunk_idx {}) differs from chunk {} of {}", labels_path, k,
                                chunks[k].chunk_idx, chunks[k].chunk_idx, chunks_path));
    }
    ChunkedSolution layout = chunked_solution(trace.text, file.chunks, file.separators, selected, labels_path);
    if (layout.joined) {
      // Spans must index the trace's text: take the text the chunks describe.
      trace.metadata["text_source"] = fmt::format(
          "chunks.json (chunks joined by their separators): chunk {} is not in base_solution.json's solution as "
          "written",
          selected[*layout.not_found]);
      trace.text = std::move(layout.text);
    }
    return std::move(layout.sentences);
  }
  std::vector<std::string> texts;
  for (const auto& c : chunks) texts.push_back(c.chunk);
  std::vector<std::size_t> positions(chunks.size());
  for (std::size_t k = 0; k < positions.size(); ++k) positions[k] = k;
  for (std::size_t k = 1; k < chunks.size(); ++k)
    if (chunks[k].chunk_idx <= chunks[k - 1].chunk_idx)
      throw Error(fmt::format("{}: entry {} has chunk_idx {} after chunk_idx {} (they must ascend)", labels_path, k,
                              chunks[k].chunk_idx, chunks[k - 1].chunk_idx));
  ChunkedSolution layout = chunked_solution(trace.text, texts, {}, positions, labels_path);
  if (layout.joined) {
    const std::size_t k = *layout.not_found;
    throw Error(fmt::format("{}: entry {} (chunk_idx {}): its chunk is not in the solution of {} after the entry "
                            "before it, and there is no chunks.json to place it",
                            labels_path, k, chunks[k].chunk_idx, base_path));
  }
  return std::move(layout.sentences);
}

// The per-sentence numbers of the file as score series: the math keys by
// their own names, the agentic ones as scenario_metric_keys() maps them.
// Two keys of one entry feeding one series (the CF++ aliases, or
// blackmail_rate next to accuracy) must agree.
std::map<std::string, std::vector<double>> score_series(const std::vector<LabeledChunk>& chunks,
                                                        const std::string& labels_path) {
  std::map<std::string, std::vector<double>> out;
  const std::size_t n = chunks.size();
  for (std::size_t k = 0; k < n; ++k) {
    std::map<std::string, std::pair<std::string, double>> here;  // series -> (key, value)
    const auto put = [&](const std::string& series, const std::string& key, double value) {
      const auto [it, fresh] = here.emplace(series, std::make_pair(key, value));
      if (!fresh && it->second.second != value)
        throw Error(fmt::format("{}: entry {} (chunk_idx {}): \"{}\" = {} and \"{}\" = {} disagree (both are the "
                                "series {})",
                                labels_path, k, chunks[k].chunk_idx, it->second.first, it->second.second, key, value,
                                series));
    };
    for (const auto& [key, field] : labeled_chunk_metrics())
      if (const auto& v = chunks[k].*field) put(key, key, *v);
    for (const auto& metric : chunks[k].scenario_metrics) {
      for (const auto& known : scenario_metric_keys())
        if (metric.first == known.key) put(known.series, metric.first, metric.second);
    }
    for (const auto& [series, kv] : here) {
      auto& values = out[series];
      if (values.empty()) values.assign(n, std::numeric_limits<double>::quiet_NaN());
      values[k] = kv.second;
    }
  }
  return out;
}

// The behaviour the folder's numbers are about, from their keys ("" if none).
std::string behavior_of_labels(const std::vector<LabeledChunk>& chunks) {
  for (const auto& c : chunks)
    for (const auto& [key, value] : c.scenario_metrics)
      for (const char* b : verdict_fields::kBehaviors)
        if (key.find(b) != std::string::npos) return b;
  return {};
}

}  // namespace

AnalysisResult import_reference_folder(const std::string& dir) {
  if (!directory_exists(dir)) throw Error(fmt::format("{}: no such directory", dir));
  const fs::path root(dir);
  const std::string base_path = (root / "base_solution.json").string();
  const std::string labels_path = (root / "chunks_labeled.json").string();
  const std::string problem_path = (root / "problem.json").string();
  const std::string scenario_path = (root / "scenario.json").string();
  const bool has_problem = file_exists(problem_path), has_scenario = file_exists(scenario_path);
  if (has_problem && has_scenario)
    throw Error(fmt::format("{}: both problem.json and scenario.json (a folder holds one problem or one scenario)",
                            dir));
  if (!has_problem && !has_scenario)
    throw Error(fmt::format("{}: no such file, and no scenario.json either (the authors' folders describe their "
                            "problem in problem.json, an agentic scenario in scenario.json)",
                            problem_path));

  const json base = read_json_object(base_path);
  AnalysisResult result;
  Trace& trace = result.trace;
  trace.prompt = json_fields::optional_string(base, "prompt", base_path);
  trace.text = json_fields::require_string(base, "solution", base_path);
  trace.answer = json_fields::optional_string(base, "answer", base_path);
  if (auto it = base.find("is_correct"); it != base.end() && it->is_boolean())
    trace.metadata["is_correct"] = it->get<bool>() ? "true" : "false";
  // The agentic files' verdict: answer "yes" / "no", is_correct = the verdict.
  const verdict_fields::Verdict verdict = verdict_fields::read(base, base_path);
  if (verdict.value) {
    trace.answer = verdict.answer();
    trace.metadata["is_correct"] = *verdict.value ? "true" : "false";
  }
  if (const std::string judge = json_fields::optional_string(base, "reasoning", base_path); !judge.empty())
    trace.metadata["judge_reasoning"] = judge;
  trace.metadata["problem_id"] = root.filename().string();
  trace.metadata["source"] = "authors' reference folder";

  if (has_problem) {
    const json problem = read_json_object(problem_path);
    for (const char* key : {"problem", "gt_answer", "level", "type", "nickname"}) {
      const std::string value = json_fields::optional_string(problem, key, problem_path);
      if (!value.empty()) trace.metadata[key] = value;
    }
  } else {
    const Problem scenario = parse_scenario(read_text_file(scenario_path, kDataFileLimit), scenario_path);
    if (!scenario.text.empty()) trace.metadata["problem"] = scenario.text;
    trace.metadata["gt_answer"] = scenario.gt_answer;
    trace.metadata["scenario"] = scenario.scenario;
    if (!scenario.nickname.empty()) trace.metadata["nickname"] = scenario.nickname;
    if (trace.prompt.empty()) trace.prompt = scenario_prompt(scenario);
  }

  const std::vector<LabeledChunk> chunks = read_chunks_labeled(labels_path);
  trace.sentences = has_scenario ? scenario_sentences(trace, chunks, root, labels_path, base_path)
                                 : math_sentences(trace.text, chunks, labels_path, base_path);
  const std::size_t n = chunks.size();
  std::map<std::size_t, std::size_t> position;  // chunk_idx -> sentence
  bool positions_are_indices = true;
  for (std::size_t i = 0; i < n; ++i) {
    trace.sentences[i].tags = chunks[i].function_tags;
    position.emplace(chunks[i].chunk_idx, i);
    positions_are_indices = positions_are_indices && chunks[i].chunk_idx == i;
  }

  Attribution resampling;
  resampling.method = "resampling";
  resampling.scores = score_series(chunks, labels_path);
  const std::string step_path = (root / "step_importance.json").string();
  if (file_exists(step_path))
    resampling.matrices["sentence_to_sentence"] =
        matrix_from_step_importance(read_step_importance(step_path), position, n, step_path);
  resampling.metadata["source"] = labels_path;
  if (has_scenario) {
    std::string behavior = verdict.present() ? verdict.behavior : behavior_of_labels(chunks);
    if (!behavior.empty()) {
      trace.metadata["behavior"] = behavior;
      resampling.metadata["behavior"] = behavior;
    }
  }
  if (!positions_are_indices) {
    IntList indices;
    for (const auto& c : chunks) indices.push_back(static_cast<std::int64_t>(c.chunk_idx));
    resampling.metadata["chunk_idx"] = indices;  // which chunks.json entry each sentence is
  }
  result.attributions.push_back(std::move(resampling));

  const std::string supp_path = (root / "step_importance_supp.json").string();
  if (file_exists(supp_path)) {
    Attribution suppression;
    suppression.method = "attention_suppression";
    suppression.matrices["sentence_to_sentence"] =
        matrix_from_step_importance(read_step_importance(supp_path), position, n, supp_path);
    suppression.metadata["source"] = supp_path;
    suppression.metadata["row_centred"] = true;
    result.attributions.push_back(std::move(suppression));
  }
  result.validate();
  return result;
}

}  // namespace anchors
