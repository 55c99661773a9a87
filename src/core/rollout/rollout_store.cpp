#include "anchors/rollout/rollout_store.h"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "json_fields.h"
#include "rollout/folder_lock.h"
#include "value_json.h"
#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/core/hash.h"

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

constexpr const char* kLockFile = ".anchors.lock";
constexpr const char* kManifestFile = "manifest.json";
constexpr const char* kManifestFormat = "thought-anchors/rollout-manifest";
constexpr int kManifestVersion = 1;

// The guidance every refused writer gets.
std::string how_to_proceed(const std::string& dir) {
  return fmt::format("rollouts of two runs are never mixed in one folder: run with the recorded settings, give this "
                     "run another output folder (--out), or delete {} to start over",
                     dir);
}

std::string shown(const nlohmann::json* value) { return value ? value->dump() : std::string("(none)"); }

// anchors::Error for a recorded field that differs from this run's: "<dir>:
// this folder's rollouts were made with another <what> (<source>: <field>
// recorded <value>, this run <value>); <how to proceed>".
[[noreturn]] void refuse(const std::string& dir, const std::string& what, const std::string& source,
                         const std::string& field, const std::string& recorded, const std::string& wanted) {
  throw Error(fmt::format("{}: this folder's rollouts were made with another {} ({}: {} recorded {}, this run {}); {}",
                          dir, what, source, field, recorded, wanted, how_to_proceed(dir)));
}

// base_solution_hash of <dir>/base_solution.json, "" when the file is absent.
std::string hash_of_base_file(const std::string& dir) {
  const std::string path = (fs::path(dir) / "base_solution.json").string();
  if (!file_exists(path)) return {};
  const Json doc = json_fields::read_file<Json>(path, kDataFileLimit);
  return base_solution_hash(json_fields::optional_string(doc, "prompt", path),
                            json_fields::require_string(doc, "solution", path));
}

// Whether a folder holds chunk_<i> folders (rollouts of some run).
bool has_chunk_folders(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (it->path().filename().string().rfind("chunk_", 0) == 0) return true;
  return false;
}

// Compares `manifest` with the one recorded at `path` (anchors::Error for the
// first difference, or for a file that is no manifest of ours).
void check_manifest(const std::string& dir, const std::string& path, const RunManifest& manifest) {
  const nlohmann::json doc = json_fields::read_file(path, kConfigFileLimit);
  if (!doc.is_object() || !doc.contains("format") || doc["format"] != kManifestFormat || !doc.contains("version") ||
      !doc["version"].is_number_integer())
    throw Error(fmt::format("{}: not a rollout manifest (expected {{\"format\": \"{}\", \"version\": {}, ...}}); "
                            "delete it only if the folder holds no rollouts of another run",
                            path, kManifestFormat, kManifestVersion));
  if (doc["version"].get<std::int64_t>() > kManifestVersion)
    throw Error(fmt::format("{}: manifest version {} was written by a newer version of the library (this one reads "
                            "version {}); update before writing to this folder",
                            path, doc["version"].dump(), kManifestVersion));
  const auto recorded = [&](const nlohmann::json& object, const char* key) -> const nlohmann::json* {
    const auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
  };
  const nlohmann::json hash = manifest.base_solution_hash;
  if (const auto* r = recorded(doc, "base_solution_hash"); !r || *r != hash)
    refuse(dir, "base solution", path, "\"base_solution_hash\"", shown(r), hash.dump());
  const nlohmann::json seed = manifest.seed;
  if (const auto* r = recorded(doc, "seed"); !r || *r != seed)
    refuse(dir, "seed", path, "\"seed\"", shown(r), seed.dump());
  const nlohmann::json empty = nlohmann::json::object();
  const auto options_it = doc.find("options");
  const nlohmann::json& options = options_it != doc.end() && options_it->is_object() ? *options_it : empty;
  const nlohmann::json wanted = values_to_json(manifest.options);
  std::set<std::string> names;
  for (const auto& [name, value] : options.items()) names.insert(name);
  for (const auto& [name, value] : wanted.items()) names.insert(name);
  for (const std::string& name : names) {
    const auto* r = recorded(options, name.c_str());
    const auto* w = recorded(wanted, name.c_str());
    // Numbers compare by value (1 == 1.0), so an integer written by hand reads as its double.
    if (!r || !w || *r != *w) refuse(dir, name, path, fmt::format("\"options\".\"{}\"", name), shown(r), shown(w));
  }
}

}  // namespace

std::string base_solution_hash(const std::string& prompt, const std::string& text) {
  return fmt::format("fnv1a64:{:016x}", fnv1a64(Json::array({prompt, text}).dump(-1, ' ', false,
                                                                                 Json::error_handler_t::replace)));
}

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

RolloutStore::~RolloutStore() = default;
RolloutStore::RolloutStore(RolloutStore&&) noexcept = default;
RolloutStore& RolloutStore::operator=(RolloutStore&&) noexcept = default;

void RolloutStore::begin_writing(const RunManifest& manifest, const LockOptions& lock_options) {
  if (lock_) throw Error(fmt::format("RolloutStore::begin_writing: {}: this store already writes it", problem_dir_));
  if (manifest.base_solution_hash.empty())
    throw Error(fmt::format("RolloutStore::begin_writing: {}: the manifest has no base_solution_hash", problem_dir_));
  // Everything below runs under the lock (released again if it throws), so
  // two writers cannot both find the folder without a manifest and write one.
  auto lock = std::make_unique<FolderLock>(problem_dir_, kLockFile, lock_options.wait_seconds);
  const std::string path = (fs::path(problem_dir_) / kManifestFile).string();
  const bool recorded = file_exists(path);
  if (recorded) check_manifest(problem_dir_, path, manifest);
  // base_solution.json must hold this run's base solution too: in a folder
  // without a manifest (the authors', an older version's) that is what
  // adopting it checks; with one, it catches a base solution replaced by a
  // writer that checked nothing.
  const std::string base_file = hash_of_base_file(problem_dir_);
  if (!base_file.empty() && base_file != manifest.base_solution_hash)
    refuse(problem_dir_, "base solution", (fs::path(problem_dir_) / "base_solution.json").string(),
           "the hash of \"prompt\" and \"solution\"", Json(base_file).dump(), Json(manifest.base_solution_hash).dump());
  if (!recorded) {
    Json doc = Json::object();
    doc["format"] = kManifestFormat;
    doc["version"] = kManifestVersion;
    doc["base_solution_hash"] = manifest.base_solution_hash;
    doc["seed"] = manifest.seed;
    doc["options"] = Json(values_to_json(manifest.options));
    if (has_chunk_folders(problem_dir_) || has_chunk_folders(forced_dir_)) doc["adopted"] = true;
    write_file_atomic(path, doc.dump(2) + "\n");
  }
  lock_ = std::move(lock);
}

void RolloutStore::end_writing() { lock_.reset(); }

void RolloutStore::require_writer(const char* what) const {
  if (!lock_)
    throw Error(fmt::format("RolloutStore::{}: {}: this store is not the folder's writer; call begin_writing first",
                            what, problem_dir_));
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
  require_writer("write_problem");
  if (p.is_scenario()) {
    // The agentic layout: the scenario as it was read (its text is derived
    // from it again when read back, parse_scenario).
    const Json scenario = json_fields::parse<Json>(p.scenario, "Problem::scenario");
    if (!scenario.is_object())
      throw Error(fmt::format("RolloutStore::write_problem: Problem::scenario must be a JSON object, got {}",
                              scenario.type_name()));
    write_file_atomic((fs::path(problem_dir_) / "scenario.json").string(), dump(scenario));
    return;
  }
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
  require_writer("write_base_solution");
  Json j = Json::object();
  j["prompt"] = b.prompt;
  j["solution"] = b.solution;
  j["full_cot"] = b.full_cot;
  j["answer"] = b.answer;
  j["is_correct"] = optional_bool(b.is_correct);
  write_file_atomic((fs::path(problem_dir_) / "base_solution.json").string(), dump(j));
}

void RolloutStore::write_chunks(const std::string& source_text, const std::string& solution_text,
                                const std::vector<std::string>& chunks,
                                const std::vector<std::string>& separators) const {
  require_writer("write_chunks");
  if (!separators.empty() && separators.size() != chunks.size())
    throw Error(fmt::format("RolloutStore::write_chunks: {} separators for {} chunks", separators.size(),
                            chunks.size()));
  Json j = Json::object();
  j["source_text"] = source_text;
  j["solution_text"] = solution_text;
  j["chunks"] = chunks;
  if (!separators.empty()) j["separators"] = separators;
  write_file_atomic((fs::path(problem_dir_) / "chunks.json").string(), dump(j));
}

bool RolloutStore::has_problem() const {
  const fs::path dir(problem_dir_);
  return (file_exists((dir / "problem.json").string()) || file_exists((dir / "scenario.json").string())) &&
         file_exists((dir / "base_solution.json").string()) &&
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
  require_writer("append_rollouts");
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
  require_writer("remove_temp_files");
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
