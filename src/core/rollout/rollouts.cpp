#include "anchors/core/rollouts.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "json_fields.h"
#include "verdict_fields.h"

namespace anchors {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Parses a whole file; every failure names the file.
json parse_json_file(const std::string& path) { return json_fields::read_file(path, kDataFileLimit); }

// "what" names the place in the file, e.g. "record 3" or "top level".
[[noreturn]] void wrong_type(const std::string& path, const std::string& what,
                             const std::string& field, const char* expected, const json& got) {
  throw Error(fmt::format("{}: {}: field \"{}\" must be {}, got {}", path, what, field, expected,
                          got.type_name()));
}

// Missing and null read as "" (the authors' code uses .get(key, "")).
std::string optional_string(const json& object, const char* field, const std::string& path,
                            const std::string& what) {
  const auto it = object.find(field);
  if (it == object.end() || it->is_null()) return {};
  if (!it->is_string()) wrong_type(path, what, field, "a string", *it);
  return it->get<std::string>();
}

std::optional<bool> optional_bool(const json& object, const char* field, const std::string& path,
                                  const std::string& what) {
  const auto it = object.find(field);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) wrong_type(path, what, field, "true or false", *it);
  return it->get<bool>();
}

void require_object(const json& value, const std::string& path, const std::string& what) {
  if (!value.is_object()) {
    throw Error(fmt::format("{}: {} must be a JSON object, got {}", path, what, value.type_name()));
  }
}

Problem read_problem(const std::string& path) {
  const json doc = parse_json_file(path);
  require_object(doc, path, "the top level");
  Problem problem;
  const std::string what = "problem";
  problem.text = optional_string(doc, "problem", path, what);
  // Some datasets store numeric ground-truth answers as JSON numbers; their
  // JSON text is the answer.
  const auto gt = doc.find("gt_answer");
  if (gt != doc.end() && gt->is_number()) {
    problem.gt_answer = gt->dump();
  } else {
    problem.gt_answer = optional_string(doc, "gt_answer", path, what);
  }
  problem.gt_solution = optional_string(doc, "gt_solution", path, what);
  problem.level = optional_string(doc, "level", path, what);
  problem.type = optional_string(doc, "type", path, what);
  problem.nickname = optional_string(doc, "nickname", path, what);
  return problem;
}

// `behavior` is set to the verdict's behaviour when the file has one.
BaseSolution read_base_solution(const std::string& path, std::string& behavior) {
  const json doc = parse_json_file(path);
  require_object(doc, path, "the top level");
  const std::string what = "base solution";
  BaseSolution base;
  base.prompt = optional_string(doc, "prompt", path, what);
  base.solution = optional_string(doc, "solution", path, what);
  base.full_cot = optional_string(doc, "full_cot", path, what);
  base.answer = optional_string(doc, "answer", path, what);
  base.is_correct = optional_bool(doc, "is_correct", path, what);
  optional_string(doc, "reasoning", path, what);  // the judge's text: type-checked, not kept
  const verdict_fields::Verdict verdict = verdict_fields::read(doc, fmt::format("{}: {}", path, what));
  if (verdict.present()) {
    behavior = verdict.behavior;
    if (verdict.value) {
      base.answer = verdict.answer();
      base.is_correct = verdict.value;
    }
  }
  return base;
}

// problem.json, or scenario.json in an agentic folder: exactly one of them.
Problem read_problem_or_scenario(const fs::path& dir) {
  const std::string problem_path = (dir / "problem.json").string();
  const std::string scenario_path = (dir / "scenario.json").string();
  const bool has_problem = file_exists(problem_path), has_scenario = file_exists(scenario_path);
  if (has_problem && has_scenario)
    throw Error(fmt::format("{}: both problem.json and scenario.json (a folder holds one problem or one scenario)",
                            dir.string()));
  if (has_scenario) return parse_scenario(read_text_file(scenario_path, kDataFileLimit), scenario_path);
  if (!has_problem && !fs::exists(problem_path))
    throw Error(fmt::format("{}: no such file, and no scenario.json either (a problem folder needs problem.json, "
                            "an agentic scenario folder scenario.json)",
                            problem_path));
  return read_problem(problem_path);  // also when the path is not a regular file: read_text_file says why
}

// A scenario.json string field: missing and null read as "".
std::string scenario_string(const nlohmann::ordered_json& object, const char* field, const std::string& where) {
  const auto it = object.find(field);
  if (it == object.end() || it->is_null()) return {};
  if (!it->is_string())
    throw Error(fmt::format("{}: field \"{}\" must be a string, got {}", where, field, it->type_name()));
  return it->get<std::string>();
}

// A conversation_history turn's role is "user" in any case and spacing; the
// authors' builder reads every other role as the assistant's.
bool is_user_role(std::string role) {
  const auto first = role.find_first_not_of(" \t\n\r");
  role = first == std::string::npos ? "" : role.substr(first, role.find_last_not_of(" \t\n\r") - first + 1);
  for (char& c : role) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return role == "user";
}

std::string folder_name(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // trailing separator
  return p.filename().string();
}

}  // namespace

std::size_t SentenceRollouts::num_valid() const {
  return static_cast<std::size_t>(
      std::count_if(rollouts.begin(), rollouts.end(), [](const Rollout& r) { return r.has_answer(); }));
}

std::optional<std::int64_t> ProblemRollouts::problem_index() const {
  static const std::string kPrefix = "problem_";
  if (problem_id.size() <= kPrefix.size() || problem_id.compare(0, kPrefix.size(), kPrefix) != 0) {
    return std::nullopt;
  }
  std::int64_t value = 0;
  const char* begin = problem_id.data() + kPrefix.size();
  const char* end = problem_id.data() + problem_id.size();
  const auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

SentenceRollouts read_sentence_rollouts(const std::string& path, std::size_t chunk_idx,
                                        bool keep_full_texts) {
  return parse_sentence_rollouts(read_text_file(path, kDataFileLimit), path, chunk_idx, keep_full_texts);
}

SentenceRollouts parse_sentence_rollouts(const std::string& json_text, const std::string& path,
                                         std::size_t chunk_idx, bool keep_full_texts) {
  const json doc = json_fields::parse(json_text, path);
  if (!doc.is_array()) {
    throw Error(fmt::format("{}: expected a JSON list of rollout records, got {}", path,
                            doc.type_name()));
  }
  SentenceRollouts out;
  out.chunk_idx = chunk_idx;
  out.present = true;
  out.rollouts.reserve(doc.size());
  for (std::size_t k = 0; k < doc.size(); ++k) {
    const json& record = doc[k];
    const std::string what = fmt::format("record {}", k);
    require_object(record, path, what);
    // A failed request leaves {"error": ...} (possibly with chunk_removed and
    // prefix_without_chunk): it says nothing about the answer distribution.
    if (record.contains("error")) {
      ++out.num_errors;
      continue;
    }
    Rollout r;
    r.chunk_removed = optional_string(record, "chunk_removed", path, what);
    r.chunk_resampled = optional_string(record, "chunk_resampled", path, what);
    r.rollout = optional_string(record, "rollout", path, what);
    r.answer = optional_string(record, "answer", path, what);
    r.is_correct = optional_bool(record, "is_correct", path, what);
    r.outcome_raw = optional_string(record, "outcome_raw", path, what);
    // The agentic files' verdict is the label: "yes" / "no" with is_correct =
    // the verdict (the behaviour is the target outcome); null leaves the
    // record without one, as the authors' rates leave it out.
    const verdict_fields::Verdict verdict = verdict_fields::read(record, fmt::format("{}: {}", path, what));
    if (verdict.present() && out.behavior.empty()) out.behavior = verdict.behavior;
    if (verdict.value) {
      r.answer = verdict.answer();
      r.is_correct = verdict.value;
    }
    // Checked for type even when dropped, so bad files fail the same way.
    std::string prefix = optional_string(record, "prefix_without_chunk", path, what);
    std::string full_cot = optional_string(record, "full_cot", path, what);
    std::string reasoning = optional_string(record, "reasoning", path, what);
    if (keep_full_texts) {
      r.prefix_without_chunk = std::move(prefix);
      r.full_cot = std::move(full_cot);
      if (r.outcome_raw.empty()) r.outcome_raw = std::move(reasoning);
    }
    out.rollouts.push_back(std::move(r));
  }
  return out;
}

std::string forced_sibling_dir(const std::string& problem_dir) {
  fs::path problem = fs::path(problem_dir).lexically_normal();
  if (problem.filename().empty()) problem = problem.parent_path();
  if (!problem.has_parent_path()) problem = fs::absolute(problem).lexically_normal();
  const fs::path parent = problem.parent_path();
  std::string name = parent.filename().string();
  static const std::string kMarker = "_base_solution";
  const std::size_t at = name.rfind(kMarker);
  if (at == std::string::npos) {
    name += "_forced_answer";
  } else {
    name.insert(at + kMarker.size(), "_forced_answer");
  }
  return (parent.parent_path() / name / problem.filename()).string();
}

Problem parse_scenario(const std::string& json_text, const std::string& source) {
  using ordered = nlohmann::ordered_json;
  const ordered doc = json_fields::parse<ordered>(json_text, source);
  if (!doc.is_object())
    throw Error(fmt::format("{}: expected a JSON object (a scenario), got {}", source, doc.type_name()));
  Problem out;
  out.scenario = doc.dump();
  out.gt_answer = "yes";
  if (const std::string target = scenario_string(doc, "target", source); !target.empty()) out.gt_answer = target;
  out.nickname = scenario_string(doc, "nickname", source);
  const std::string system = scenario_string(doc, "system_prompt", source);
  const std::string user = scenario_string(doc, "user_prompt", source);
  const std::string email = scenario_string(doc, "email_content", source);

  const auto history = doc.find("conversation_history");
  if (history != doc.end() && !history->is_null() && !history->is_array())
    throw Error(fmt::format("{}: field \"conversation_history\" must be a list of {{role, content}} turns, got {}",
                            source, history->type_name()));
  if (history != doc.end() && history->is_array() && !history->empty()) {
    // The multi-turn builder (measure_determination.py, build_full_conversation_prefill).
    for (std::size_t k = 0; k < history->size(); ++k) {
      const ordered& turn = (*history)[k];
      const std::string where = fmt::format("{}: conversation_history[{}]", source, k);
      if (!turn.is_object())
        throw Error(fmt::format("{}: must be an object {{role, content}}, got {}", where, turn.type_name()));
      const bool user = is_user_role(scenario_string(turn, "role", where));
      const std::string content = scenario_string(turn, "content", where);
      if (k == 0) {
        out.text += content;  // the system text, whatever its role
        continue;
      }
      if (content.empty()) continue;  // the empty assistant placeholders
      out.text += (user ? "\n\nUser: " : "\n\nAssistant: ") + content;
    }
    return out;
  }
  // The single-turn builder (onpolicy_chain_disruption.py, build_prefill_text;
  // measure_determination.py's gives the same text when every part is there).
  out.text = system;
  if (!user.empty()) out.text += "\n\nUser: " + user;
  if (!email.empty()) out.text += "\n\n" + email;
  return out;
}

std::string scenario_prompt(const Problem& scenario) { return scenario.text + kScenarioAssistantOpener; }

std::vector<rollout::ChatMessage> problem_messages(const Problem& problem) {
  if (!problem.is_scenario()) return {{"user", problem.text}};
  using ordered = nlohmann::ordered_json;
  const std::string source = "scenario";
  const ordered doc = json_fields::parse<ordered>(problem.scenario, source);
  std::vector<rollout::ChatMessage> out;
  const auto add = [&out](std::string role, const std::string& content) {
    if (!content.empty()) out.push_back({std::move(role), content});
  };
  if (const auto history = doc.find("conversation_history");
      history != doc.end() && history->is_array() && !history->empty()) {
    for (std::size_t k = 0; k < history->size(); ++k) {
      const std::string where = fmt::format("{}: conversation_history[{}]", source, k);
      if (!(*history)[k].is_object())
        throw Error(fmt::format("{}: must be an object {{role, content}}, got {}", where, (*history)[k].type_name()));
      const bool user = is_user_role(scenario_string((*history)[k], "role", where));
      add(k == 0 ? "system" : user ? "user" : "assistant", scenario_string((*history)[k], "content", where));
    }
    return out;
  }
  add("system", scenario_string(doc, "system_prompt", source));
  std::string user = scenario_string(doc, "user_prompt", source);
  if (const std::string email = scenario_string(doc, "email_content", source); !email.empty())
    user += (user.empty() ? "" : "\n\n") + email;
  add("user", user);
  return out;
}

ChunkedSolution chunked_solution(const std::string& solution, const std::vector<std::string>& chunks,
                                 const std::vector<std::string>& separators, const std::vector<std::size_t>& selected,
                                 const std::string& source) {
  for (std::size_t k = 0; k < selected.size(); ++k) {
    if (selected[k] >= chunks.size())
      throw Error(fmt::format("{}: chunk_idx {} is out of range ({} chunks)", source, selected[k], chunks.size()));
    if (k > 0 && selected[k] <= selected[k - 1])
      throw Error(fmt::format("{}: chunk_idx {} follows chunk_idx {} (they must ascend)", source, selected[k],
                              selected[k - 1]));
  }
  ChunkedSolution out;
  out.sentences.resize(selected.size());
  std::size_t cursor = 0;
  for (std::size_t k = 0; k < selected.size() && !out.not_found; ++k) {
    const std::string& chunk = chunks[selected[k]];
    const std::size_t at = solution.find(chunk, cursor);
    if (at == std::string::npos) {
      out.not_found = k;
      break;
    }
    out.sentences[k].chars = {at, at + chunk.size()};
    cursor = at + chunk.size();
  }
  if (!out.not_found) {
    out.text = solution;
  } else {
    // The text the chunks describe, each at its own offset.
    out.joined = true;
    std::vector<std::size_t> begin(chunks.size());
    for (std::size_t j = 0; j < chunks.size(); ++j) {
      begin[j] = out.text.size();
      out.text += chunks[j];
      if (j < separators.size()) {
        out.text += separators[j];
      } else if (separators.empty() && j + 1 < chunks.size()) {
        out.text += ' ';
      }
    }
    for (std::size_t k = 0; k < selected.size(); ++k)
      out.sentences[k].chars = {begin[selected[k]], begin[selected[k]] + chunks[selected[k]].size()};
  }
  for (std::size_t k = 0; k < selected.size(); ++k) {
    out.sentences[k].index = k;
    out.sentences[k].text = chunks[selected[k]];
  }
  return out;
}

ChunksFile read_chunks_file(const std::string& chunks_path) {
  ChunksFile out;
  const json chunks_doc = parse_json_file(chunks_path);
  require_object(chunks_doc, chunks_path, "the top level");
  out.source_text = optional_string(chunks_doc, "source_text", chunks_path, "chunks file");
  out.solution_text = optional_string(chunks_doc, "solution_text", chunks_path, "chunks file");
  const auto chunks = chunks_doc.find("chunks");
  if (chunks == chunks_doc.end()) {
    throw Error(fmt::format("{}: missing field \"chunks\" (the list of sentences)", chunks_path));
  }
  if (!chunks->is_array()) wrong_type(chunks_path, "chunks file", "chunks", "a list", *chunks);
  for (std::size_t k = 0; k < chunks->size(); ++k) {
    const json& chunk = (*chunks)[k];
    if (!chunk.is_string()) {
      throw Error(fmt::format("{}: chunks[{}] must be a string, got {}", chunks_path, k,
                              chunk.type_name()));
    }
    out.chunks.push_back(chunk.get<std::string>());
  }
  const auto separators = chunks_doc.find("separators");
  if (separators != chunks_doc.end() && !separators->is_null()) {
    if (!separators->is_array()) wrong_type(chunks_path, "chunks file", "separators", "a list", *separators);
    if (separators->size() != out.chunks.size())
      throw Error(fmt::format("{}: {} separators for {} chunks (one separator follows each chunk)", chunks_path,
                              separators->size(), out.chunks.size()));
    for (std::size_t k = 0; k < separators->size(); ++k) {
      const json& separator = (*separators)[k];
      if (!separator.is_string())
        throw Error(fmt::format("{}: separators[{}] must be a string, got {}", chunks_path, k, separator.type_name()));
      out.separators.push_back(separator.get<std::string>());
    }
  }

  return out;
}

ProblemRollouts read_problem_rollouts(const std::string& problem_dir,
                                      const ReadRolloutsOptions& options) {
  if (!directory_exists(problem_dir)) {
    throw Error(fmt::format("{}: not a directory (expected a problem folder with problem.json (or an agentic "
                            "scenario.json), base_solution.json, chunks.json and chunk_i/solutions.json)",
                            problem_dir));
  }
  const fs::path dir(problem_dir);
  ProblemRollouts out;
  out.problem_dir = problem_dir;
  out.problem_id = folder_name(problem_dir);
  out.problem = read_problem_or_scenario(dir);
  out.base_solution = read_base_solution((dir / "base_solution.json").string(), out.behavior);
  if (out.problem.is_scenario() && out.base_solution.prompt.empty())
    out.base_solution.prompt = scenario_prompt(out.problem);

  ChunksFile chunks_file = read_chunks_file((dir / "chunks.json").string());
  out.source_text = std::move(chunks_file.source_text);
  out.solution_text = std::move(chunks_file.solution_text);
  out.chunks = std::move(chunks_file.chunks);
  out.separators = std::move(chunks_file.separators);

  const auto read_all = [&](const fs::path& root) {
    std::vector<SentenceRollouts> all(out.chunks.size());
    for (std::size_t i = 0; i < out.chunks.size(); ++i) {
      const std::string path = (root / fmt::format("chunk_{}", i) / "solutions.json").string();
      if (file_exists(path)) {
        all[i] = read_sentence_rollouts(path, i, options.keep_full_texts);
      } else {
        all[i].chunk_idx = i;
      }
    }
    return all;
  };
  out.resampled = read_all(dir);
  if (out.behavior.empty()) {
    // No verdict in base_solution.json: the first record's names the behaviour.
    for (const auto& sentence : out.resampled) {
      if (!sentence.behavior.empty()) {
        out.behavior = sentence.behavior;
        break;
      }
    }
  }

  if (!options.forced_dir.empty()) {
    if (!directory_exists(options.forced_dir)) {
      throw Error(fmt::format("{}: forced-answer folder does not exist", options.forced_dir));
    }
    out.forced_dir = options.forced_dir;
  } else if (options.read_forced) {
    const std::string sibling = forced_sibling_dir(problem_dir);
    if (directory_exists(sibling)) out.forced_dir = sibling;
  }
  if (!out.forced_dir.empty()) out.forced = read_all(fs::path(out.forced_dir));
  return out;
}

}  // namespace anchors
