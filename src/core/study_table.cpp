#include "anchors/core/study_table.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <regex>

#include <fmt/format.h>

#include "anchors/core/error.h"
#include "anchors/core/reference_import.h"

namespace anchors {
namespace {

namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string meta(const Trace& trace, const char* key) {
  const auto it = trace.metadata.find(key);
  return it == trace.metadata.end() ? std::string() : it->second;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ",") + p;
  return out;
}

bool same_doubles(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

}  // namespace

void StudyTable::append(const AnalysisResult& result, const std::string& model_name, const std::string& base_kind,
                        const std::string& source_path) {
  result.validate();
  const Trace& trace = result.trace;
  const std::size_t before = size(), S = trace.sentences.size();
  std::string problem_id = meta(trace, "problem_id");
  if (problem_id.empty()) {
    fs::path p = fs::path(source_path).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();
    problem_id = p.filename().string();
  }
  std::string kind = base_kind;
  if (kind.empty()) {
    const std::string correct = meta(trace, "is_correct");
    kind = correct == "true" ? "correct" : correct == "false" ? "incorrect" : "unknown";
  }
  for (std::size_t i = 0; i < S; ++i) {
    const Sentence& s = trace.sentences[i];
    model.push_back(model_name);
    problem.push_back(problem_id);
    base.push_back(kind);
    level.push_back(meta(trace, "level"));
    type.push_back(meta(trace, "type"));
    sentence.push_back(static_cast<std::int64_t>(i));
    position.push_back(S > 1 ? static_cast<double>(i) / static_cast<double>(S - 1) : 0.0);
    tag.push_back(s.tags.empty() ? std::string() : s.tags.front());
    tags.push_back(joined(s.tags));
    text.push_back(s.text);
    source.push_back(source_path);
  }
  for (const Attribution& a : result.attributions) {
    for (const auto& [series, values] : a.scores) {
      std::vector<double>& column = scores[a.method + "." + series];
      column.resize(before, kNaN);  // a new column: NaN for the rows before
      column.insert(column.end(), values.begin(), values.end());
    }
  }
  for (auto& [name, column] : scores) column.resize(size(), kNaN);  // columns this trace lacks
  for (const Attribution& a : result.attributions)
    for (const auto& [name, m] : a.matrices)
      if (keep_matrices.count(a.method + "." + name)) matrices[a.method + "." + name].emplace_back(source_path, m);
}

std::string StudyTable::score_column(const std::string& name) const {
  if (scores.count(name)) return name;
  std::vector<std::string> matches;
  for (const auto& [column, values] : scores)
    if (column.size() > name.size() && column.compare(column.size() - name.size(), name.size(), name) == 0 &&
        column[column.size() - name.size() - 1] == '.')
      matches.push_back(column);
  if (matches.size() == 1) return matches.front();
  if (matches.size() > 1)
    throw Error(fmt::format("study table: score \"{}\" is ambiguous ({}); give the full name", name, joined(matches)));
  std::vector<std::string> names;
  for (const auto& [column, values] : scores) names.push_back(column);
  throw Error(fmt::format("study table: no score \"{}\" (columns: {})", name, names.empty() ? "none" : joined(names)));
}

const std::vector<double>& StudyTable::score(const std::string& name) const { return scores.at(score_column(name)); }

bool StudyTable::operator==(const StudyTable& o) const {
  if (!(model == o.model && problem == o.problem && base == o.base && level == o.level && type == o.type &&
        sentence == o.sentence && position == o.position && tag == o.tag && tags == o.tags && text == o.text &&
        source == o.source && scores.size() == o.scores.size() && matrices == o.matrices))
    return false;
  for (const auto& [name, values] : scores) {
    const auto it = o.scores.find(name);
    if (it == o.scores.end() || !same_doubles(values, it->second)) return false;
  }
  return true;
}

AnalysisResult load_analysed_folder(const std::string& dir) {
  std::error_code ec;
  const fs::path result = fs::path(dir) / "result.json";
  return fs::is_regular_file(result, ec) ? load_result(result.string()) : import_reference_folder(dir);
}

StudyTable study_table_from_folders(const std::string& root, const TraceVisitor& visit) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw Error(fmt::format("{}: no such folder (a study or reference root)", root));
  // The trace folders, in sorted order; chunk_<i> folders hold rollouts, not traces.
  static const std::regex chunk_folder(R"(chunk_\d+)");
  static const std::regex kind_folder(R"((.+)_base_solution)");
  std::vector<fs::path> folders;
  std::vector<fs::path> pending = {fs::path(root)};
  while (!pending.empty()) {
    const fs::path dir = pending.back();
    pending.pop_back();
    const bool ours = fs::is_regular_file(dir / "result.json", ec);
    const bool theirs = fs::is_regular_file(dir / "chunks_labeled.json", ec) &&
                        (fs::is_regular_file(dir / "problem.json", ec) || fs::is_regular_file(dir / "scenario.json", ec));
    if (ours || theirs) folders.push_back(dir);
    std::vector<fs::path> children;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.is_directory(ec) && !std::regex_match(entry.path().filename().string(), chunk_folder))
        children.push_back(entry.path());
    std::sort(children.rbegin(), children.rend());  // popped in ascending order
    for (auto& c : children) pending.push_back(std::move(c));
  }
  std::sort(folders.begin(), folders.end());
  if (folders.empty())
    throw Error(fmt::format("{}: no analysed trace under it (no folder with result.json, or chunks_labeled.json "
                            "beside problem.json / scenario.json)",
                            root));
  StudyTable table;
  for (const fs::path& dir : folders) {
    const AnalysisResult result = load_analysed_folder(dir.string());
    std::string model, kind;
    std::smatch m;
    const std::string parent = dir.parent_path().filename().string();
    if (std::regex_match(parent, m, kind_folder)) {
      kind = m[1].str();
      model = dir.parent_path().parent_path().filename().string();
    }
    const std::size_t first_row = table.size();
    table.append(result, model, kind, dir.string());
    if (visit) visit(result, table, first_row);
  }
  return table;
}

}  // namespace anchors
