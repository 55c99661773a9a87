#pragma once
// Single source of the version: CMake and pyproject.toml read it from here.
#define ANCHORS_VERSION "0.1.0"

namespace anchors {
inline const char* version() { return ANCHORS_VERSION; }
}  // namespace anchors
