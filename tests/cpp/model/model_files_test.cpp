// Model folders whose files are no regular files, or too large: each reader
// refuses them at once with an error naming the file and what it is, or the
// limit it passed (core/file_io.h). A FIFO used to block
// SafetensorsFile::open, Tokenizer::load and read_model_config for ever.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "anchors/core/error.h"
#include "anchors/core/file_io.h"
#include "anchors/model/config.h"
#include "anchors/model/safetensors.h"
#include "anchors/model/tokenizer.h"
#include "expect_error.h"
#include "fifo_guard.h"
#include "scoped_max_bytes.h"
#include "test_paths.h"

namespace anchors {
namespace {
namespace fs = std::filesystem;
using model::Checkpoint;
using model::SafetensorsFile;
using model::Tokenizer;
using model::read_model_config;

void expect_contains(const std::string& message, const std::string& needle) {
  EXPECT_NE(message.find(needle), std::string::npos) << "message \"" << message << "\" lacks \"" << needle << "\"";
}

TEST(ModelFiles, FifosAreRefusedAtOnce) {
  testing::ScopedMaxBytes unset(nullptr);  // a small limit in the environment would stop the index first
  testing::ScratchDir dir("model-fifo");
  const std::string weights = dir.file("model.safetensors");
  const std::string config = dir.file("config.json");
  const std::string tokenizer = dir.file("tokenizer.json");
  for (const std::string& fifo : {weights, config, tokenizer})
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << fifo << ": " << std::strerror(errno);

  const std::string fifo_error = ": not a regular file (a FIFO)";
  expect_contains(testing::error_within_deadline(weights, [&] { SafetensorsFile::open(weights); }),
                  weights + fifo_error);
  // In a folder, a FIFO of the expected name is named, not reported missing.
  expect_contains(testing::error_within_deadline(weights, [&] { Checkpoint::open(dir.path()); }), weights + fifo_error);
  expect_contains(testing::error_within_deadline(weights, [&] { Checkpoint::open(weights); }), weights + fifo_error);
  expect_contains(testing::error_within_deadline(config, [&] { read_model_config(dir.path()); }), config + fifo_error);
  expect_contains(testing::error_within_deadline(tokenizer, [&] { Tokenizer::load(dir.path()); }),
                  tokenizer + fifo_error);

  // A checkpoint index and a shard it names.
  testing::ScratchDir sharded("model-fifo-index");
  const std::string index = sharded.file("model.safetensors.index.json");
  ASSERT_EQ(::mkfifo(index.c_str(), 0600), 0);
  expect_contains(testing::error_within_deadline(index, [&] { Checkpoint::open(sharded.path()); }), index + fifo_error);
  fs::remove(index);
  write_file_atomic(index, R"({"weight_map": {"w": "shard.safetensors"}})");
  const std::string shard = sharded.file("shard.safetensors");
  ASSERT_EQ(::mkfifo(shard.c_str(), 0600), 0);
  expect_contains(testing::error_within_deadline(shard, [&] { Checkpoint::open(sharded.path()); }), shard + fifo_error);
}

TEST(ModelFiles, DevicesAreRefused) {
  ASSERT_TRUE(fs::exists("/dev/zero")) << "the test needs /dev/zero";
  const std::string device_error = "/dev/zero: not a regular file (a character device)";
  // Mapped, /dev/zero was an endless file of zeros; read, it filled memory.
  EXPECT_ANCHORS_ERROR(SafetensorsFile::open("/dev/zero"), device_error);
  EXPECT_ANCHORS_ERROR(Checkpoint::open("/dev/zero"), device_error);
  EXPECT_ANCHORS_ERROR(read_model_config("/dev/zero"), device_error);
  EXPECT_ANCHORS_ERROR(Tokenizer::load("/dev/zero"), device_error);
}

TEST(ModelFiles, OversizedFilesNameTheirLimit) {
  testing::ScopedMaxBytes unset(nullptr);  // the built-in limits, whatever the environment says
  testing::ScratchDir dir("model-big");
  // Sparse files: no disk, and the size is refused before anything is read.
  const std::string config = dir.file("config.json");
  write_file_atomic(config, "");
  fs::resize_file(config, kConfigFileLimit.max_bytes + 1);
  EXPECT_ANCHORS_ERROR(read_model_config(dir.path()), config, "over the limit of 16 MiB for config files",
                       kMaxFileBytesVariable);
  const std::string tokenizer = dir.file("tokenizer.json");
  write_file_atomic(tokenizer, "");
  fs::resize_file(tokenizer, kModelFileLimit.max_bytes + 1);
  EXPECT_ANCHORS_ERROR(Tokenizer::load(dir.path()), tokenizer,
                       "over the limit of 256 MiB for tokenizer and checkpoint index files");
  const std::string index = dir.file("model.safetensors.index.json");
  write_file_atomic(index, "");
  fs::resize_file(index, kModelFileLimit.max_bytes + 1);
  EXPECT_ANCHORS_ERROR(Checkpoint::open(index), index, "over the limit of 256 MiB");
}

}  // namespace
}  // namespace anchors
