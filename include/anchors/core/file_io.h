#pragma once
// Whole-file reads with clear errors, and atomic writes: a result file is
// either the old one or the complete new one, never half written, so long runs
// can be interrupted at any moment.
#include <string>

namespace anchors {

// Reads a whole file; anchors::Error "<path>: cannot open (...)" if missing or unreadable.
std::string read_text_file(const std::string& path);

// Writes `content` to a temporary file in the same directory, flushes it and
// renames it over `path`. Creates missing parent directories.
void write_file_atomic(const std::string& path, const std::string& content);

bool file_exists(const std::string& path);
bool directory_exists(const std::string& path);

}  // namespace anchors
