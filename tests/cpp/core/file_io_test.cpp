// Whole-file reads (core/file_io.h): regular files only, within the caller's
// limit or ANCHORS_MAX_FILE_BYTES, with errors that say what was refused and
// which limit was hit. Before the limits a FIFO blocked the read for ever,
// /dev/zero filled memory and a file of any size was read whole.
#include "anchors/core/file_io.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "anchors/core/error.h"
#include "anchors/core/reference_schema.h"
#include "expect_error.h"
#include "fifo_guard.h"
#include "scoped_max_bytes.h"
#include "test_paths.h"

namespace anchors {
namespace {
namespace fs = std::filesystem;
using testing::ScopedMaxBytes;

void expect_contains(const std::string& message, const std::vector<std::string>& needles) {
  for (const auto& needle : needles)
    EXPECT_NE(message.find(needle), std::string::npos) << "message \"" << message << "\" lacks \"" << needle << "\"";
}

TEST(ReadTextFile, FifoIsRefusedAtOnce) {
  testing::ScratchDir dir("fifo");
  const std::string fifo = dir.file("config.json");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  const auto started = std::chrono::steady_clock::now();
  expect_contains(testing::error_within_deadline(fifo, [&] { read_text_file(fifo, kConfigFileLimit); }),
                  {fifo + ": not a regular file (a FIFO)"});
  // The other example: a chunks_labeled.json that is a FIFO.
  const std::string labels = dir.file("chunks_labeled.json");
  ASSERT_EQ(::mkfifo(labels.c_str(), 0600), 0) << std::strerror(errno);
  expect_contains(testing::error_within_deadline(labels, [&] { read_chunks_labeled(labels); }),
                  {labels + ": not a regular file (a FIFO)"});
  expect_contains(testing::error_within_deadline(fifo, [&] { RegularFile::open(fifo); }),
                  {"not a regular file (a FIFO)"});
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));  // "at once"
}

TEST(ReadTextFile, DevicesDirectoriesAndSocketsAreRefused) {
  ScopedMaxBytes unset(nullptr);
  if (fs::exists("/dev/zero")) {
    // Was read until memory ran out; a device is no file of any kind we read.
    EXPECT_ANCHORS_ERROR(read_text_file("/dev/zero", kDataFileLimit),
                         "/dev/zero: not a regular file (a character device)");
    EXPECT_ANCHORS_ERROR(read_chunks_labeled("/dev/zero"), "/dev/zero: not a regular file (a character device)");
  }
  testing::ScratchDir dir("kinds");
  EXPECT_ANCHORS_ERROR(read_text_file(dir.path(), kDataFileLimit), dir.path() + ": not a regular file (a directory)");
  // A symbolic link is followed: what it names is checked.
  const std::string link = dir.file("link.json");
  fs::create_directory_symlink(dir.path(), link);
  EXPECT_ANCHORS_ERROR(read_text_file(link, kDataFileLimit), link + ": not a regular file (a directory)");

  const std::string socket_path = dir.file("s");
  sockaddr_un address{};
  ASSERT_LT(socket_path.size(), sizeof(address.sun_path));
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  ASSERT_EQ(::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
  EXPECT_ANCHORS_ERROR(read_text_file(socket_path, kConfigFileLimit), socket_path + ": not a regular file (a socket)");
  ::close(listener);

  EXPECT_ANCHORS_ERROR(read_text_file(dir.file("missing.json"), kDataFileLimit), dir.file("missing.json"),
                       "cannot open (No such file or directory)");
}

TEST(ReadTextFile, OversizedFileIsRefusedBeforeReading) {
  ScopedMaxBytes unset(nullptr);
  testing::ScratchDir dir("big");
  // Sparse files: no disk and, since the size is checked first, no memory.
  const std::string config = dir.file("config.json");
  write_file_atomic(config, "");
  fs::resize_file(config, kConfigFileLimit.max_bytes + 1);
  EXPECT_ANCHORS_ERROR(read_text_file(config, kConfigFileLimit), config, "16777217 bytes",
                       "over the limit of 16 MiB for config files", "set ANCHORS_MAX_FILE_BYTES");
  const std::string tokenizer = dir.file("tokenizer.json");
  write_file_atomic(tokenizer, "");
  fs::resize_file(tokenizer, kModelFileLimit.max_bytes + 1);
  EXPECT_ANCHORS_ERROR(read_text_file(tokenizer, kModelFileLimit), tokenizer,
                       "over the limit of 256 MiB for tokenizer and checkpoint index files");
  const std::string labels = dir.file("chunks_labeled.json");
  write_file_atomic(labels, "");
  fs::resize_file(labels, kDataFileLimit.max_bytes + 1);
  EXPECT_ANCHORS_ERROR(read_chunks_labeled(labels), labels, "1073741825 bytes",
                       "over the limit of 1 GiB for data files");
}

TEST(ReadTextFile, ExactlyAtTheLimitIsRead) {
  ScopedMaxBytes unset(nullptr);
  testing::ScratchDir dir("edge");
  const ReadLimit ten{10, "test files"};
  write_file_atomic(dir.file("ten"), "0123456789");
  EXPECT_EQ(read_text_file(dir.file("ten"), ten), "0123456789");
  write_file_atomic(dir.file("eleven"), "0123456789a");
  EXPECT_ANCHORS_ERROR(read_text_file(dir.file("eleven"), ten), "11 bytes, over the limit of 10 bytes for test files");
  write_file_atomic(dir.file("empty"), "");
  EXPECT_EQ(read_text_file(dir.file("empty"), ten), "");
  // Binary content, and more than the first read buffer.
  std::string big(300 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 % 251);
  write_file_atomic(dir.file("big"), big);
  EXPECT_EQ(read_text_file(dir.file("big"), kDataFileLimit), big);
}

TEST(ReadTextFile, LimitHoldsWhileReadingAFileThatReportsNoSize) {
  // /proc files are regular files that report 0 bytes and are not empty:
  // the stand-in for a file that grows (or lies) after fstat.
  ScopedMaxBytes unset(nullptr);
  const std::string status = "/proc/self/status";
  ASSERT_TRUE(fs::exists(status)) << "the test needs Linux's " << status;
  struct stat st {};
  ASSERT_EQ(::stat(status.c_str(), &st), 0);
  ASSERT_EQ(st.st_size, 0);
  const std::string text = read_text_file(status, kConfigFileLimit);
  EXPECT_NE(text.find("Name:"), std::string::npos);
  EXPECT_GT(text.size(), 16u);
  EXPECT_ANCHORS_ERROR(read_text_file(status, ReadLimit{16, "test files"}), status, "more than 16 bytes",
                       "reported 0 bytes", "over the limit of 16 bytes for test files");
}

TEST(ReadStream, ReadsToTheEndUnderTheLimit) {
  ScopedMaxBytes unset(nullptr);
  const ReadLimit ten{10, "test files"};
  std::istringstream exact("0123456789");
  EXPECT_EQ(read_stream(exact, "<stdin>", ten), "0123456789");
  std::istringstream empty("");
  EXPECT_EQ(read_stream(empty, "<stdin>", ten), "");
  std::istringstream over("0123456789a");
  EXPECT_ANCHORS_ERROR(read_stream(over, "<stdin>", ten), "<stdin>: more than 10 bytes",
                       "over the limit of 10 bytes for test files", "set ANCHORS_MAX_FILE_BYTES");
  // More than one 64 KiB piece, binary content.
  std::string big(300 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 % 251);
  std::istringstream in(big);
  EXPECT_EQ(read_stream(in, "<stdin>", kDataFileLimit), big);
}

TEST(ReadStream, AnEndlessStreamStopsAtTheLimit) {
  // /dev/zero never ends: without the bound the read would fill memory.
  ScopedMaxBytes lower("100000");
  std::ifstream zero("/dev/zero", std::ios::binary);
  ASSERT_TRUE(zero) << "the test needs Linux's /dev/zero";
  EXPECT_ANCHORS_ERROR(read_stream(zero, "<stdin>", kDataFileLimit), "<stdin>: more than 100000 bytes",
                       "set by ANCHORS_MAX_FILE_BYTES");
}

TEST(ReadTextFile, EnvironmentVariableReplacesEveryLimit) {
  testing::ScratchDir dir("env");
  const std::string path = dir.file("ten");
  write_file_atomic(path, "0123456789");
  {
    ScopedMaxBytes lower("4");
    EXPECT_ANCHORS_ERROR(read_text_file(path, kDataFileLimit), path, "10 bytes",
                         "over the limit of 4 bytes set by ANCHORS_MAX_FILE_BYTES (instead of 1 GiB for data files)",
                         "raise ANCHORS_MAX_FILE_BYTES");
  }
  {
    ScopedMaxBytes raise("10");
    EXPECT_EQ(read_text_file(path, ReadLimit{8, "test files"}), "0123456789");
  }
  for (const char* bad : {"", "0", "-1", "12x", "abc", " 10", "99999999999999999999999"}) {
    SCOPED_TRACE(bad);
    ScopedMaxBytes invalid(bad);
    EXPECT_ANCHORS_ERROR(read_text_file(path, kDataFileLimit), "ANCHORS_MAX_FILE_BYTES=",
                         "expected a positive whole number of bytes");
  }
}

}  // namespace
}  // namespace anchors
