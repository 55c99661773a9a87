#pragma once
// Internal: the writer lock of a rollout folder (RolloutStore::begin_writing;
// rollout_store.h says what it guarantees, locally and on NFS).
//
// An exclusive flock(2) on <dir>/<name>, taken through its own open file
// description: a second FolderLock on the same file conflicts whether it is
// in another process or in this one. The kernel drops the lock when the
// description is closed, which happens when the holder's process ends however
// it ends (SIGKILL included), so a killed writer never blocks the next one.
// While it holds the lock the holder keeps a note in the file (host, pid,
// start time) that the next writer's error quotes; the note is information
// only -- whether the folder is taken is the kernel's lock alone, and the file
// is never deleted (a writer that locked a deleted file would lock nothing
// the next one can see).
#include <string>

namespace anchors::rollout {

class FolderLock {
 public:
  // Creates `dir` when missing, then locks <dir>/<name>. wait_seconds: 0 =
  // one try; > 0 = retry (every 50 ms) for at most that long; < 0 = wait as
  // long as it takes. anchors::Error naming the folder and the holder's note
  // when another writer still holds it, or naming the file and the system's
  // reason when it cannot be opened or locked at all (e.g. ENOLCK: an NFSv3
  // mount without a lock manager).
  FolderLock(const std::string& dir, const std::string& name, double wait_seconds);
  // Clears the note, unlocks and closes.
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace anchors::rollout
