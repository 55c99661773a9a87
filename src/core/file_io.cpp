#include "anchors/core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <istream>
#include <random>
#include <string_view>

#include <fmt/format.h>

#include "anchors/core/error.h"

namespace anchors {
namespace fs = std::filesystem;
namespace {

const char* file_type_name(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "an unknown kind of file";
}

[[noreturn]] void not_regular(const std::string& path, mode_t mode) {
  throw Error(fmt::format("{}: not a regular file ({})", path, file_type_name(mode)));
}

std::string size_text(std::uint64_t bytes) {
  if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0) return fmt::format("{} GiB", bytes >> 30);
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  return fmt::format("{} bytes", bytes);
}

// The limit in force for one read: the caller's, or ANCHORS_MAX_FILE_BYTES.
struct EffectiveLimit {
  std::uint64_t max_bytes = 0;
  std::string described;  // "the limit of 16 MiB for config files"
  std::string remedy;     // how to raise it
};

EffectiveLimit effective_limit(const ReadLimit& limit) {
  EffectiveLimit out;
  const char* value = std::getenv(kMaxFileBytesVariable);
  if (value == nullptr) {
    out.max_bytes = limit.max_bytes;
    out.described = fmt::format("the limit of {} for {}", size_text(limit.max_bytes), limit.kind);
    out.remedy = fmt::format("set {} to a larger number of bytes to read it", kMaxFileBytesVariable);
  } else {
    const std::string_view text(value);
    std::uint64_t bytes = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), bytes);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || bytes == 0)
      throw Error(fmt::format("{}=\"{}\": expected a positive whole number of bytes", kMaxFileBytesVariable, text));
    out.max_bytes = bytes;
    out.described = fmt::format("the limit of {} set by {} (instead of {} for {})", size_text(bytes),
                                kMaxFileBytesVariable, size_text(limit.max_bytes), limit.kind);
    out.remedy = fmt::format("raise {} to read it", kMaxFileBytesVariable);
  }
  // One byte past the limit is read to tell "exactly at the limit" from "over
  // it"; keep that byte addressable.
  out.max_bytes = std::min<std::uint64_t>(out.max_bytes, std::string().max_size() - 1);
  return out;
}

}  // namespace

RegularFile RegularFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer, and
  // the type check below could never run. O_NOCTTY: a terminal named by
  // mistake must not become ours.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    // A socket cannot be opened at all (ENXIO); name what it is instead.
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) not_regular(path, st.st_mode);
    throw Error(fmt::format("{}: cannot open ({})", path, std::strerror(err)));
  }
  RegularFile file(fd, 0);  // closes fd on every error below
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(fmt::format("{}: cannot stat ({})", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) not_regular(path, st.st_mode);
  // Back to blocking reads; O_NONBLOCK was only for the open.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  file.size_ = static_cast<std::uint64_t>(st.st_size);
  return file;
}

RegularFile::RegularFile(RegularFile&& other) noexcept : fd_(other.fd_), size_(other.size_) { other.fd_ = -1; }

RegularFile& RegularFile::operator=(RegularFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    size_ = other.size_;
    other.fd_ = -1;
  }
  return *this;
}

RegularFile::~RegularFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::string read_text_file(const std::string& path, const ReadLimit& limit) {
  const EffectiveLimit bound = effective_limit(limit);
  const RegularFile file = RegularFile::open(path);
  if (file.size() > bound.max_bytes)
    throw Error(fmt::format("{}: {} bytes, over {}; {}", path, file.size(), bound.described, bound.remedy));
  // Sized for the reported size plus one byte, so that the usual file is read
  // in one pass and its end is seen without growing the buffer; a file that
  // grows (or reported 0) is read on, up to one byte past the limit.
  std::string text(static_cast<std::size_t>(file.size()) + 1, '\0');
  std::size_t filled = 0;
  while (true) {
    if (filled == text.size()) {
      if (filled > bound.max_bytes) break;
      const std::uint64_t grown = std::max<std::uint64_t>(2 * text.size(), 64 * 1024);
      text.resize(static_cast<std::size_t>(std::min<std::uint64_t>(grown, bound.max_bytes + 1)));
    }
    const ssize_t n = ::read(file.fd(), text.data() + filled, text.size() - filled);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("{}: read error ({})", path, std::strerror(errno)));
    }
    if (n == 0) break;
    filled += static_cast<std::size_t>(n);
  }
  if (filled > bound.max_bytes)
    throw Error(fmt::format("{}: more than {} bytes (the file grew while being read, or reported {} bytes), "
                            "over {}; {}",
                            path, bound.max_bytes, file.size(), bound.described, bound.remedy));
  text.resize(filled);
  return text;
}

std::string read_stream(std::istream& in, const std::string& name, const ReadLimit& limit) {
  const EffectiveLimit bound = effective_limit(limit);
  std::string text;
  constexpr std::size_t kPiece = 64 * 1024;
  while (in && text.size() <= bound.max_bytes) {
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(kPiece, bound.max_bytes + 1 - text.size()));
    const std::size_t filled = text.size();
    text.resize(filled + want);
    in.read(text.data() + filled, static_cast<std::streamsize>(want));
    text.resize(filled + static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw Error(fmt::format("{}: read error", name));
  if (text.size() > bound.max_bytes)
    throw Error(fmt::format("{}: more than {} bytes, over {}; {}", name, bound.max_bytes, bound.described,
                            bound.remedy));
  return text;
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), ec);
    if (ec) throw Error(fmt::format("{}: cannot create directory ({})", target.parent_path().string(), ec.message()));
  }
  // Unique temp name in the same directory so rename() is atomic (same filesystem).
  std::random_device rd;
  const fs::path tmp = target.string() + fmt::format(".tmp.{:x}", rd());
  {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
    const bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size() &&
                    std::fflush(f) == 0;
    std::fclose(f);
    if (!ok) {
      fs::remove(tmp, ec);
      throw Error(fmt::format("{}: write failed ({})", path, std::strerror(errno)));
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(fmt::format("{}: cannot replace file ({})", path, ec.message()));
  }
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

bool directory_exists(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

}  // namespace anchors
