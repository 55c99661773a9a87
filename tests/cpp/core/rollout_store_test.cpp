// The rollout store (anchors/rollout/rollout_store.h): what it writes reads back
// through read_problem_rollouts, every write is atomic (no temporary files left,
// a crash's half-written temp file is ignored), the resume rules (missing,
// missing_indices, error records dropped on the next append), one writer per
// folder (the lock: a second writer is refused naming the holder, a killed
// one blocks nobody) and one run per folder (the manifest: another seed, base
// solution or option is refused naming the field).
#include "anchors/rollout/rollout_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "expect_error.h"
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

// The run every fixture writer is: the base solution of write_problem_files.
RunManifest the_run() {
  RunManifest m;
  m.base_solution_hash = base_solution_hash("PROMPT ", "First. Second. \\boxed{42}");
  m.seed = 3;
  m.options = {{"temperature", 0.6}, {"max_tokens", std::int64_t{64}}, {"outcome", std::string("boxed")}};
  return m;
}

// A writer in another process: it takes the folder's lock, says so through a
// pipe, holds it for `hold_ms` and then _exits without releasing anything
// (the kernel must). Returns its pid once it holds the lock.
pid_t writer_in_child(const std::string& dir, const RunManifest& manifest, int hold_ms) {
  int ready[2];
  if (pipe(ready) != 0) throw std::runtime_error("pipe");
  const pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    char got = 0;
    try {
      RolloutStore child(dir);
      child.begin_writing(manifest);
      got = 1;
      [[maybe_unused]] const ssize_t n = write(ready[1], &got, 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
    } catch (...) {
      [[maybe_unused]] const ssize_t n = write(ready[1], &got, 1);
    }
    _exit(got ? 0 : 1);  // no destructors run: the lock is left to the kernel
  }
  close(ready[1]);
  char got = 0;
  const bool told = read(ready[0], &got, 1) == 1;
  close(ready[0]);
  EXPECT_TRUE(told && got == 1) << "the child did not get the lock";
  return pid;
}

int exit_status(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

struct RolloutStoreTest : ::testing::Test {
  anchors::testing::ScratchDir scratch{"rollout-store"};
  std::string dir = RolloutStore::layout_dir(scratch.path(), "correct", 7);
  RolloutStore store{dir};

  RolloutStoreTest() { store.begin_writing(the_run()); }

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

// A scenario read from an agentic folder (Thought Branches) is written back as
// scenario.json, and chunks.json keeps the splitter's separators: the folder
// reads back as the same problem.
TEST_F(RolloutStoreTest, ScenarioIsWrittenAsScenarioJson) {
  const Problem scenario = parse_scenario(
      R"({"scenario_id": 7, "system_prompt": "You are Alex.", "user_prompt": "Read the inbox.",
          "email_content": "<email>Kyle: the wipe is at 5pm.</email>", "variables": {"goal": "x"},
          "nickname": "Server wipe leverage"})",
      "scenario.json");
  store.write_problem(scenario);
  BaseSolution b;
  b.prompt = "PROMPT ";
  b.solution = "First. Second. \\boxed{42}";
  store.write_base_solution(b);
  store.write_chunks("src", b.solution, {"First.", "Second.", "\\boxed{42}"}, {" ", " ", ""});
  EXPECT_TRUE(store.has_problem());
  EXPECT_FALSE(fs::exists(fs::path(dir) / "problem.json"));
  const ProblemRollouts read = read_problem_rollouts(dir);
  EXPECT_EQ(read.problem, scenario);
  EXPECT_EQ(read.separators, (std::vector<std::string>{" ", " ", ""}));
  EXPECT_ANCHORS_ERROR(store.write_chunks("src", b.solution, {"First."}, {" ", " "}), "2 separators for 1 chunks");
  Problem broken;
  broken.scenario = "[1]";
  EXPECT_ANCHORS_ERROR(store.write_problem(broken), "JSON object");
}

TEST_F(RolloutStoreTest, WritesLeaveNoTemporaryFiles) {
  write_problem_files();
  for (int k = 0; k < 5; ++k) store.append_rollouts(0, false, {record(make_rollout("First.", "x \\boxed{1}", "1", false))});
  store.append_rollouts(0, true, {record(make_rollout("First.", "1}", "1", false))});
  EXPECT_EQ(files_under(dir), (std::vector<std::string>{".anchors.lock", "base_solution.json", "chunk_0/solutions.json",
                                                         "chunks.json", "manifest.json", "problem.json"}));
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
  EXPECT_EQ(files_under(dir), (std::vector<std::string>{".anchors.lock", "base_solution.json", "chunk_0/solutions.json",
                                                         "chunks.json", "manifest.json", "problem.json"}));
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

// ---- one writer per folder -------------------------------------------------

TEST_F(RolloutStoreTest, WritesNeedTheWriterLockAndReadsDoNot) {
  write_problem_files();
  store.append_rollouts(0, false, {record(make_rollout("First.", "x \\boxed{1}", "1", false), 0)});
  RolloutStore reader(dir);
  EXPECT_FALSE(reader.writing());
  EXPECT_ANCHORS_ERROR(reader.append_rollouts(0, false, {}), dir, "begin_writing");
  EXPECT_ANCHORS_ERROR(reader.write_problem(Problem{}), dir, "begin_writing");
  EXPECT_ANCHORS_ERROR(reader.remove_temp_files(), dir, "begin_writing");
  // Readers need no lock, while a writer holds it.
  EXPECT_EQ(reader.missing(0, false, 3), 2u);
  EXPECT_EQ(reader.read().resampled[0].rollouts.size(), 1u);
  EXPECT_EQ(read_problem_rollouts(dir).chunks.size(), 3u);
  // The holder's note while it writes; cleared when it stops.
  const json note = json::parse(read_text_file(dir + "/.anchors.lock", kConfigFileLimit));
  EXPECT_EQ(note["pid"], static_cast<long long>(getpid()));
  EXPECT_TRUE(note.contains("host") && note.contains("since"));
  store.end_writing();
  EXPECT_FALSE(store.writing());
  EXPECT_EQ(read_text_file(dir + "/.anchors.lock", kConfigFileLimit), "");
  EXPECT_ANCHORS_ERROR(store.append_rollouts(0, false, {}), "begin_writing");
}

TEST_F(RolloutStoreTest, SecondWriterInThisProcessIsRefusedNamingTheHolder) {
  RolloutStore second(dir);
  EXPECT_ANCHORS_ERROR(second.begin_writing(the_run()), dir, "another writer holds this folder",
                       fmt::format("this process (pid {})", getpid()), ".anchors.lock", "another output folder");
  EXPECT_FALSE(second.writing());
  EXPECT_ANCHORS_ERROR(store.begin_writing(the_run()), "already writes");
  // A store that is moved keeps the lock; the folder is free once it is gone.
  {
    RolloutStore moved = std::move(store);
    EXPECT_TRUE(moved.writing());
    EXPECT_THROW(second.begin_writing(the_run()), Error);
  }
  second.begin_writing(the_run());
  EXPECT_TRUE(second.writing());
}

TEST_F(RolloutStoreTest, WriterInAnotherProcessIsNamedAndAKilledOneBlocksNobody) {
  store.end_writing();  // (before fork: a child would share the parent's lock)
  const pid_t child = writer_in_child(dir, the_run(), 60000);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  RolloutStore second(dir);
  EXPECT_ANCHORS_ERROR(second.begin_writing(the_run()), dir, "another writer holds this folder",
                       fmt::format("host {}, pid {}, since ", host, child));
  // Waiting a while does not help while it lives ...
  EXPECT_ANCHORS_ERROR(second.begin_writing(the_run(), {.wait_seconds = 0.2}), fmt::format("pid {}", child),
                       "still held it after 0.2 s");
  // ... but SIGKILL releases the lock: the note it left does not block.
  kill(child, SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(exit_status(child)));
  EXPECT_NE(read_text_file(dir + "/.anchors.lock", kConfigFileLimit).find(std::to_string(child)), std::string::npos);
  second.begin_writing(the_run());
  second.append_rollouts(0, false, {});
}

TEST_F(RolloutStoreTest, AWaitingWriterGetsTheFolderWhenTheHolderEnds) {
  store.end_writing();
  const pid_t child = writer_in_child(dir, the_run(), 1000);  // then _exits without releasing
  RolloutStore second(dir);
  EXPECT_THROW(second.begin_writing(the_run()), Error);  // held: no wait, no lock
  second.begin_writing(the_run(), {.wait_seconds = 30});
  EXPECT_TRUE(second.writing());
  const int status = exit_status(child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// ---- one run per folder -----------------------------------------------------

TEST_F(RolloutStoreTest, LaterWriterWithOtherSettingsIsRefusedNamingTheField) {
  write_problem_files();
  const Rollout ok = make_rollout("First.", "Yes. \\boxed{42}", "42", true);
  store.append_rollouts(0, false, {record(ok, 0)});
  const std::string recorded = read_text_file(dir + "/manifest.json", kConfigFileLimit);
  const json manifest = json::parse(recorded);
  EXPECT_EQ(manifest["seed"], 3);
  EXPECT_EQ(manifest["base_solution_hash"], the_run().base_solution_hash);
  EXPECT_EQ(manifest["options"]["temperature"], 0.6);
  EXPECT_FALSE(manifest.contains("adopted"));
  store.end_writing();

  RolloutStore later(dir);
  RunManifest seed = the_run();
  seed.seed = 4;
  EXPECT_ANCHORS_ERROR(later.begin_writing(seed), dir, "another seed", "\"seed\" recorded 3, this run 4",
                       "another output folder", "delete");
  RunManifest base = the_run();
  base.base_solution_hash = base_solution_hash("PROMPT ", "Another. \\boxed{41}");
  EXPECT_ANCHORS_ERROR(later.begin_writing(base), "another base solution", "\"base_solution_hash\" recorded",
                       base.base_solution_hash);
  RunManifest option = the_run();
  option.options["temperature"] = 0.7;
  EXPECT_ANCHORS_ERROR(later.begin_writing(option), "another temperature",
                       "\"options\".\"temperature\" recorded 0.6, this run 0.7");
  RunManifest added = the_run();
  added.options["min_p"] = 0.05;
  EXPECT_ANCHORS_ERROR(later.begin_writing(added), "\"options\".\"min_p\" recorded (none), this run 0.05");
  RunManifest dropped = the_run();
  dropped.options.erase("outcome");
  EXPECT_ANCHORS_ERROR(later.begin_writing(dropped), "\"options\".\"outcome\" recorded \"boxed\", this run (none)");
  EXPECT_EQ(read_text_file(dir + "/manifest.json", kConfigFileLimit), recorded);  // refused writers change nothing ...
  EXPECT_FALSE(later.writing());                                // ... and keep no lock

  // The same settings resume (an integer option given as a double compares by value).
  RunManifest same = the_run();
  same.options["max_tokens"] = 64.0;
  later.begin_writing(same);
  EXPECT_EQ(later.missing_indices(0, false, 2), (std::vector<std::int64_t>{1}));
  later.append_rollouts(0, false, {record(ok, 1)});
  EXPECT_EQ(later.missing(0, false, 2), 0u);
  EXPECT_EQ(read_text_file(dir + "/manifest.json", kConfigFileLimit), recorded);
}

TEST_F(RolloutStoreTest, FolderWithoutManifestIsAdoptedWhenItsBaseSolutionIsThisRuns) {
  // What an older version leaves: the files and rollouts, no manifest.
  write_problem_files();
  store.append_rollouts(0, false, {record(make_rollout("First.", "Yes. \\boxed{42}", "42", true), 0)});
  store.end_writing();
  fs::remove(dir + "/manifest.json");
  RolloutStore later(dir);
  RunManifest other = the_run();
  other.base_solution_hash = base_solution_hash("PROMPT ", "Another. \\boxed{41}");
  EXPECT_ANCHORS_ERROR(later.begin_writing(other), dir, "another base solution", dir + "/base_solution.json",
                       "the hash of \"prompt\" and \"solution\"");
  EXPECT_FALSE(fs::exists(dir + "/manifest.json"));
  RunManifest run = the_run();
  run.seed = 11;  // the old rollouts' seed was never recorded: nothing to compare it with
  later.begin_writing(run);
  const json adopted = json::parse(read_text_file(dir + "/manifest.json", kConfigFileLimit));
  EXPECT_EQ(adopted["adopted"], true);
  EXPECT_EQ(adopted["seed"], 11);
  later.end_writing();
  EXPECT_ANCHORS_ERROR(later.begin_writing(the_run()), "another seed");  // from now on it is recorded

  // The authors' folder (no chunks written by us) is adopted the same way.
  const std::string authors = anchors::testing::reference_dirs()[1];
  const std::string copy = scratch.file("authors/correct_base_solution/problem_2189");
  fs::create_directories(copy);
  fs::copy(authors, copy, fs::copy_options::recursive);
  const json theirs = json::parse(read_text_file(copy + "/base_solution.json", kDataFileLimit));
  RunManifest theirs_run = the_run();
  theirs_run.base_solution_hash = base_solution_hash(theirs["prompt"], theirs["solution"]);
  RolloutStore adopting(copy);
  EXPECT_ANCHORS_ERROR(adopting.begin_writing(the_run()), "another base solution");
  adopting.begin_writing(theirs_run);
  EXPECT_FALSE(json::parse(read_text_file(copy + "/manifest.json", kConfigFileLimit)).contains("adopted"));
}

TEST_F(RolloutStoreTest, BaseSolutionReplacedBehindTheManifestIsRefused) {
  write_problem_files();
  store.end_writing();
  // A writer that checked nothing (an older version) replaced the base solution.
  json base = json::parse(read_text_file(dir + "/base_solution.json", kDataFileLimit));
  base["solution"] = "Another. \\boxed{41}";
  write_file_atomic(dir + "/base_solution.json", base.dump());
  RolloutStore later(dir);
  EXPECT_ANCHORS_ERROR(later.begin_writing(the_run()), "another base solution", dir + "/base_solution.json");
}

TEST_F(RolloutStoreTest, ManifestThatIsNotOursOrNewerIsAnError) {
  store.end_writing();
  RolloutStore later(dir);
  const std::string path = dir + "/manifest.json";
  for (const std::string bad : {std::string("{"), std::string("[1]"), std::string("{\"format\": 1}"),
                                std::string("{\"format\": \"thought-anchors/rollout-manifest\"}")}) {
    SCOPED_TRACE(bad);
    write_file_atomic(path, bad);
    EXPECT_ANCHORS_ERROR(later.begin_writing(the_run()), path);
    EXPECT_EQ(read_text_file(path, kConfigFileLimit), bad);
  }
  write_file_atomic(path, R"({"format": "thought-anchors/rollout-manifest", "version": 2})");
  EXPECT_ANCHORS_ERROR(later.begin_writing(the_run()), path, "newer version");
  RunManifest no_hash = the_run();
  no_hash.base_solution_hash.clear();
  EXPECT_ANCHORS_ERROR(later.begin_writing(no_hash), "no base_solution_hash");
}

TEST(BaseSolutionHash, IsStableAndTellsPromptFromText) {
  EXPECT_EQ(base_solution_hash("PROMPT ", "First."), base_solution_hash("PROMPT ", "First."));
  EXPECT_NE(base_solution_hash("PROMPT ", "First."), base_solution_hash("PROMPT", " First."));
  EXPECT_EQ(base_solution_hash("", "").rfind("fnv1a64:", 0), 0u);
  EXPECT_EQ(base_solution_hash("", "").size(), 8u + 16u);
  // Invalid UTF-8 hashes as base_solution.json holds it (U+FFFD).
  EXPECT_EQ(base_solution_hash("", "bad \xff"), base_solution_hash("", "bad \xEF\xBF\xBD"));
}

}  // namespace
}  // namespace anchors::rollout
