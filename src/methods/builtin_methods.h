#pragma once
// Internal: the methods every registry starts with.
#include <string>
#include <utility>
#include <vector>

#include "anchors/methods/registry.h"

namespace anchors::detail {
std::vector<std::pair<std::string, MethodFactory>> builtin_methods();
}
