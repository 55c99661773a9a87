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
  for (const char* name : {"problem.json", "base_solution.json", "chunks.json"}) {
    RolloutFolder g;
    fs::remove(g.problem / name);
    expect_error([&] { read_problem_rollouts(g.problem.string()); }, {name, "cannot open"});
  }
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

}  // namespace
}  // namespace anchors
