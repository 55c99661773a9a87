#pragma once
// The writing side of the math-rollouts layout (core/rollouts.h reads it;
// docs/rollouts.md describes it, docs/rollout-providers.md the resume rules).
//
//   anchors::rollout::RolloutStore store(out + "/correct_base_solution/problem_7");
//   store.begin_writing({base_solution_hash(base.prompt, base.solution), seed, {{"temperature", 0.6}, ...}});
//   store.write_problem(problem);  store.write_base_solution(base);  store.write_chunks(src, cot, chunks);
//   for (i : chunks)
//     if (auto need = store.missing(i, /*forced=*/false, 100)) {
//       ... generate `need` rollouts ...
//       store.append_rollouts(i, false, records);   // error records are fine: they are retried later
//     }
//   auto all = store.read();                        // == anchors::read_problem_rollouts(dir)
//
// Every file is written atomically (write_file_atomic: a temporary file in the
// same folder, then rename): a run killed at any moment leaves each file either
// as it was or complete, never half written, so a second run resumes from what
// is on disk. Temporary files a crash leaves behind are never read (and
// remove_temp_files() clears them).
//
// Resume rules: a chunk needs `wanted` non-error records. Error records
// ({"error": ...}, left by failed requests) do not count; the next append
// drops them from the file, so a retried request replaces them. Rollouts
// without an answer (cut at the token limit) are real samples and count.
//
// One writer per folder, one run per folder. A store writes only after
// begin_writing(), which
//  - takes the folder's writer lock, <problem_dir>/.anchors.lock (held until
//    the store is destroyed or end_writing(); it covers the forced folder the
//    store writes too). A second writer -- another process, or another store
//    in this process -- fails at once (LockOptions::wait_seconds = 0) or after
//    waiting, with an anchors::Error naming the folder and the holder (host,
//    pid, start time: a note the holder keeps in the lock file). Several
//    threads of one store are fine: its appends are serialised.
//  - compares the run's RunManifest (what the rollouts are cut from, seed,
//    generation options) with the folder's manifest.json, and writes it when
//    the folder has none. Any difference is an anchors::Error naming the
//    folder, the field, the recorded and the new value, and how to go on: so
//    rollouts of two runs are never mixed, whether the runs overlap or follow
//    each other, and on whichever machine they run.
// Readers (read(), load_rollouts, missing, read_problem_rollouts,
// `anchors metrics`) take no lock: every file is replaced atomically, so a
// reader sees each file either before or after a write.
//
// A folder without manifest.json (the authors' data, or written before
// manifests existed) is adopted by its first writer: when it has a
// base_solution.json, that must hold the writer's base solution (same
// base_solution_hash), else the writer is refused like any mismatch; then the
// writer's manifest is written, with "adopted": true when rollouts were
// already there (their seed and options were never recorded and cannot be
// checked). A base_solution.json that no longer matches the manifest
// (replaced by a writer that did not check) is refused too.
//
// What the lock guarantees. It is flock(2) on the lock file, through an open
// file description of the store's own (locally, two stores conflict even
// within one process; a fork()ed child shares its parent's and keeps the lock
// alive while it lives; programs started with exec do not inherit it).
//  - Local file systems: exclusive between all processes of the machine; the
//    kernel releases it when the holder's process ends in any way, SIGKILL
//    included, so a killed writer never blocks the next one (the note it left
//    is information only and is overwritten).
//  - NFS: Linux clients (2.6.12 on) send flock as a whole-file POSIX lock to
//    the server (NFSv4: the LOCK operation, in the protocol; NFSv3: the
//    separate NLM lock manager, lockd/statd, which must run on both sides or
//    the lock fails with ENOLCK, an error). The lock then excludes writers on
//    every Linux client of that server. A client that crashes or loses the
//    network keeps its lock until the server takes it back: NFSv4 at the end
//    of the client's lease (typically 90 s); NFSv3 when the client reboots and
//    statd tells the server, which may be never for a machine that does not
//    come back. Not guaranteed: mounts with `nolock` or `local_lock=flock|all`
//    (the lock is then local to each client, and two machines can both hold
//    it), non-Linux clients that keep flock local, file systems without
//    locks (some FUSE ones lock locally only), and a server that loses its
//    lock state without a grace period. There the manifest still refuses
//    every later writer with other settings, but two writers that start at the
//    same moment on two machines can both pass the check before either has
//    written its manifest.
//
// Plain C++: no LibTorch.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "anchors/core/rollouts.h"
#include "anchors/core/value.h"

namespace anchors::rollout {

// One record of a chunk_i/solutions.json, as appended.
struct RolloutRecord {
  // Written in full: chunk_removed, prefix_without_chunk, chunk_resampled,
  // rollout, full_cot, answer, is_correct (null when not known).
  Rollout rollout;
  // Non-empty: an error record {"error": error, "chunk_removed",
  // "prefix_without_chunk"} (the other rollout fields are not written).
  std::string error;
  // >= 0: written as "sample_index" -- which of the chunk's wanted samples
  // this is (e.g. the lane of a seeded request), so a resumed run can
  // regenerate exactly the missing ones (missing_indices). -1: not written.
  std::int64_t sample_index = -1;

  bool is_error() const { return !error.empty(); }
  static RolloutRecord failure(std::string message, std::string chunk_removed = {},
                               std::string prefix_without_chunk = {}, std::int64_t sample_index = -1);
};

class FolderLock;  // the flock of a folder (src/core/rollout/folder_lock.h, private)

// What a folder's rollouts depend on, recorded in its manifest.json by the
// first writer and compared by every later one.
struct RunManifest {
  // base_solution_hash(prompt, text) of what the rollouts continue: the base
  // solution's prompt and text (analyze), or the prompt and an edit's prefix
  // (intervene).
  std::string base_solution_hash;
  std::uint64_t seed = 0;
  // The generation settings that change a rollout or its record, by the
  // engine's names (analyze and intervene: temperature, top_p, min_p,
  // repetition_penalty, max_tokens, forced_max_tokens, batch -- it decides
  // which samples share a request seed --, outcome -- it labels the records
  // and writes the forced stub --). Settings that only say how many rollouts
  // to make (num_rollouts, forced) stay out, so a later run may ask for more.
  // Values compare as JSON (1 equals 1.0); a name recorded on one side only
  // is a difference too.
  ValueMap options;
};

// "fnv1a64:<16 hex digits>" of [prompt, text] as base_solution.json holds
// them (JSON, invalid UTF-8 as U+FFFD), so the hash of a BaseSolution and of
// the file written from it agree. O(size of the texts).
std::string base_solution_hash(const std::string& prompt, const std::string& text);

struct LockOptions {
  // How long begin_writing waits for another writer's lock: 0 = not at all
  // (the error names the holder at once), > 0 = at most that many seconds,
  // < 0 = as long as it takes.
  double wait_seconds = 0;
};

class RolloutStore {
 public:
  // problem_dir: the problem's folder, e.g. ".../correct_base_solution/problem_7"
  // (created on the first write). forced_dir: the folder of its forced-answer
  // rollouts; "" = forced_sibling_dir(problem_dir), where read_problem_rollouts
  // looks for them.
  // Touches no file: reading needs nothing more; writing needs begin_writing.
  explicit RolloutStore(std::string problem_dir, std::string forced_dir = {});
  ~RolloutStore();  // releases the writer lock, if held
  RolloutStore(RolloutStore&&) noexcept;
  RolloutStore& operator=(RolloutStore&&) noexcept;

  // Makes this store the folder's writer (see the top of this header): takes
  // the lock (creating problem_dir), then checks `manifest` against
  // manifest.json and base_solution.json, writing manifest.json when the
  // folder has none. anchors::Error, and no lock kept, when another writer
  // holds the folder, when a recorded field differs, when manifest.json is
  // malformed or of a newer format, or when called twice. Costs two small
  // file reads (and a listing of the folder when it has no manifest yet).
  void begin_writing(const RunManifest& manifest, const LockOptions& lock = {});
  // Releases the lock early (the destructor does it too); writes fail again.
  void end_writing();
  bool writing() const { return lock_ != nullptr; }

  // "<root>/<kind>_base_solution/problem_<index>", e.g. kind "correct".
  static std::string layout_dir(const std::string& root, const std::string& kind, std::int64_t problem_index);

  const std::string& problem_dir() const { return problem_dir_; }
  const std::string& forced_dir() const { return forced_dir_; }
  // <problem_dir or forced_dir>/chunk_<i>/solutions.json
  std::string solutions_path(std::size_t chunk_idx, bool forced) const;

  // The writes below are anchors::Error unless this store is the folder's
  // writer (begin_writing).
  // problem.json {problem, level, type, gt_solution, gt_answer, nickname};
  // for a scenario (problem.is_scenario(), read from an agentic folder) its
  // scenario.json instead, the document as read (indented), from which
  // read_problem_rollouts derives the Problem again. anchors::Error if
  // Problem::scenario is not a JSON object.
  void write_problem(const Problem& problem) const;
  // base_solution.json {prompt, solution, full_cot, answer, is_correct}
  void write_base_solution(const BaseSolution& base) const;
  // chunks.json {source_text, solution_text, chunks[, separators]}: separators
  // (the agentic layout) are written when given, one per chunk (anchors::Error
  // otherwise).
  void write_chunks(const std::string& source_text, const std::string& solution_text,
                    const std::vector<std::string>& chunks, const std::vector<std::string>& separators = {}) const;
  // problem.json (or scenario.json), base_solution.json and chunks.json all exist.
  bool has_problem() const;

  // read_problem_rollouts(problem_dir) with this store's forced folder (read
  // when it exists).
  ProblemRollouts read(bool keep_full_texts = false) const;

  // What chunk_i/solutions.json holds now: the non-error records in file order
  // (full texts kept) and the number of error records. present = false and no
  // records when the file does not exist. anchors::Error for a malformed file.
  SentenceRollouts load_rollouts(std::size_t chunk_idx, bool forced) const;
  // How many more non-error records chunk i needs to reach `wanted`
  // (0 when it has at least that many).
  std::size_t missing(std::size_t chunk_idx, bool forced, std::size_t wanted) const;
  // The sample indices in [0, wanted) still to generate, ascending; always
  // missing() of them. An index is taken by a non-error record carrying it as
  // "sample_index"; records without one take the highest free indices.
  std::vector<std::int64_t> missing_indices(std::size_t chunk_idx, bool forced, std::size_t wanted) const;

  // Rewrites chunk_i/solutions.json atomically as: its non-error records
  // (verbatim, in order; earlier error records are dropped, being retried now)
  // followed by `records` (error records included). anchors::Error, and the
  // file left untouched, when the existing file is malformed or when a new
  // non-error record repeats a sample_index already present.
  void append_rollouts(std::size_t chunk_idx, bool forced, const std::vector<RolloutRecord>& records) const;

  // Deletes the temporary files ("<name>.json.tmp.<hex>") an interrupted
  // write_file_atomic left in the problem and forced folders; returns how many.
  // A writer's call (the lock keeps other writers' files from being removed
  // while they are written).
  std::size_t remove_temp_files() const;

 private:
  void require_writer(const char* what) const;

  std::string problem_dir_;
  std::string forced_dir_;
  std::unique_ptr<std::mutex> mutex_;  // serialises read-modify-write appends
  std::unique_ptr<FolderLock> lock_;       // held between begin_writing and end_writing
};

}  // namespace anchors::rollout
