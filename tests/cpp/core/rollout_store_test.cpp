// The rollout store (anchors/rollout/rollout_store.h): what it writes reads back
// through read_problem_rollouts, every write is atomic (no temporary files left,
// a crash's half-written temp file is ignored), and the resume rules (missing,
// missing_indices, error records dropped on the next append).
#include "anchors/rollout/rollout_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "test_paths.h"

namespace anchors::rollout {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

Rollout make_rollout(const std::string& removed, const std::string& text, const std::string& answer,
                     std::optional<bool> correct) {
  Rollout r;
  r.chunk_removed = removed;
  r.prefix_without_chunk = "First. ";
  r.chunk_resampled = text.substr(0, text.find('.') + 1);
  r.rollout = text;
  r.full_cot = "PROMPT First. " + text;
  r.answer = answer;
  r.is_correct = correct;
  return r;
}

RolloutRecord record(const Rollout& r, std::int64_t index = -1) {
  RolloutRecord rec;
  rec.rollout = r;
  rec.sample_index = index;
  return rec;
}

// Every regular file under `root` (relative paths).
std::vector<std::string> files_under(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(root))
    if (entry.is_regular_file()) out.push_back(fs::relative(entry.path(), root).string());
  std::sort(out.begin(), out.end());
  return out;
}

struct RolloutStoreTest : ::testing::Test {
  anchors::testing::ScratchDir scratch{"rollout-store"};
  std::string dir = RolloutStore::layout_dir(scratch.path(), "correct", 7);
  RolloutStore store{dir};

  void write_problem_files() {
    Problem p;
    p.text = "What is 6*7? \u00e9";
    p.gt_answer = "42";
    p.level = "Level 1";
    p.type = "Prealgebra";
    p.gt_solution = "\\boxed{42}";
    p.nickname = "product";
    store.write_problem(p);
    BaseSolution b;
    b.prompt = "PROMPT ";
    b.solution = "First. Second. \\boxed{42}";
    b.full_cot = b.prompt + b.solution;
    b.answer = "42";
    b.is_correct = true;
    store.write_base_solution(b);
    store.write_chunks("src", b.solution, {"First.", "Second.", "\\boxed{42}"});
  }
};

TEST_F(RolloutStoreTest, LayoutPaths) {
  EXPECT_EQ(fs::path(dir), fs::path(scratch.path()) / "correct_base_solution" / "problem_7");
  EXPECT_EQ(fs::path(store.forced_dir()),
            fs::path(scratch.path()) / "correct_base_solution_forced_answer" / "problem_7");
  EXPECT_EQ(fs::path(store.solutions_path(3, false)), fs::path(dir) / "chunk_3" / "solutions.json");
  EXPECT_EQ(fs::path(store.solutions_path(3, true)), fs::path(store.forced_dir()) / "chunk_3" / "solutions.json");
  EXPECT_THROW(RolloutStore::layout_dir(scratch.path(), "", 1), Error);
  EXPECT_THROW(RolloutStore(""), Error);
  // An explicit forced folder wins.
  RolloutStore other(dir, scratch.file("elsewhere"));
  EXPECT_EQ(other.forced_dir(), scratch.file("elsewhere"));
}

TEST_F(RolloutStoreTest, RoundTripThroughTheReader) {
  EXPECT_FALSE(store.has_problem());
  write_problem_files();
  EXPECT_TRUE(store.has_problem());
  const Rollout a = make_rollout("First.", "Again. So \\boxed{42}", "42", true);
  const Rollout b = make_rollout("First.", "Hmm. \\boxed{41}", "41", false);
  const Rollout cut = make_rollout("First.", "Cut off", "", std::nullopt);
  store.append_rollouts(0, false, {record(a, 0), record(b, 1)});
  store.append_rollouts(0, false, {record(cut, 2), RolloutRecord::failure("HTTP 500", "First.", "", 3)});
  store.append_rollouts(2, false, {});
  store.append_rollouts(1, true, {record(make_rollout("Second.", "42}", "42", true))});

  const ProblemRollouts read = read_problem_rollouts(dir, {.keep_full_texts = true});
  EXPECT_EQ(read.problem_id, "problem_7");
  EXPECT_EQ(read.problem.text, "What is 6*7? \u00e9");
  EXPECT_EQ(read.problem.gt_answer, "42");
  EXPECT_EQ(read.problem.nickname, "product");
  EXPECT_EQ(read.base_solution.full_cot, "PROMPT First. Second. \\boxed{42}");
  EXPECT_EQ(read.base_solution.is_correct, std::optional<bool>(true));
  EXPECT_EQ(read.chunks, (std::vector<std::string>{"First.", "Second.", "\\boxed{42}"}));
  EXPECT_EQ(read.source_text, "src");
  ASSERT_EQ(read.resampled.size(), 3u);
  EXPECT_TRUE(read.resampled[0].present);
  EXPECT_EQ(read.resampled[0].rollouts, (std::vector<Rollout>{a, b, cut}));
  EXPECT_EQ(read.resampled[0].num_errors, 1u);
  EXPECT_EQ(read.resampled[0].num_valid(), 2u);
  EXPECT_FALSE(read.resampled[1].present);
  EXPECT_TRUE(read.resampled[2].present);
  EXPECT_TRUE(read.resampled[2].rollouts.empty());
  ASSERT_TRUE(read.has_forced());
  EXPECT_EQ(read.forced_dir, store.forced_dir());
  EXPECT_FALSE(read.forced[0].present);
  EXPECT_EQ(read.forced[1].rollouts.size(), 1u);

  // store.read() is the same view.
  EXPECT_EQ(store.read(true).resampled, read.resampled);
  EXPECT_EQ(store.read(true).forced, read.forced);

  // The records are written in the authors' key order, with sample_index added.
  const json doc = json::parse(read_text_file(store.solutions_path(0, false), kDataFileLimit));
  ASSERT_EQ(doc.size(), 4u);
  EXPECT_EQ(doc[0]["sample_index"], 0);
  EXPECT_TRUE(doc[2]["is_correct"].is_null());
  EXPECT_EQ(doc[3]["error"], "HTTP 500");
  EXPECT_EQ(doc[3]["chunk_removed"], "First.");
  EXPECT_FALSE(doc[3].contains("answer"));
  const std::string text = read_text_file(store.solutions_path(0, false), kDataFileLimit);
  EXPECT_LT(text.find("\"chunk_removed\""), text.find("\"chunk_resampled\""));
  EXPECT_LT(text.find("\"rollout\""), text.find("\"answer\""));
}

TEST_F(RolloutStoreTest, WritesLeaveNoTemporaryFiles) {
  write_problem_files();
  for (int k = 0; k < 5; ++k) store.append_rollouts(0, false, {record(make_rollout("First.", "x \\boxed{1}", "1", false))});
  store.append_rollouts(0, true, {record(make_rollout("First.", "1}", "1", false))});
  EXPECT_EQ(files_under(dir), (std::vector<std::string>{"base_solution.json", "chunk_0/solutions.json",
                                                         "chunks.json", "problem.json"}));
  EXPECT_EQ(files_under(store.forced_dir()), (std::vector<std::string>{"chunk_0/solutions.json"}));
  EXPECT_EQ(store.load_rollouts(0, false).rollouts.size(), 5u);
  EXPECT_EQ(store.remove_temp_files(), 0u);
}

TEST_F(RolloutStoreTest, ResumeCountsOnlyNonErrorRecordsAndDropsErrorsOnAppend) {
  write_problem_files();
  EXPECT_EQ(store.missing(0, false, 4), 4u);
  EXPECT_EQ(store.missing_indices(0, false, 4), (std::vector<std::int64_t>{0, 1, 2, 3}));
  const SentenceRollouts none = store.load_rollouts(0, false);
  EXPECT_FALSE(none.present);
  EXPECT_EQ(none.num_records(), 0u);

  // A first (interrupted) run: samples 0 and 2 done, 1 and 3 failed.
  const Rollout ok = make_rollout("First.", "Yes. \\boxed{42}", "42", true);
  const Rollout no_answer = make_rollout("First.", "Cut", "", std::nullopt);
  store.append_rollouts(0, false, {record(ok, 0), RolloutRecord::failure("timeout", "First.", "", 1),
                                   record(no_answer, 2), RolloutRecord::failure("HTTP 503", "First.", "", 3)});
  SentenceRollouts now = store.load_rollouts(0, false);
  EXPECT_EQ(now.rollouts.size(), 2u);
  EXPECT_EQ(now.num_errors, 2u);
  // A rollout without an answer is a real sample: it counts as done.
  EXPECT_EQ(store.missing(0, false, 4), 2u);
  EXPECT_EQ(store.missing_indices(0, false, 4), (std::vector<std::int64_t>{1, 3}));
  EXPECT_EQ(store.missing(0, false, 2), 0u);
  EXPECT_TRUE(store.missing_indices(0, false, 2).empty());
  EXPECT_EQ(store.missing(0, false, 10), 8u);

  // The resumed run retries 1 (again failing) and 3: the earlier error records go.
  store.append_rollouts(0, false, {RolloutRecord::failure("timeout again", "First.", "", 1), record(ok, 3)});
  now = store.load_rollouts(0, false);
  EXPECT_EQ(now.rollouts.size(), 3u);
  EXPECT_EQ(now.num_errors, 1u);
  EXPECT_EQ(store.missing_indices(0, false, 4), (std::vector<std::int64_t>{1}));
  store.append_rollouts(0, false, {record(ok, 1)});
  now = store.load_rollouts(0, false);
  EXPECT_EQ(now.rollouts.size(), 4u);
  EXPECT_EQ(now.num_errors, 0u);
  EXPECT_EQ(store.missing(0, false, 4), 0u);
  // Full texts are kept by load_rollouts.
  EXPECT_EQ(now.rollouts[0].full_cot, ok.full_cot);
  EXPECT_EQ(now.rollouts[0].prefix_without_chunk, ok.prefix_without_chunk);

  // A sample index cannot be done twice.
  EXPECT_THROW(store.append_rollouts(0, false, {record(ok, 2)}), Error);
  EXPECT_THROW(store.append_rollouts(1, false, {record(ok, 5), record(ok, 5)}), Error);
  EXPECT_EQ(store.load_rollouts(0, false).rollouts.size(), 4u);  // unchanged
  EXPECT_FALSE(fs::exists(store.solutions_path(1, false)));

  // Records without a sample index take the highest free indices.
  store.append_rollouts(2, false, {record(ok), record(ok, 0)});
  EXPECT_EQ(store.missing_indices(2, false, 5), (std::vector<std::int64_t>{1, 2, 3}));
}

TEST_F(RolloutStoreTest, HalfWrittenTempFileFromACrashIsIgnored) {
  write_problem_files();
  const Rollout ok = make_rollout("First.", "Yes. \\boxed{42}", "42", true);
  store.append_rollouts(0, false, {record(ok, 0), record(ok, 1)});
  const std::string final_path = store.solutions_path(0, false);
  const std::string before = read_text_file(final_path, kDataFileLimit);
  // What a SIGKILL during write_file_atomic leaves: a truncated temp file next
  // to the intact old file (also one for a chunk that has no file yet).
  const std::string half = before.substr(0, before.size() / 2);
  {
    std::ofstream(final_path + ".tmp.1a2b3c", std::ios::binary) << half;
    fs::create_directories(fs::path(store.solutions_path(1, false)).parent_path());
    std::ofstream(store.solutions_path(1, false) + ".tmp.ff", std::ios::binary) << "[{\"chunk_removed\": ";
    std::ofstream(fs::path(dir) / "chunks.json.tmp.0", std::ios::binary) << "{";
  }
  EXPECT_EQ(read_text_file(final_path, kDataFileLimit), before);
  EXPECT_EQ(store.missing(0, false, 3), 1u);
  EXPECT_EQ(store.missing(1, false, 3), 3u);
  EXPECT_FALSE(store.load_rollouts(1, false).present);
  const ProblemRollouts read = store.read();
  EXPECT_EQ(read.resampled[0].rollouts.size(), 2u);
  EXPECT_FALSE(read.resampled[1].present);
  EXPECT_EQ(read.chunks.size(), 3u);

  store.append_rollouts(0, false, {record(ok, 2)});
  EXPECT_EQ(store.missing(0, false, 3), 0u);
  EXPECT_EQ(store.remove_temp_files(), 3u);
  EXPECT_EQ(files_under(dir), (std::vector<std::string>{"base_solution.json", "chunk_0/solutions.json",
                                                         "chunks.json", "problem.json"}));
}

TEST_F(RolloutStoreTest, MalformedExistingFileIsAnErrorAndIsNotOverwritten) {
  write_problem_files();
  const std::string path = store.solutions_path(0, false);
  fs::create_directories(fs::path(path).parent_path());
  for (const std::string bad : {std::string("[{\"answer\": "), std::string("{\"not\": \"a list\"}"),
                                std::string("[{\"answer\": 42}]"), std::string("[{\"sample_index\": -1}]")}) {
    SCOPED_TRACE(bad);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
    try {
      store.append_rollouts(0, false, {record(make_rollout("First.", "x", "", std::nullopt))});
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("chunk_0"), std::string::npos) << e.what();
    }
    EXPECT_EQ(read_text_file(path, kDataFileLimit), bad);
  }
  EXPECT_THROW(store.missing_indices(0, false, 3), Error);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "[{\"answer\": 42}]";
  EXPECT_THROW(store.load_rollouts(0, false), Error);
  EXPECT_THROW(store.missing(0, false, 3), Error);
}

TEST_F(RolloutStoreTest, ConcurrentAppendsFromThreadsKeepEveryRecord) {
  write_problem_files();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 5; ++k)
        store.append_rollouts(0, false, {record(make_rollout("First.", "x \\boxed{1}", "1", false), t * 5 + k)});
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(store.load_rollouts(0, false).rollouts.size(), 20u);
  EXPECT_TRUE(store.missing_indices(0, false, 20).empty());
}

TEST_F(RolloutStoreTest, InvalidUtf8IsWrittenAsReplacementCharacters) {
  write_problem_files();
  store.append_rollouts(0, false, {record(make_rollout("First.", "bad \xff byte", "", std::nullopt))});
  const SentenceRollouts read = store.load_rollouts(0, false);
  ASSERT_EQ(read.rollouts.size(), 1u);
  EXPECT_EQ(read.rollouts[0].rollout, "bad \xEF\xBF\xBD byte");
}

}  // namespace
}  // namespace anchors::rollout
