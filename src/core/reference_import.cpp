#include "anchors/core/reference_import.h"

#include <filesystem>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/reference_schema.h"
#include "anchors/core/segmentation.h"
#include "json_fields.h"

namespace anchors {
namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;

json read_json_object(const std::string& path) {
  json doc = json_fields::read_file(path, kDataFileLimit);
  if (!doc.is_object()) throw Error(fmt::format("{}: expected a JSON object, got {}", path, doc.type_name()));
  return doc;
}

// Rows = source sentence, columns = target sentence; NaN where the file has no cell.
Matrix matrix_from_step_importance(const StepImportance& rows, std::size_t n, const std::string& path) {
  Matrix m(n, n);
  for (const auto& row : rows) {
    if (row.source_chunk_idx >= n)
      throw Error(fmt::format("{}: source_chunk_idx {} is out of range for {} sentences", path, row.source_chunk_idx, n));
    for (const auto& impact : row.target_impacts) {
      if (impact.target_chunk_idx >= n)
        throw Error(fmt::format("{}: target_chunk_idx {} is out of range for {} sentences", path,
                                impact.target_chunk_idx, n));
      m(row.source_chunk_idx, impact.target_chunk_idx) = impact.importance_score;
    }
  }
  return m;
}

}  // namespace

AnalysisResult import_reference_folder(const std::string& dir) {
  if (!directory_exists(dir)) throw Error(fmt::format("{}: no such directory", dir));
  const fs::path root(dir);
  const std::string base_path = (root / "base_solution.json").string();
  const std::string labels_path = (root / "chunks_labeled.json").string();

  const json base = read_json_object(base_path);
  AnalysisResult result;
  Trace& trace = result.trace;
  trace.prompt = json_fields::optional_string(base, "prompt", base_path);
  trace.text = json_fields::require_string(base, "solution", base_path);
  trace.answer = json_fields::optional_string(base, "answer", base_path);
  if (auto it = base.find("is_correct"); it != base.end() && it->is_boolean())
    trace.metadata["is_correct"] = it->get<bool>() ? "true" : "false";
  trace.metadata["problem_id"] = root.filename().string();
  trace.metadata["source"] = "authors' reference folder";

  const std::string problem_path = (root / "problem.json").string();
  if (file_exists(problem_path)) {
    const json problem = read_json_object(problem_path);
    for (const char* key : {"problem", "gt_answer", "level", "type", "nickname"}) {
      const std::string value = json_fields::optional_string(problem, key, problem_path);
      if (!value.empty()) trace.metadata[key] = value;
    }
  }

  trace.sentences = split_sentences(trace.text);
  const std::vector<LabeledChunk> chunks = read_chunks_labeled(labels_path);
  if (chunks.size() != trace.sentences.size())
    throw Error(fmt::format("{}: {} chunks, but the reference segmentation of {} gives {} sentences", labels_path,
                            chunks.size(), base_path, trace.sentences.size()));
  const std::size_t n = chunks.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (chunks[i].chunk_idx != i)
      throw Error(fmt::format("{}: entry {} has chunk_idx {} (expected {})", labels_path, i, chunks[i].chunk_idx, i));
    if (chunks[i].chunk != trace.sentences[i].text)
      throw Error(fmt::format("{}: chunk {} differs from sentence {} of the segmented solution", labels_path, i, i));
    trace.sentences[i].tags = chunks[i].function_tags;
  }

  Attribution resampling;
  resampling.method = "resampling";
  for (const auto& [name, field] : labeled_chunk_metrics()) {
    std::vector<double> series(n, std::numeric_limits<double>::quiet_NaN());
    bool any = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (const auto& v = chunks[i].*field) {
        series[i] = *v;
        any = true;
      }
    }
    if (any) resampling.scores[name] = std::move(series);
  }
  const std::string step_path = (root / "step_importance.json").string();
  if (file_exists(step_path))
    resampling.matrices["sentence_to_sentence"] = matrix_from_step_importance(read_step_importance(step_path), n, step_path);
  resampling.metadata["source"] = labels_path;
  result.attributions.push_back(std::move(resampling));

  const std::string supp_path = (root / "step_importance_supp.json").string();
  if (file_exists(supp_path)) {
    Attribution suppression;
    suppression.method = "attention_suppression";
    suppression.matrices["sentence_to_sentence"] =
        matrix_from_step_importance(read_step_importance(supp_path), n, supp_path);
    suppression.metadata["source"] = supp_path;
    suppression.metadata["row_centred"] = true;
    result.attributions.push_back(std::move(suppression));
  }
  result.validate();
  return result;
}

}  // namespace anchors
