#include "anchors/rollout/rollout_store.h"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "json_fields.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"

namespace anchors::rollout {
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;  // keys stay in the authors' order

namespace {

// Texts come from models and may hold invalid UTF-8; it is written as U+FFFD
// (the reader rejects invalid UTF-8) instead of failing the whole write.
std::string dump(const Json& doc) { return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n"; }

Json optional_bool(const std::optional<bool>& value) { return value ? Json(*value) : Json(nullptr); }

Json record_json(const RolloutRecord& record) {
  Json j = Json::object();
  if (record.is_error()) {
    j["error"] = record.error;
    j["chunk_removed"] = record.rollout.chunk_removed;
    j["prefix_without_chunk"] = record.rollout.prefix_without_chunk;
  } else {
    const Rollout& r = record.rollout;
    j["chunk_removed"] = r.chunk_removed;
    j["prefix_without_chunk"] = r.prefix_without_chunk;
    j["chunk_resampled"] = r.chunk_resampled;
    j["rollout"] = r.rollout;
    j["full_cot"] = r.full_cot;
    j["answer"] = r.answer;
    j["is_correct"] = optional_bool(r.is_correct);
    if (!r.outcome_raw.empty()) j["outcome_raw"] = r.outcome_raw;
  }
  if (record.sample_index >= 0) j["sample_index"] = record.sample_index;
  return j;
}

// The records of an existing solutions.json (empty when there is none), after
// checking the file the way read_sentence_rollouts does.
Json read_records(const std::string& path, std::size_t chunk_idx) {
  if (!file_exists(path)) return Json::array();
  read_sentence_rollouts(path, chunk_idx);  // anchors::Error naming the file and record
  return json_fields::read_file<Json>(path, kDataFileLimit);
}

// "sample_index" of a record, or -1 when absent.
std::int64_t sample_index_of(const Json& record, const std::string& path, std::size_t k) {
  const auto it = record.find("sample_index");
  if (it == record.end() || it->is_null()) return -1;
  if (!it->is_number_unsigned())
    throw Error(fmt::format("{}: record {}: field \"sample_index\" must be a non-negative integer, got {}", path, k,
                            it->dump()));
  return it->get<std::int64_t>();
}

}  // namespace

RolloutRecord RolloutRecord::failure(std::string message, std::string chunk_removed, std::string prefix_without_chunk,
                                     std::int64_t sample_index) {
  RolloutRecord r;
  r.error = message.empty() ? std::string("unknown error") : std::move(message);
  r.rollout.chunk_removed = std::move(chunk_removed);
  r.rollout.prefix_without_chunk = std::move(prefix_without_chunk);
  r.sample_index = sample_index;
  return r;
}

RolloutStore::RolloutStore(std::string problem_dir, std::string forced_dir)
    : problem_dir_(std::move(problem_dir)), forced_dir_(std::move(forced_dir)), mutex_(std::make_unique<std::mutex>()) {
  if (problem_dir_.empty()) throw Error("RolloutStore: empty problem folder");
  if (forced_dir_.empty()) forced_dir_ = forced_sibling_dir(problem_dir_);
}

std::string RolloutStore::layout_dir(const std::string& root, const std::string& kind, std::int64_t problem_index) {
  if (kind.empty()) throw Error("RolloutStore::layout_dir: empty kind (e.g. \"correct\")");
  if (problem_index < 0) throw Error(fmt::format("RolloutStore::layout_dir: problem index {} < 0", problem_index));
  return (fs::path(root) / (kind + "_base_solution") / fmt::format("problem_{}", problem_index)).string();
}

std::string RolloutStore::solutions_path(std::size_t chunk_idx, bool forced) const {
  return (fs::path(forced ? forced_dir_ : problem_dir_) / fmt::format("chunk_{}", chunk_idx) / "solutions.json")
      .string();
}

void RolloutStore::write_problem(const Problem& p) const {
  Json j = Json::object();
  j["problem"] = p.text;
  j["level"] = p.level;
  j["type"] = p.type;
  j["gt_solution"] = p.gt_solution;
  j["gt_answer"] = p.gt_answer;
  j["nickname"] = p.nickname;
  write_file_atomic((fs::path(problem_dir_) / "problem.json").string(), dump(j));
}

void RolloutStore::write_base_solution(const BaseSolution& b) const {
  Json j = Json::object();
  j["prompt"] = b.prompt;
  j["solution"] = b.solution;
  j["full_cot"] = b.full_cot;
  j["answer"] = b.answer;
  j["is_correct"] = optional_bool(b.is_correct);
  write_file_atomic((fs::path(problem_dir_) / "base_solution.json").string(), dump(j));
}

void RolloutStore::write_chunks(const std::string& source_text, const std::string& solution_text,
                                const std::vector<std::string>& chunks) const {
  Json j = Json::object();
  j["source_text"] = source_text;
  j["solution_text"] = solution_text;
  j["chunks"] = chunks;
  write_file_atomic((fs::path(problem_dir_) / "chunks.json").string(), dump(j));
}

bool RolloutStore::has_problem() const {
  const fs::path dir(problem_dir_);
  return file_exists((dir / "problem.json").string()) && file_exists((dir / "base_solution.json").string()) &&
         file_exists((dir / "chunks.json").string());
}

ProblemRollouts RolloutStore::read(bool keep_full_texts) const {
  ReadRolloutsOptions options;
  options.keep_full_texts = keep_full_texts;
  if (directory_exists(forced_dir_)) {
    options.forced_dir = forced_dir_;
  } else {
    options.read_forced = false;
  }
  return read_problem_rollouts(problem_dir_, options);
}

SentenceRollouts RolloutStore::load_rollouts(std::size_t chunk_idx, bool forced) const {
  const std::string path = solutions_path(chunk_idx, forced);
  std::lock_guard lock(*mutex_);
  if (!file_exists(path)) {
    SentenceRollouts none;
    none.chunk_idx = chunk_idx;
    return none;
  }
  return read_sentence_rollouts(path, chunk_idx, /*keep_full_texts=*/true);
}

std::size_t RolloutStore::missing(std::size_t chunk_idx, bool forced, std::size_t wanted) const {
  const std::size_t have = load_rollouts(chunk_idx, forced).rollouts.size();
  return have >= wanted ? 0 : wanted - have;
}

std::vector<std::int64_t> RolloutStore::missing_indices(std::size_t chunk_idx, bool forced,
                                                        std::size_t wanted) const {
  const std::string path = solutions_path(chunk_idx, forced);
  Json records;
  {
    std::lock_guard lock(*mutex_);
    records = read_records(path, chunk_idx);
  }
  std::set<std::int64_t> taken;
  std::size_t valid = 0;
  for (std::size_t k = 0; k < records.size(); ++k) {
    if (records[k].contains("error")) continue;
    ++valid;
    const std::int64_t index = sample_index_of(records[k], path, k);
    if (index >= 0) taken.insert(index);
  }
  const std::size_t need = valid >= wanted ? 0 : wanted - valid;
  std::vector<std::int64_t> out;
  for (std::int64_t index = 0; index < static_cast<std::int64_t>(wanted) && out.size() < need; ++index)
    if (taken.count(index) == 0) out.push_back(index);
  return out;
}

void RolloutStore::append_rollouts(std::size_t chunk_idx, bool forced, const std::vector<RolloutRecord>& records) const {
  const std::string path = solutions_path(chunk_idx, forced);
  std::lock_guard lock(*mutex_);
  const Json old = read_records(path, chunk_idx);
  Json out = Json::array();
  std::set<std::int64_t> taken;
  for (std::size_t k = 0; k < old.size(); ++k) {
    if (old[k].contains("error")) continue;  // superseded by this attempt
    const std::int64_t index = sample_index_of(old[k], path, k);
    if (index >= 0) taken.insert(index);
    out.push_back(old[k]);
  }
  for (std::size_t k = 0; k < records.size(); ++k) {
    const RolloutRecord& r = records[k];
    if (!r.is_error() && r.sample_index >= 0 && !taken.insert(r.sample_index).second)
      throw Error(fmt::format("{}: new record {} repeats sample_index {}, which the chunk already has", path, k,
                              r.sample_index));
    out.push_back(record_json(r));
  }
  write_file_atomic(path, dump(out));
}

std::size_t RolloutStore::remove_temp_files() const {
  static const std::regex kTemp(R"(.*\.json\.tmp\.[0-9a-f]+)");
  std::size_t removed = 0;
  for (const std::string& root : {problem_dir_, forced_dir_}) {
    std::error_code ec;
    if (!fs::is_directory(root, ec)) continue;
    std::vector<fs::path> stale;
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (it->is_regular_file(ec) && std::regex_match(it->path().filename().string(), kTemp))
        stale.push_back(it->path());
    }
    if (ec) throw Error(fmt::format("{}: cannot list folder ({})", root, ec.message()));
    for (const auto& p : stale)
      if (fs::remove(p, ec)) ++removed;
  }
  return removed;
}

}  // namespace anchors::rollout
