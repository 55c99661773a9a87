#pragma once
// Shared test helpers: the bundled reference traces and scratch directories.
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace anchors::testing {

inline std::string data_dir() { return ANCHORS_TEST_DATA_DIR; }

// The four authors' traces copied from shared/data/reference.
inline std::vector<std::string> reference_dirs() {
  const std::string root = data_dir() + "/reference/";
  return {root + "deepseek-r1-distill-qwen-14b/correct_base_solution/problem_330",
          root + "deepseek-r1-distill-qwen-14b/correct_base_solution/problem_2189",
          root + "deepseek-r1-distill-qwen-14b/correct_base_solution/problem_4682",
          root + "deepseek-r1-distill-llama-8b/incorrect_base_solution/problem_3448"};
}

// A fresh directory under the system temp dir, removed when the object dies.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("anchors-test-" + tag + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string path() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace anchors::testing
