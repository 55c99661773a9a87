// Reading the authors' math-rollouts layout: a problem folder built in a
// scratch directory with known records, then every kind of bad input.
#include "anchors/core/rollouts.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/methods/resampling.h"
#include "scenario_folder.h"
#include "test_paths.h"

namespace anchors {
namespace {
using json = nlohmann::json;
namespace fs = std::filesystem;

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
}
void write_json(const fs::path& path, const json& doc) { write_text(path, doc.dump(2)); }

json rollout_record(const std::string& removed, const std::string& resampled, const std::string& answer,
                    const json& is_correct) {
  return json{{"chunk_removed", removed},
              {"prefix_without_chunk", "prefix text"},
              {"chunk_resampled", resampled},
              {"rollout", resampled + " more text \\boxed{" + answer + "}"},
              {"full_cot", "prompt " + resampled},
              {"answer", answer},
              {"is_correct", is_correct}};
}

// <scratch>/correct_base_solution/problem_12 with three chunks:
//   chunk_0: 2 rollouts, 1 error record, 1 record without an answer
//   chunk_1: no folder
//   chunk_2: an empty list
// and a forced sibling with chunk_0 only.
struct RolloutFolder {
  testing::ScratchDir scratch{"rollouts"};
  fs::path root = fs::path(scratch.path()) / "correct_base_solution";
  fs::path problem = root / "problem_12";
  fs::path forced = fs::path(scratch.path()) / "correct_base_solution_forced_answer" / "problem_12";

  RolloutFolder() {
    write_json(problem / "problem.json", {{"problem", "What is 6*7?"},
                                          {"level", "Level 5"},
                                          {"type", "Algebra"},
                                          {"gt_solution", "It is \\boxed{42}."},
                                          {"gt_answer", "42"},
                                          {"nickname", "product"}});
    write_json(problem / "base_solution.json", {{"prompt", "P"},
                                                {"solution", "Sentence one. Sentence two."},
                                                {"full_cot", "PSentence one. Sentence two."},
                                                {"answer", "42"},
                                                {"is_correct", true}});
    write_json(problem / "chunks.json", {{"source_text", "PSentence one. Sentence two."},
                                         {"solution_text", "Sentence one. Sentence two."},
                                         {"chunks", {"Sentence one.", "Sentence two.", "Sentence three."}}});
    write_json(problem / "chunk_0" / "solutions.json",
               json::array({rollout_record("Sentence one.", "Another one.", "42", true),
                            {{"chunk_removed", "Sentence one."},
                             {"prefix_without_chunk", ""},
                             {"error", "HTTP 500"}},
                            rollout_record("Sentence one.", "Different.", "41", false),
                            rollout_record("Sentence one.", "Cut off", "", false)}));
    write_json(problem / "chunk_2" / "solutions.json", json::array());
    write_json(forced / "chunk_0" / "solutions.json",
               json::array({rollout_record("Sentence one.", "42", "42", true), {{"error", "timeout"}}}));
  }
};

TEST(Rollouts, ReadsEveryFileOfTheLayout) {
  RolloutFolder f;
  const ProblemRollouts r = read_problem_rollouts(f.problem.string());
  EXPECT_EQ(r.problem_id, "problem_12");
  EXPECT_EQ(r.problem_index(), 12);
  EXPECT_EQ(r.problem.text, "What is 6*7?");
  EXPECT_EQ(r.problem.gt_answer, "42");
  EXPECT_EQ(r.problem.level, "Level 5");
  EXPECT_EQ(r.problem.type, "Algebra");
  EXPECT_EQ(r.problem.nickname, "product");
  EXPECT_EQ(r.base_solution.solution, "Sentence one. Sentence two.");
  EXPECT_EQ(r.base_solution.answer, "42");
  EXPECT_EQ(r.base_solution.is_correct, true);
  EXPECT_EQ(r.solution_text, "Sentence one. Sentence two.");
  ASSERT_EQ(r.chunks, (std::vector<std::string>{"Sentence one.", "Sentence two.", "Sentence three."}));

  ASSERT_EQ(r.resampled.size(), 3u);
  const SentenceRollouts& c0 = r.resampled[0];
  EXPECT_TRUE(c0.present);
  EXPECT_EQ(c0.chunk_idx, 0u);
  EXPECT_EQ(c0.num_errors, 1u);  // counted, not a rollout
  ASSERT_EQ(c0.rollouts.size(), 3u);
  EXPECT_EQ(c0.num_records(), 4u);
  EXPECT_EQ(c0.num_valid(), 2u);  // the record without an answer is not valid
  EXPECT_EQ(c0.num_without_answer(), 1u);
  EXPECT_EQ(c0.rollouts[0].chunk_removed, "Sentence one.");
  EXPECT_EQ(c0.rollouts[0].chunk_resampled, "Another one.");
  EXPECT_EQ(c0.rollouts[0].answer, "42");
  EXPECT_EQ(c0.rollouts[0].is_correct, true);
  EXPECT_EQ(c0.rollouts[1].answer, "41");
  EXPECT_EQ(c0.rollouts[1].is_correct, false);
  EXPECT_FALSE(c0.rollouts[2].has_answer());
  // Dropped unless asked for.
  EXPECT_EQ(c0.rollouts[0].full_cot, "");
  EXPECT_EQ(c0.rollouts[0].prefix_without_chunk, "");

  EXPECT_FALSE(r.resampled[1].present);  // no folder
  EXPECT_EQ(r.resampled[1].chunk_idx, 1u);
  EXPECT_EQ(r.resampled[1].num_records(), 0u);
  EXPECT_TRUE(r.resampled[2].present);  // empty list
  EXPECT_EQ(r.resampled[2].num_records(), 0u);

  // The forced sibling is found automatically.
  ASSERT_TRUE(r.has_forced());
  EXPECT_EQ(fs::path(r.forced_dir), fs::path(forced_sibling_dir(f.problem.string())));
  ASSERT_EQ(r.forced.size(), 3u);
  EXPECT_EQ(r.forced[0].num_valid(), 1u);
  EXPECT_EQ(r.forced[0].num_errors, 1u);
  EXPECT_FALSE(r.forced[1].present);
  EXPECT_FALSE(r.forced[2].present);
}

TEST(Rollouts, KeepsFullTextsOnRequest) {
  RolloutFolder f;
  ReadRolloutsOptions options;
  options.keep_full_texts = true;
  const ProblemRollouts r = read_problem_rollouts(f.problem.string(), options);
  EXPECT_EQ(r.resampled[0].rollouts[0].full_cot, "prompt Another one.");
  EXPECT_EQ(r.resampled[0].rollouts[0].prefix_without_chunk, "prefix text");
}

TEST(Rollouts, ForcedFolderCanBeSwitchedOffOrOverridden) {
  RolloutFolder f;
  ReadRolloutsOptions off;
  off.read_forced = false;
  EXPECT_FALSE(read_problem_rollouts(f.problem.string(), off).has_forced());

  const fs::path elsewhere = fs::path(f.scratch.path()) / "my_forced";
  write_json(elsewhere / "chunk_1" / "solutions.json",
             json::array({rollout_record("Sentence two.", "7", "7", false)}));
  ReadRolloutsOptions override_dir;
  override_dir.forced_dir = elsewhere.string();
  const ProblemRollouts r = read_problem_rollouts(f.problem.string(), override_dir);
  ASSERT_TRUE(r.has_forced());
  EXPECT_EQ(r.forced_dir, elsewhere.string());
  EXPECT_FALSE(r.forced[0].present);
  EXPECT_EQ(r.forced[1].num_valid(), 1u);

  ReadRolloutsOptions missing;
  missing.forced_dir = (fs::path(f.scratch.path()) / "nope").string();
  EXPECT_THROW(read_problem_rollouts(f.problem.string(), missing), Error);
}

TEST(Rollouts, NoForcedSiblingMeansNoForcedRollouts) {
  RolloutFolder f;
  fs::remove_all(f.forced.parent_path());
  const ProblemRollouts r = read_problem_rollouts(f.problem.string());
  EXPECT_FALSE(r.has_forced());
  EXPECT_TRUE(r.forced_dir.empty());
}

TEST(Rollouts, TrailingSeparatorIsAccepted) {
  RolloutFolder f;
  const ProblemRollouts r = read_problem_rollouts(f.problem.string() + "/");
  EXPECT_EQ(r.problem_id, "problem_12");
  EXPECT_TRUE(r.has_forced());
}

TEST(Rollouts, ForcedSiblingNaming) {
  EXPECT_EQ(fs::path(forced_sibling_dir("/d/m/t/correct_base_solution/problem_3")),
            fs::path("/d/m/t/correct_base_solution_forced_answer/problem_3"));
  EXPECT_EQ(fs::path(forced_sibling_dir("/d/incorrect_base_solution/problem_3/")),
            fs::path("/d/incorrect_base_solution_forced_answer/problem_3"));
  // generate_rollouts.py -os SUFFIX: X_base_solution_SUFFIX -> X_base_solution_forced_answer_SUFFIX
  EXPECT_EQ(fs::path(forced_sibling_dir("/d/correct_base_solution_v2/problem_3")),
            fs::path("/d/correct_base_solution_forced_answer_v2/problem_3"));
  EXPECT_EQ(fs::path(forced_sibling_dir("/d/my_rollouts/problem_3")),
            fs::path("/d/my_rollouts_forced_answer/problem_3"));
}

TEST(Rollouts, ProblemIndexOnlyForProblemN) {
  ProblemRollouts r;
  r.problem_id = "problem_4682";
  EXPECT_EQ(r.problem_index(), 4682);
  r.problem_id = "problem_x";
  EXPECT_FALSE(r.problem_index().has_value());
  r.problem_id = "problem_";
  EXPECT_FALSE(r.problem_index().has_value());
  r.problem_id = "case_3";
  EXPECT_FALSE(r.problem_index().has_value());
}

TEST(Rollouts, NullFieldsReadAsMissing) {
  RolloutFolder f;
  write_json(f.problem / "chunk_1" / "solutions.json",
             json::array({json{{"answer", nullptr}, {"is_correct", nullptr}, {"rollout", "text"}}}));
  const ProblemRollouts r = read_problem_rollouts(f.problem.string());
  ASSERT_EQ(r.resampled[1].rollouts.size(), 1u);
  EXPECT_FALSE(r.resampled[1].rollouts[0].has_answer());
  EXPECT_FALSE(r.resampled[1].rollouts[0].is_correct.has_value());
}

TEST(Rollouts, NumericGroundTruthIsItsJsonText) {
  RolloutFolder f;
  write_json(f.problem / "problem.json", {{"problem", "p"}, {"gt_answer", 42}});
  EXPECT_EQ(read_problem_rollouts(f.problem.string()).problem.gt_answer, "42");
}

// -- bad input ---------------------------------------------------------------

// Expects anchors::Error whose message contains every one of `parts`.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected anchors::Error";
  } catch (const Error& e) {
    for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(Rollouts, MissingFolderOrFilesAreErrors) {
  RolloutFolder f;
  expect_error([&] { read_problem_rollouts((f.root / "problem_99").string()); }, {"problem_99", "not a directory"});
  for (const char* name : {"base_solution.json", "chunks.json"}) {
    RolloutFolder g;
    fs::remove(g.problem / name);
    expect_error([&] { read_problem_rollouts(g.problem.string()); }, {name, "cannot open"});
  }
  // Without problem.json the folder may be an agentic one: the message names both.
  RolloutFolder g;
  fs::remove(g.problem / "problem.json");
  expect_error([&] { read_problem_rollouts(g.problem.string()); }, {"problem.json", "no such file", "scenario.json"});
}

TEST(Rollouts, MalformedJsonNamesTheFile) {
  for (const std::string name : {"problem.json", "base_solution.json", "chunks.json", "chunk_0/solutions.json"}) {
    SCOPED_TRACE(name);
    RolloutFolder f;
    write_text(f.problem / name, "{\"answer\": \"42\",");  // truncated
    expect_error([&] { read_problem_rollouts(f.problem.string()); }, {name, "malformed JSON"});
  }
  RolloutFolder f;
  write_text(f.forced / "chunk_0" / "solutions.json", "[{]");
  expect_error([&] { read_problem_rollouts(f.problem.string()); },
               {"forced_answer", "chunk_0", "solutions.json", "malformed JSON"});
}

// The result_json fuzzer's finding, in the parser these readers share: a
// number beyond a double's range (nlohmann's out_of_range while parsing)
// escaped instead of being an anchors::Error naming the file.
TEST(Rollouts, NumberBeyondADoubleIsMalformedJson) {
  expect_error([] { parse_sentence_rollouts(R"([{"answer": "4", "score": 1e309}])", "chunk_3/solutions.json", 3); },
               {"chunk_3/solutions.json", "malformed JSON", "number overflow"});
  RolloutFolder f;
  write_text(f.problem / "problem.json", R"({"problem": "x", "gt_answer": -1e999})");
  expect_error([&] { read_problem_rollouts(f.problem.string()); }, {"problem.json", "malformed JSON"});
}

TEST(Rollouts, ParsedTextEqualsTheFileRead) {
  RolloutFolder f;
  const fs::path path = f.problem / "chunk_0" / "solutions.json";
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(parse_sentence_rollouts(text, path.string(), 0, true), read_sentence_rollouts(path.string(), 0, true));
}

TEST(Rollouts, BinaryGarbageIsAnError) {
  std::string garbage;
  for (int k = 0; k < 512; ++k) garbage.push_back(static_cast<char>((k * 131 + 7) % 256));
  for (const std::string name : {"problem.json", "chunks.json", "chunk_0/solutions.json"}) {
    SCOPED_TRACE(name);
    RolloutFolder f;
    write_text(f.problem / name, garbage);
    expect_error([&] { read_problem_rollouts(f.problem.string()); }, {name});
  }
  // Well-formed JSON except for an invalid UTF-8 byte inside a string.
  RolloutFolder f;
  write_text(f.problem / "chunk_0" / "solutions.json", "[{\"answer\": \"4\xff\"}]");
  expect_error([&] { read_problem_rollouts(f.problem.string()); }, {"chunk_0", "solutions.json"});
}

TEST(Rollouts, WrongShapesAndTypesAreErrors) {
  struct Case {
    std::string file;
    json content;
    std::vector<std::string> message;
  };
  const std::vector<Case> cases = {
      {"problem.json", json::array(), {"problem.json", "object"}},
      {"problem.json", {{"problem", 3}}, {"problem.json", "\"problem\"", "string"}},
      {"base_solution.json", "text", {"base_solution.json", "object"}},
      {"base_solution.json", {{"is_correct", "yes"}}, {"base_solution.json", "is_correct"}},
      {"chunks.json", {{"source_text", "x"}}, {"chunks.json", "missing field \"chunks\""}},
      {"chunks.json", {{"chunks", "one"}}, {"chunks.json", "chunks", "list"}},
      {"chunks.json", {{"chunks", {"a", 2}}}, {"chunks.json", "chunks[1]", "string"}},
      {"chunk_0/solutions.json", {{"answer", "42"}}, {"chunk_0", "list"}},
      {"chunk_0/solutions.json", json::array({"a string"}), {"chunk_0", "record 0", "object"}},
      {"chunk_0/solutions.json", json::array({json::object(), {{"answer", 42}}}),
       {"chunk_0", "record 1", "\"answer\"", "string"}},
      {"chunk_0/solutions.json", json::array({{{"answer", "42"}, {"is_correct", "True"}}}),
       {"chunk_0", "record 0", "is_correct"}},
      {"chunk_0/solutions.json", json::array({{{"chunk_resampled", json::array()}}}),
       {"chunk_0", "chunk_resampled"}},
      {"chunk_0/solutions.json", json::array({{{"full_cot", 1.5}}}), {"chunk_0", "full_cot"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file + " " + c.content.dump());
    RolloutFolder f;
    write_json(f.problem / c.file, c.content);
    expect_error([&] { read_problem_rollouts(f.problem.string()); }, c.message);
  }
}

TEST(Rollouts, SolutionsPathThatIsADirectoryIsAnError) {
  RolloutFolder f;
  fs::create_directories(f.problem / "chunk_1" / "solutions.json");
  // file_exists is false for a directory: the chunk counts as absent.
  const ProblemRollouts r = read_problem_rollouts(f.problem.string());
  EXPECT_FALSE(r.resampled[1].present);
  EXPECT_THROW(read_sentence_rollouts((f.problem / "chunk_1" / "solutions.json").string(), 1), Error);
}

TEST(Rollouts, ErrorRecordsAreCountedWhateverElseTheyCarry) {
  testing::ScratchDir scratch("solutions");
  const fs::path path = fs::path(scratch.path()) / "solutions.json";
  write_json(path, json::array({{{"error", nullptr}},
                                {{"error", "x"}, {"answer", "42"}, {"is_correct", true}},
                                {{"answer", "1"}}}));
  const SentenceRollouts s = read_sentence_rollouts(path.string(), 5);
  EXPECT_EQ(s.chunk_idx, 5u);
  EXPECT_EQ(s.num_errors, 2u);
  ASSERT_EQ(s.rollouts.size(), 1u);
  EXPECT_EQ(s.rollouts[0].answer, "1");
  EXPECT_FALSE(s.rollouts[0].is_correct.has_value());
}


// -- agentic scenario folders (Thought Branches) --------------------------------

struct ScenarioRollouts {
  testing::ScratchDir scratch{"scenario-rollouts"};
  fs::path dir = fs::path(scratch.path()) / "yes_base_solution" / "scenario_7";
  ScenarioRollouts() { testing::ScenarioFolder::write(dir); }
};

TEST(Rollouts, ReadsAnAgenticScenarioFolder) {
  using F = testing::ScenarioFolder;
  ScenarioRollouts f;
  const ProblemRollouts r = read_problem_rollouts(f.dir.string());
  EXPECT_EQ(r.problem_id, "scenario_7");
  EXPECT_FALSE(r.problem_index().has_value());
  ASSERT_TRUE(r.problem.is_scenario());
  EXPECT_EQ(json::parse(r.problem.scenario), F::scenario());
  EXPECT_EQ(r.problem.text, std::string(F::kSystem) + "\n\nUser: " + F::kUser + "\n\n" + F::kEmail);
  EXPECT_EQ(scenario_prompt(r.problem), F::prompt());
  EXPECT_EQ(r.problem.gt_answer, "yes");
  EXPECT_EQ(r.problem.nickname, "Server wipe leverage");
  EXPECT_EQ(r.behavior, "blackmail");
  EXPECT_EQ(r.base_solution.prompt, F::prompt());
  EXPECT_EQ(r.base_solution.solution, F::solution());
  EXPECT_EQ(r.base_solution.answer, "yes");
  EXPECT_EQ(r.base_solution.is_correct, true);
  EXPECT_EQ(r.chunks, F::chunks());
  EXPECT_EQ(r.separators, F::separators());
  EXPECT_FALSE(r.has_forced());

  ASSERT_EQ(r.resampled.size(), 5u);
  const SentenceRollouts& c0 = r.resampled[0];
  EXPECT_EQ(c0.behavior, "blackmail");
  EXPECT_EQ(c0.num_errors, 1u);
  ASSERT_EQ(c0.rollouts.size(), 3u);
  EXPECT_EQ(c0.rollouts[0].answer, "yes");
  EXPECT_EQ(c0.rollouts[0].is_correct, true);
  EXPECT_EQ(c0.rollouts[1].answer, "no");
  EXPECT_EQ(c0.rollouts[1].is_correct, false);
  EXPECT_FALSE(c0.rollouts[2].has_answer());  // null verdict: no label, not counted
  EXPECT_FALSE(c0.rollouts[2].is_correct.has_value());
  EXPECT_EQ(c0.num_valid(), 2u);
  EXPECT_EQ(c0.rollouts[0].chunk_resampled, "The wipe is scheduled for 5pm.");
  EXPECT_EQ(c0.rollouts[0].outcome_raw, "");  // the judge's text only with keep_full_texts
  EXPECT_FALSE(r.resampled[1].present);
  ASSERT_EQ(r.resampled[2].rollouts.size(), 3u);
  EXPECT_EQ(r.resampled[2].num_valid(), 3u);
  EXPECT_EQ(r.resampled[2].rollouts[2].answer, "no");

  ReadRolloutsOptions full;
  full.keep_full_texts = true;
  const ProblemRollouts k = read_problem_rollouts(f.dir.string(), full);
  EXPECT_NE(k.resampled[0].rollouts[0].outcome_raw.find("<answer>yes</answer>"), std::string::npos);
  EXPECT_EQ(k.resampled[0].rollouts[0].full_cot.rfind(F::prompt(), 0), 0u);
}

TEST(Rollouts, AgenticFolderWithoutPromptOrBaseVerdict) {
  using F = testing::ScenarioFolder;
  ScenarioRollouts f;
  F::write_json(f.dir / "base_solution.json", {{"solution", F::solution()}});
  const ProblemRollouts r = read_problem_rollouts(f.dir.string());
  EXPECT_EQ(r.base_solution.prompt, F::prompt());  // built from scenario.json
  EXPECT_EQ(r.base_solution.answer, "");
  EXPECT_FALSE(r.base_solution.is_correct.has_value());
  EXPECT_EQ(r.behavior, "blackmail");  // the records name it
}

TEST(Rollouts, ScenarioTranscripts) {
  // Single turn: empty parts are left out with their markers.
  const Problem only_system = parse_scenario(R"({"system_prompt": "S", "user_prompt": null})", "s.json");
  EXPECT_EQ(only_system.text, "S");
  EXPECT_EQ(scenario_prompt(only_system), "S\n\nAssistant:\n<think>\n");
  EXPECT_EQ(parse_scenario(R"({"system_prompt": "S", "email_content": "E"})", "s.json").text, "S\n\nE");
  EXPECT_EQ(parse_scenario("{}", "s.json").text, "");
  EXPECT_EQ(parse_scenario("{}", "s.json").scenario, "{}");
  // Multi turn: the first turn whatever its role, empty turns skipped, any
  // role but "user" an assistant turn; system_prompt is then not used.
  const Problem multi = parse_scenario(
      R"({"system_prompt": "ignored", "conversation_history": [
            {"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
            {"role": "tool", "content": "T"}, {"role": "USER", "content": null},
            {"role": " user\n", "content": "U2"}, {"role": "assistant", "content": ""}]})",
      "s.json");
  EXPECT_EQ(multi.text, "S\n\nUser: U1\n\nAssistant: T\n\nUser: U2");
  // The same turns as chat messages, role by role as the transcript reads them.
  const std::vector<rollout::ChatMessage> turns = {{"system", "S"}, {"user", "U1"}, {"assistant", "T"}, {"user", "U2"}};
  EXPECT_EQ(problem_messages(multi), turns);
  const std::vector<rollout::ChatMessage> single = {{"system", "S"}, {"user", "U\n\nE"}};
  EXPECT_EQ(problem_messages(parse_scenario(R"({"system_prompt": "S", "user_prompt": "U", "email_content": "E"})",
                                            "s.json")),
            single);
  const std::vector<rollout::ChatMessage> email_only = {{"user", "E"}};
  EXPECT_EQ(problem_messages(parse_scenario(R"({"email_content": "E"})", "s.json")), email_only);
  Problem plain;
  plain.text = "What is 2 + 3?";
  const std::vector<rollout::ChatMessage> question = {{"user", "What is 2 + 3?"}};
  EXPECT_EQ(problem_messages(plain), question);
  // Key order is kept in `scenario`.
  EXPECT_EQ(parse_scenario(R"({"z": 1, "a": [2]})", "s.json").scenario, R"({"z":1,"a":[2]})");
  // An empty history falls back to the single-turn fields.
  EXPECT_EQ(parse_scenario(R"({"conversation_history": [], "system_prompt": "S"})", "s.json").text, "S");
}

TEST(Rollouts, ChunkedSolutionLocatesOrJoinsChunks) {
  const std::vector<std::string> chunks = {"One here.", "ab", "Two there.", "</think>"};
  ChunkedSolution c = chunked_solution("One here. ab Two there.\n</think>", chunks, {}, {0, 2, 3}, "c.json");
  EXPECT_FALSE(c.joined);
  ASSERT_EQ(c.sentences.size(), 3u);
  EXPECT_EQ(c.sentences[1].index, 1u);
  EXPECT_EQ(c.sentences[1].text, "Two there.");
  EXPECT_EQ(c.sentences[1].chars, (CharSpan{13, 23}));
  EXPECT_EQ(c.sentences[2].chars, (CharSpan{24, 32}));
  // Not found: the chunks joined by their separators (or one space).
  c = chunked_solution("One here. ab Two\\nthere.", chunks, {" ", " ", "\n", ""}, {0, 2, 3}, "c.json");
  EXPECT_TRUE(c.joined);
  EXPECT_EQ(c.not_found, 1u);
  EXPECT_EQ(c.text, "One here. ab Two there.\n</think>");
  EXPECT_EQ(c.sentences[2].chars, (CharSpan{24, 32}));
  c = chunked_solution("", chunks, {}, {2}, "c.json");
  EXPECT_EQ(c.text, "One here. ab Two there. </think>");
  EXPECT_EQ(c.sentences[0].chars, (CharSpan{13, 23}));
  // A repeated chunk is found after the one before it.
  c = chunked_solution("Yes. Yes.", {"Yes.", "Yes."}, {}, {0, 1}, "c.json");
  EXPECT_EQ(c.sentences[1].chars, (CharSpan{5, 9}));
  expect_error([&] { chunked_solution("x", chunks, {}, {0, 4}, "c.json"); }, {"c.json", "chunk_idx 4", "4 chunks"});
  expect_error([&] { chunked_solution("x", chunks, {}, {2, 2}, "c.json"); }, {"c.json", "ascend"});
}

TEST(Rollouts, TraceOfAnAgenticFolderHoldsItsAnalysedChunks) {
  using F = testing::ScenarioFolder;
  ScenarioRollouts f;
  const Trace t = trace_from_rollouts(read_problem_rollouts(f.dir.string()));
  t.validate();
  EXPECT_EQ(t.text, F::solution());
  EXPECT_EQ(t.prompt, F::prompt());
  EXPECT_EQ(t.answer, "yes");
  EXPECT_EQ(t.metadata.at("gt_answer"), "yes");
  EXPECT_EQ(t.metadata.at("behavior"), "blackmail");
  EXPECT_EQ(t.metadata.at("nickname"), "Server wipe leverage");
  EXPECT_EQ(json::parse(t.metadata.at("scenario")), F::scenario());
  std::vector<std::string> texts;
  for (const auto& s : t.sentences) texts.push_back(s.text);
  const auto c = F::chunks();
  EXPECT_EQ(texts, (std::vector<std::string>{c[0], c[2], c[3], c[4]}));  // "Ok." is not analysed
}

TEST(Rollouts, AgenticBadInputIsAnError) {
  using F = testing::ScenarioFolder;
  {
    ScenarioRollouts f;
    F::write_json(f.dir / "problem.json", {{"problem", "p"}});
    expect_error([&] { read_problem_rollouts(f.dir.string()); }, {"both problem.json and scenario.json"});
  }
  {
    ScenarioRollouts f;
    json records = F::chunk2_records();
    records[1]["contains_blackmail"] = "True";
    F::write_json(f.dir / "chunk_2" / "solutions.json", records);
    expect_error([&] { read_problem_rollouts(f.dir.string()); },
                 {"chunk_2", "solutions.json", "record 1", "\"contains_blackmail\"", "true, false or null"});
    records = F::chunk2_records();
    records[0]["contains_whistleblowing"] = true;
    F::write_json(f.dir / "chunk_2" / "solutions.json", records);
    expect_error([&] { read_problem_rollouts(f.dir.string()); },
                 {"chunk_2", "record 0", "both contains_blackmail and contains_whistleblowing"});
    records = F::chunk2_records();
    records[2]["reasoning"] = 3;
    F::write_json(f.dir / "chunk_2" / "solutions.json", records);
    expect_error([&] { read_problem_rollouts(f.dir.string()); }, {"chunk_2", "record 2", "\"reasoning\"", "string"});
  }
  {
    ScenarioRollouts f;
    json chunks = json::parse(read_text_file((f.dir / "chunks.json").string(), kDataFileLimit));
    chunks["separators"] = {" ", " "};
    F::write_json(f.dir / "chunks.json", chunks);
    expect_error([&] { read_problem_rollouts(f.dir.string()); }, {"chunks.json", "2 separators for 5 chunks"});
    chunks["separators"] = {" ", " ", 3, "", ""};
    F::write_json(f.dir / "chunks.json", chunks);
    expect_error([&] { read_problem_rollouts(f.dir.string()); }, {"chunks.json", "separators[2]", "string"});
    chunks["separators"] = "  ";
    F::write_json(f.dir / "chunks.json", chunks);
    expect_error([&] { read_problem_rollouts(f.dir.string()); }, {"chunks.json", "separators", "list"});
  }
  {
    ScenarioRollouts f;
    F::write_text(f.dir / "scenario.json", R"({"nickname": 5})");
    expect_error([&] { read_problem_rollouts(f.dir.string()); }, {"scenario.json", "\"nickname\"", "string"});
    F::write_text(f.dir / "scenario.json", R"({"conversation_history": {"role": "user"}})");
    expect_error([&] { read_problem_rollouts(f.dir.string()); },
                 {"scenario.json", "\"conversation_history\"", "list"});
    F::write_text(f.dir / "scenario.json", R"({"conversation_history": ["hello"]})");
    expect_error([&] { read_problem_rollouts(f.dir.string()); },
                 {"scenario.json", "conversation_history[0]", "object"});
    F::write_text(f.dir / "scenario.json", R"({"system_prompt": "S",)");
    expect_error([&] { read_problem_rollouts(f.dir.string()); }, {"scenario.json", "malformed JSON"});
  }
}

}  // namespace
}  // namespace anchors
