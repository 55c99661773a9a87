#include "anchors/core/file_io.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>

#include "anchors/core/error.h"

namespace anchors {
namespace fs = std::filesystem;

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error(fmt::format("{}: is a directory, expected a file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("{}: read error", path));
  return buffer.str();
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
