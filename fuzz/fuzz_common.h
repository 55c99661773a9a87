#pragma once
// What the fuzz targets share (fuzz/README.md). The library's promise for
// bad input is an anchors::Error with a message; so a target catches exactly
// that, and everything else -- another exception type, a crash, a sanitizer
// report, a broken invariant checked with FUZZ_CHECK -- is a finding that
// stops the fuzzer with the input saved.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "anchors/core/error.h"

namespace anchors::fuzz {

// Stops the run: libFuzzer saves the input as a crash and prints its path.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "\n==FUZZ FINDING== %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// An invariant the library promises; a violation is a finding.
#define FUZZ_CHECK(condition, message)                                                        \
  do {                                                                                         \
    if (!(condition)) ::anchors::fuzz::fail(std::string("check failed: " #condition ": ") + (message)); \
  } while (0)

// Runs `body`, which may reject its input with anchors::Error. Any other
// exception is a finding, reported with its type (std::bad_alloc from a size
// the input chose, std::out_of_range from an unchecked .at(), nlohmann's
// type_error from a get<> of the wrong type, ...).
template <class Body>
void expect_only_anchors_errors(Body&& body) {
  try {
    body();
  } catch (const anchors::Error&) {
    // Bad input, reported as the library promises.
  } catch (const std::exception& e) {
    fail(std::string("exception other than anchors::Error: ") + typeid(e).name() + ": " + e.what());
  } catch (...) {
    fail("exception that is not a std::exception");
  }
}

// Runs `body`, which must accept its input: any exception, anchors::Error
// included, is a finding (for functions documented never to fail, and for
// what must work once a parser has accepted its input).
template <class Body>
void expect_no_exception(const char* what, Body&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    fail(std::string(what) + " threw " + typeid(e).name() + ": " + e.what());
  } catch (...) {
    fail(std::string(what) + " threw something that is not a std::exception");
  }
}

// The input as text.
inline std::string_view text_of(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Targets with several modes read the mode from the first byte ('0', '1', ...
// in the seed files, so they stay readable), the rest is the mode's input.
struct ModeInput {
  unsigned mode = 0;
  std::string_view rest;
};
inline ModeInput split_mode(const std::uint8_t* data, std::size_t size, unsigned modes) {
  if (size == 0) return {0, {}};
  return {static_cast<unsigned>(data[0]) % modes, text_of(data + 1, size - 1)};
}

// Inputs made of several documents separate them by this line (seed files
// stay plain JSON between the separators).
inline constexpr std::string_view kPartSeparator = "\n@@@@\n";

// The first `count` parts of `text` ("" for missing ones); the last part gets
// the rest, separators included.
inline std::vector<std::string> split_parts(std::string_view text, std::size_t count) {
  std::vector<std::string> parts;
  while (parts.size() + 1 < count) {
    const std::size_t at = text.find(kPartSeparator);
    if (at == std::string_view::npos) break;
    parts.emplace_back(text.substr(0, at));
    text.remove_prefix(at + kPartSeparator.size());
  }
  parts.emplace_back(text);
  parts.resize(count);
  return parts;
}

// A folder of this process for the targets that can reach a parser only
// through a path (one per process, emptied for each input). Under
// $FUZZ_TMPDIR, else /dev/shm when it exists (no disk writes per input).
class ScratchDir {
 public:
  static ScratchDir& get() {
    static ScratchDir dir;
    return dir;
  }
  const std::filesystem::path& path() const { return path_; }
  // Removes what the previous input left, so no state carries over.
  void clear() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    std::filesystem::create_directories(path_);
  }
  // Writes `content` to <dir>/<name>, creating folders on the way.
  std::string write(const std::string& name, std::string_view content) const {
    const std::filesystem::path file = path_ / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) fail("cannot write the scratch file " + file.string());
    return file.string();
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

 private:
  ScratchDir() {
    const char* env = std::getenv("FUZZ_TMPDIR");
    std::error_code ec;
    const std::filesystem::path root = env != nullptr && *env != '\0' ? std::filesystem::path(env)
                                       : std::filesystem::is_directory("/dev/shm", ec)
                                           ? std::filesystem::path("/dev/shm")
                                           : std::filesystem::temp_directory_path();
    path_ = root / ("anchors-fuzz-" + std::to_string(::getpid()));
    clear();
  }
  std::filesystem::path path_;
};

}  // namespace anchors::fuzz
