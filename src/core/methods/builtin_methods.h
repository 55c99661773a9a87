#pragma once
// Internal: the methods every registry starts with, those of anchors::core.
// The white-box methods of anchors::anchors join them through
// register_builtins() (anchors/methods/builtins.h).
#include <string>
#include <utility>
#include <vector>

#include "anchors/methods/registry.h"

namespace anchors::detail {
std::vector<std::pair<std::string, MethodFactory>> builtin_methods();
}
