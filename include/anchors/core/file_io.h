#pragma once
// Whole-file reads with clear errors and bounded sizes, and atomic writes: a
// result file is either the old one or the complete new one, never half
// written, so long runs can be interrupted at any moment.
//
// Reads open regular files only. A FIFO, device, socket or directory given
// where a file is expected is refused at once: a FIFO without a writer would
// block the read forever, and /dev/zero or a growing pipe would fill memory.
// Every whole-file read is also bounded by the caller's ReadLimit, chosen by
// what the file is; the limits sit far above any real file of that kind, so
// hitting one means the path names the wrong thing (docs/design.md §2,
// "Reading files").
#include <cstdint>
#include <iosfwd>
#include <string>

namespace anchors {

// The most bytes a whole-file read of one kind of file may take.
struct ReadLimit {
  std::uint64_t max_bytes;
  const char* kind;  // names the limit in errors: "... over the limit of 16 MiB for config files"
};

// Small settings files written by hand or by a training library: config.json,
// tokenizer_config.json, the sentence-transformers modules.json /
// sentence_bert_config.json / pooling config. Real ones are
// 1 KB to ~1 MB (a tokenizer_config.json that lists 256k added tokens);
// 16 MiB leaves a margin of over 10×.
inline constexpr ReadLimit kConfigFileLimit{16ull << 20, "config files"};

// Model files that grow with the vocabulary or the parameter count:
// tokenizer.json (real ones: 1.4 MB GPT-2, 7 MB Qwen2, 9 MB Llama 3, 33 MB
// Gemma 3) and model.safetensors.index.json (~15 MB for a trillion-parameter
// mixture of experts). 256 MiB leaves a margin of over 7×. (The .safetensors
// files themselves are mapped, not read, and have no size limit; their header
// has its own 100 MB limit, model/safetensors.h.)
inline constexpr ReadLimit kModelFileLimit{256ull << 20, "tokenizer and checkpoint index files"};

// What analyses read and write: result JSON, rollout folders (solutions.json,
// base_solution.json, problem.json), the authors' reference files
// (chunks_labeled.json, step_importance.json, summary.json), intervention
// specs, similarity tables, trace and prompt texts. The largest real ones
// are results holding a few sentence × sentence matrices (~100 MB each for
// 2,000 sentences) and per-chunk solutions.json files of ~30 MB. Parsing
// JSON takes about ten times the text in memory, so a 1 GiB file already
// needs ~10 GB: a larger one is a memory problem before it is a file.
inline constexpr ReadLimit kDataFileLimit{1ull << 30, "data files"};

// ANCHORS_MAX_FILE_BYTES, when set to a positive decimal number of bytes,
// replaces the limit of every kind (raise it for an unusually large file;
// lower it to test). Read at every call; anchors::Error if it is set to
// anything else.
inline constexpr const char* kMaxFileBytesVariable = "ANCHORS_MAX_FILE_BYTES";

// A file descriptor open for reading on a regular file; closes it when
// destroyed. For readers that do not read the whole file (the safetensors
// mapping).
class RegularFile {
 public:
  // Opens with O_NONBLOCK, so that opening a FIFO without a writer returns at
  // once instead of waiting for one, then refuses anything that fstat does
  // not call a regular file. anchors::Error "<path>: cannot open (<errno
  // text>)" or "<path>: not a regular file (a FIFO)" (a directory, a
  // character device, a block device, a socket).
  static RegularFile open(const std::string& path);

  RegularFile(RegularFile&& other) noexcept;
  RegularFile& operator=(RegularFile&& other) noexcept;
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;
  ~RegularFile();

  int fd() const { return fd_; }
  // The size fstat reported at open. A file may grow afterwards, and some
  // (/proc, some FUSE file systems) report 0 for files that are not empty.
  std::uint64_t size() const { return size_; }

 private:
  RegularFile(int fd, std::uint64_t size) : fd_(fd), size_(size) {}
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// Reads a whole regular file of at most `limit.max_bytes` bytes (or
// ANCHORS_MAX_FILE_BYTES). The size is checked before reading (fstat) and
// again while reading, since a file can grow or report a wrong size; memory
// is one copy of the file. anchors::Error naming the path: the errors of
// RegularFile::open, "read error", or "<path>: N bytes, over the limit of
// 16 MiB for config files; set ANCHORS_MAX_FILE_BYTES to a larger number of
// bytes to read it".
std::string read_text_file(const std::string& path, const ReadLimit& limit);

// Reads a stream to its end under the same limit (the CLI's "-" for standard
// input: a pipe that never ends, or /dev/zero redirected, must not fill
// memory). Reads in 64 KiB pieces, up to one byte past the limit.
// anchors::Error "<name>: read error" or "<name>: more than N bytes, over the
// limit of 1 GiB for data files; set ANCHORS_MAX_FILE_BYTES ...".
std::string read_stream(std::istream& in, const std::string& name, const ReadLimit& limit);

// Writes `content` to a temporary file in the same directory, flushes it and
// renames it over `path`. Creates missing parent directories.
void write_file_atomic(const std::string& path, const std::string& content);

bool file_exists(const std::string& path);
bool directory_exists(const std::string& path);

}  // namespace anchors
