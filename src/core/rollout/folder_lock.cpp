#include "rollout/folder_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anchors/core/error.h"

namespace anchors::rollout {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// The holder's note, read through our own descriptor (the holder rewrites it
// in place, so a note caught half written reads as unreadable: it is only
// information).
std::string describe_holder(int fd) {
  char buf[1024];
  const ssize_t n = pread(fd, buf, sizeof buf, 0);
  if (n <= 0) return "a writer that left no note yet";
  try {
    const json note = json::parse(std::string(buf, static_cast<std::size_t>(n)));
    const std::string host = note.at("host").get<std::string>();
    const long long pid = note.at("pid").get<long long>();
    const std::string since = note.at("since").get<std::string>();
    if (host == host_name() && pid == static_cast<long long>(getpid()))
      return fmt::format("this process (pid {}) through another RolloutStore, since {}", pid, since);
    return fmt::format("host {}, pid {}, since {}", host, pid, since);
  } catch (const json::exception&) {
    return "a writer whose note cannot be read";
  }
}

}  // namespace

FolderLock::FolderLock(const std::string& dir, const std::string& name, double wait_seconds)
    : path_((fs::path(dir) / name).string()) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("{}: cannot create directory ({})", dir, ec.message()));
  // O_CLOEXEC: a program this process starts must not inherit (and so keep)
  // the lock. A fork() without exec does share it (see rollout_store.h).
  fd_ = open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd_ < 0) throw Error(fmt::format("{}: cannot open the writer lock ({})", path_, std::strerror(errno)));
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    if (flock(fd_, LOCK_EX | LOCK_NB) == 0) break;
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK) {
      close(fd_);
      throw Error(fmt::format("{}: cannot take the writer lock ({}); the file system may not support locks "
                              "(an NFSv3 mount needs its lock manager, lockd)",
                              path_, std::strerror(err)));
    }
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (wait_seconds >= 0 && waited >= wait_seconds) {
      const std::string holder = describe_holder(fd_);
      close(fd_);
      throw Error(fmt::format("{}: another writer holds this folder ({}; see {}){}; wait until it ends, or give this "
                              "run another output folder (the lock goes when its process ends, even by SIGKILL)",
                              dir, holder, path_,
                              wait_seconds > 0 ? fmt::format(" and still held it after {} s", wait_seconds) : ""));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // The note for the next writer's error, rewritten in place: replacing the
  // file (rename) would give the next writer another file to lock.
  const std::string note =
      json{{"host", host_name()}, {"pid", static_cast<long long>(getpid())}, {"since", utc_now()}}.dump() + "\n";
  if (ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t written = pwrite(fd_, note.data(), note.size(), 0);
  }
}

FolderLock::~FolderLock() {
  if (fd_ < 0) return;
  [[maybe_unused]] const int truncated = ftruncate(fd_, 0);
  flock(fd_, LOCK_UN);  // explicit: a fork()ed child sharing the descriptor must not keep it
  close(fd_);
}

}  // namespace anchors::rollout
